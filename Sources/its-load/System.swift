// Threads, descriptors, a CPU clock and /proc readings for its-load. Nothing here allocates on the
// paths the load loops call (signalEventFD, readEventFD, writeAll).
import CITSLoad
import CITSSupport
import Glibc
import ToolSupport

/// Starts a detached-from-nothing pthread running `body`; join it with `pthread_join`.
func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let status = pthread_create(&thread, nil, { raw in
        // SAFETY: `raw` is the retained Box passed below; it is released exactly once, here.
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        box.body()
        return nil
    }, box)
    precondition(status == 0, "pthread_create failed: \(status)")
    return thread
}

func join(_ thread: pthread_t) {
    pthread_join(thread, nil)
}

/// Writes every byte of `bytes` to `fd`, retrying short writes and EINTR.
@inline(__always)
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
    var offset = 0
    while offset < bytes.count {
        // SAFETY: offset < bytes.count, so the range offset..<count lies inside `bytes`.
        let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if written < 0 {
            if its_errno() == EINTR { continue }
            throw ToolError.system("write")
        }
        offset += written
    }
}

/// Adds 1 to an eventfd's counter.
@inline(__always)
func signalEventFD(_ fd: Int32) {
    var one: UInt64 = 1
    _ = write(fd, &one, 8)
}

/// Reads (and so resets) an eventfd's counter; 0 when a non-blocking eventfd was not signalled.
@inline(__always)
func readEventFD(_ fd: Int32) -> UInt64 {
    var value: UInt64 = 0
    return read(fd, &value, 8) == 8 ? value : 0
}

/// Waits up to `timeoutMs` for `fd` to become readable and reads its counter; false on timeout.
func waitEventFD(_ fd: Int32, timeoutMs: Int32) -> Bool {
    var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    while true {
        let ready = poll(&poller, 1, timeoutMs)
        if ready < 0, its_errno() == EINTR { continue }
        guard ready == 1 else { return false }
        return readEventFD(fd) != 0
    }
}

func makeEventFD(nonblocking: Bool) throws -> Int32 {
    let fd = its_eventfd(0, nonblocking ? 1 : 0)
    guard fd >= 0 else { throw ToolError.system("eventfd") }
    return fd
}

/// A connected pair of Unix stream sockets.
func unixSocketPair() throws -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
        throw ToolError.system("socketpair")
    }
    return (fds[0], fds[1])
}

/// User plus system CPU time of this process so far, in nanoseconds (CLOCK_PROCESS_CPUTIME_ID,
/// which counts every thread of the process).
func ownCPUNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// What /proc says about the server process.
enum ProcessStats {
    /// User plus system CPU time of every thread of `pid`, in nanoseconds (/proc/PID/stat fields 14
    /// and 15, in clock ticks).
    static func cpuNanoseconds(_ pid: Int32) -> UInt64? {
        guard let text = readFile("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        // Fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        let ticks = UInt64(sysconf(Int32(_SC_CLK_TCK)))
        return (user + system) * 1_000_000_000 / max(ticks, 1)
    }

    /// A "Name: value kB" line of /proc/PID/status, in bytes (VmRSS, RssAnon, RssShmem ...).
    static func statusBytes(_ pid: Int32, _ key: String) -> UInt64? {
        guard let text = readFile("/proc/\(pid)/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let kilobytes = UInt64(parts[1]) else { return nil }
            return kilobytes * 1024
        }
        return nil
    }

    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fd, &chunk, chunk.count)
            if count <= 0 { break }
            bytes += chunk[0 ..< count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}


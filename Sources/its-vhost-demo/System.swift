import CITSSupport
import Glibc
import ToolSupport

/// A non-blocking eventfd the demo owns and closes.
final class EventFD {
    let fd: Int32

    init() throws(ToolError) {
        fd = its_eventfd(0, 1)
        guard fd >= 0 else { throw .system("eventfd") }
    }

    deinit { close(fd) }

    /// Adds 1 to the counter (a kick).
    func signal() throws(ToolError) {
        var one: UInt64 = 1
        guard write(fd, &one, 8) == 8 else { throw .system("write eventfd") }
    }

    /// Reads and resets the counter; 0 when it was not signalled.
    func drain() throws(ToolError) -> UInt64 {
        var counter: UInt64 = 0
        let count = read(fd, &counter, 8)
        if count == 8 { return counter }
        if count < 0 && its_errno() == EAGAIN { return 0 }
        throw .system("read eventfd")
    }
}

/// Waits until some of `fds` are readable or `timeoutMilliseconds` pass; returns the readable ones'
/// indexes in `fds` (empty on timeout).
func pollReadable(_ fds: [Int32], timeoutMilliseconds: Int) throws(ToolError) -> [Int] {
    var entries = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
    var ready: Int32
    repeat {
        ready = poll(&entries, nfds_t(entries.count), Int32(timeoutMilliseconds))
    } while ready < 0 && its_errno() == EINTR
    guard ready >= 0 else { throw .system("poll") }
    return entries.indices.filter { entries[$0].revents & Int16(POLLIN | POLLERR | POLLHUP) != 0 }
}

/// A connected Unix stream socket with blocking I/O and a receive timeout, which sends descriptors
/// as SCM_RIGHTS on the sendmsg of the bytes they belong to.
final class UnixStream {
    let fd: Int32
    let path: String

    /// Connects to `path`; a peer silent for `timeoutSeconds` makes a receive fail.
    init(path: String, timeoutSeconds: Int) throws(ToolError) {
        self.path = path
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else {
            throw ToolError("socket path \(path) is longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path.utf8) }
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("socket") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            let error = ToolError.system("connect \(path)")
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// Sends `bytes` in one sendmsg with `fds` attached.
    func send(_ bytes: [UInt8], fds: [Int32] = []) throws(ToolError) {
        var bytes = bytes
        let sent = bytes.withUnsafeMutableBytes { buffer -> Int in
            var iov = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
            return withUnsafeMutablePointer(to: &iov) { iovPointer -> Int in
                var message = msghdr()
                message.msg_iov = iovPointer
                message.msg_iovlen = 1
                let control = UnsafeMutableRawPointer.allocate(byteCount: max(1, its_cmsg_space_fds(fds.count)),
                                                               alignment: 8)
                defer { control.deallocate() }
                if !fds.isEmpty {
                    fds.withUnsafeBufferPointer { its_cmsg_put_fds(&message, control, $0.baseAddress, fds.count) }
                }
                var result: Int
                repeat {
                    result = sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
                } while result < 0 && its_errno() == EINTR
                return result
            }
        }
        guard sent >= 0 else { throw .system("sendmsg to \(path)") }
        guard sent == bytes.count else { throw ToolError("sendmsg to \(path) sent \(sent) of \(bytes.count) bytes") }
    }

    /// Receives exactly `count` bytes.
    func receive(exactly count: Int) throws(ToolError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let received = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + done, count - done, 0) }
            if received < 0 && its_errno() == EINTR { continue }
            if received < 0 && its_errno() == EAGAIN { throw ToolError("\(path): no answer within the timeout") }
            guard received >= 0 else { throw .system("recv from \(path)") }
            guard received > 0 else { throw ToolError("\(path): the peer closed the connection") }
            done += received
        }
        return bytes
    }
}

/// Little-endian encoding into a byte array.
struct LittleEndianWriter {
    var bytes: [UInt8] = []

    mutating func u16(_ value: UInt16) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
    mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
    mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
}

/// Reads a little-endian integer at `offset` of `bytes`; the caller checked the length.
func loadLittleEndian<T: FixedWidthInteger>(_ bytes: [UInt8], at offset: Int, as type: T.Type) -> T {
    precondition(offset >= 0 && offset + MemoryLayout<T>.size <= bytes.count, "read past the bytes")
    return bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
}

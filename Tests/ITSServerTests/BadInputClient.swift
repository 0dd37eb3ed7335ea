import CITSSupport
import Glibc
import ITSWire

/// Helpers for the bad-input tests: an itsd of their own, the server's answer to a malformed
/// frame, and a reader that keeps up with many thousand replies (clients that have said HELLO and
/// their VMs: ClientVM+Setup.swift).

/// Starts itsd on a fresh socket named after `name`, with `arguments` added; returns it and the path.
func startItsd(_ name: String, _ arguments: [String] = []) -> (itsd: ItsdProcess, path: String)? {
    let path = temporarySocketPath(name)
    guard let itsd = ItsdProcess(arguments: ["--socket", path, "--lanes", "2", "--grace-period", "0"] + arguments) else { return nil }
    return (itsd, path)
}

extension ItsdProcess {
    /// Lowers itsd's descriptor limit (soft and hard) with prlimit(1); false when that fails.
    func limitDescriptors(to limit: Int) -> Bool {
        var child: pid_t = 0
        let tool = "/usr/bin/prlimit"
        let arguments: [String] = [tool, "--pid", "\(pid)", "--nofile=\(limit):\(limit)"]
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        guard posix_spawn(&child, tool, nil, nil, argv, environ) == 0 else { return false }
        var status: Int32 = 0
        return waitpid(child, &status, 0) == child && status == 0
    }

    /// CPU time itsd has used, user and system, in clock ticks (from /proc/PID/stat).
    func cpuTicks() -> Int {
        guard let file = fopen("/proc/\(pid)/stat", "r") else { return -1 }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 1024)
        guard fgets(&line, Int32(line.count), file) != nil else { return -1 }
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // The fields after the command name, which is in parentheses: state is the first, utime the 12th.
        guard let close = text.lastIndex(of: ")") else { return -1 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return -1 }
        return user + system
    }
}

extension ClientVM {
    /// One MSI by INJECT and the LPIs vCPU 1 then acknowledges.
    func injectAndTake(event: UInt32) -> [UInt32] {
        guard call(.inject(vm, Wire.DeviceID(rawValue: 7), Wire.EventID(rawValue: event)))?.status == .ok else { return [] }
        return drain(1)
    }
}

extension TestClient {
    /// Whether the server closes the connection with nothing more to read: end of file, or a reset
    /// when it closed with bytes of ours unread (false on a receive timeout or when a byte arrives).
    func closesWithoutMore() -> Bool {
        var byte: UInt8 = 0
        let count = recv(fd, &byte, 1, 0)
        return count == 0 || (count < 0 && its_errno() == ECONNRESET)
    }

    /// Sends `bytes` with `fds` in one sendmsg; false when the socket refuses (the server closed it).
    func trySendBytes(_ bytes: [UInt8], fds: [Int32] = []) -> Bool {
        var bytes = bytes
        return bytes.withUnsafeMutableBytes { buffer in
            var iov = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
            var message = msghdr()
            return withUnsafeMutablePointer(to: &iov) { iovPointer in
                message.msg_iov = iovPointer
                message.msg_iovlen = 1
                let control = UnsafeMutableRawPointer.allocate(byteCount: max(1, its_cmsg_space_fds(fds.count)), alignment: 8)
                defer { control.deallocate() }
                if !fds.isEmpty { fds.withUnsafeBufferPointer { its_cmsg_put_fds(&message, control, $0.baseAddress, fds.count) } }
                return sendmsg(fd, &message, Int32(MSG_NOSIGNAL)) == buffer.count
            }
        }
    }
}

extension Frame {
    /// The status and detail of an error reply (nil for any other frame).
    var errorReport: (status: WireStatus, detail: UInt32)? {
        guard case .error(_, let report) = message else { return nil }
        return (report.status, report.detail)
    }

    /// The opcode an error reply echoes.
    var errorOpcode: Opcode? {
        guard case .error(let opcode, _) = message else { return nil }
        return opcode
    }
}

/// Bytes of a frame with its header fields rewritten (each argument nil keeps the field).
func rawFrame(_ frame: Frame, length: UInt32? = nil, opcode: UInt16? = nil, flags: UInt16? = nil, status: UInt32? = nil,
              appending extra: [UInt8] = []) -> [UInt8]
{
    var bytes = frame.encoded + extra
    func put<T: FixedWidthInteger>(_ value: T?, at offset: Int) {
        guard let value else { return }
        withUnsafeBytes(of: value.littleEndian) { for (index, byte) in $0.enumerated() { bytes[offset + index] = byte } }
    }
    put(length ?? (extra.isEmpty ? nil : UInt32(bytes.count)), at: 0)
    put(opcode, at: 4)
    put(flags, at: 6)
    put(status, at: 12)
    return bytes
}

/// The four length bytes of a frame header and nothing else.
func lengthOnly(_ length: UInt32) -> [UInt8] { withUnsafeBytes(of: length.littleEndian) { Array($0) } }

/// Reads frames from a socket in large chunks and decodes them in place: fast enough for the
/// hundred thousand replies of the back-pressure tests, which TestClient.receive is not.
struct FrameReader {
    let fd: Int32
    private var buffer = [UInt8](repeating: 0, count: 1 << 20)
    private var start = 0
    private var end = 0
    private let decoder = FrameDecoder(role: .client, limits: .serverMaximum)

    init(fd: Int32) { self.fd = fd }

    /// The next frame, or nil when the connection closed, timed out or sent a malformed frame.
    mutating func next() -> Frame? {
        while true {
            switch decoder.decode(buffer[start ..< end], fdCount: 0) {
            case .frame(let frame, let consumed):
                start += consumed
                return frame
            case .failure:
                return nil
            case .needMoreData:
                if start > 0 {
                    buffer.withUnsafeMutableBytes { _ = memmove($0.baseAddress!, $0.baseAddress! + start, end - start) }
                    end -= start
                    start = 0
                }
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + end, $0.count - end, 0) }
                guard count > 0 else { return nil }
                end += count
            }
        }
    }

    /// Reads at most `limit` bytes that are already available into the buffer without blocking;
    /// returns how many arrived.
    mutating func readAvailable(limit: Int) -> Int {
        if start > 0, end - start < buffer.count / 2 {
            buffer.withUnsafeMutableBytes { _ = memmove($0.baseAddress!, $0.baseAddress! + start, end - start) }
            end -= start
            start = 0
        }
        let room = min(limit, buffer.count - end)
        guard room > 0 else { return 0 }
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + end, room, Int32(MSG_DONTWAIT)) }
        guard count > 0 else { return 0 }
        end += count
        return count
    }

    /// Decodes every whole frame in the buffer.
    mutating func framesBuffered() -> [Frame] {
        var frames: [Frame] = []
        while case .frame(let frame, let consumed) = decoder.decode(buffer[start ..< end], fdCount: 0) {
            start += consumed
            frames.append(frame)
        }
        return frames
    }
}

/// Writes `bytes` without blocking; returns how many the socket took.
func sendAvailable(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> Int {
    let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL)) }
    return max(sent, 0)
}

/// Waits up to `milliseconds` for the socket to take more bytes.
func waitWritable(_ fd: Int32, milliseconds: Int32) -> Bool {
    var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
    return poll(&entry, 1, milliseconds) == 1
}

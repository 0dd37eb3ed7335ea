// A blocking client connection speaking the itsd protocol (Protocol/PROTOCOL.md) with ITSWire frames.
// Setup requests go through `call`; the load loops write pre-encoded frames with `sendRaw` and read
// replies with `receive`, which decodes in place from a fixed receive buffer and allocates nothing
// for replies without strings or arrays (INJECT, ACK, PING).
import CITSSupport
import Glibc
import ITSWire
import ToolSupport

final class WireConnection {
    let fd: Int32
    private var decoder = FrameDecoder(role: .client, limits: .serverMaximum)
    /// Received bytes not yet decoded are `buffer[start ..< end]`.
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var nextID: UInt32 = 1
    /// The limits HELLO agreed.
    private(set) var limits = Limits.beforeHello

    static let bufferSize = 1 << 21

    init(path: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ToolError.system("socket") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let utf8 = Array(path.utf8)
        guard utf8.count < MemoryLayout.size(ofValue: address.sun_path) else { throw ToolError("socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: utf8) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let error = ToolError.system("connect \(path)")
            Glibc.close(fd)
            throw error
        }
        self.fd = fd
        buffer = [UInt8](repeating: 0, count: Self.bufferSize)
    }

    deinit { Glibc.close(fd) }

    /// The server's process id, from SO_PEERCRED.
    var peerPID: Int32? {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
        return its_peer_credentials(fd, &pid, &uid, &gid) == 0 ? pid : nil
    }

    /// HELLO with the default limits and error reports; returns the agreed limits.
    @discardableResult
    func hello(maxInFlight: UInt32 = 0) throws -> Limits {
        let proposal = Limits(maxFrameLength: 1 << 20, maxBatchEntries: 0, maxInFlight: maxInFlight, maxFDsPerMessage: 0)
        guard case .helloReply(let reply) = try call(.hello(Hello(capabilities: .errorReports, limits: proposal))) else {
            throw ToolError("HELLO: unexpected reply")
        }
        limits = reply.limits
        decoder.limits = reply.limits
        return reply.limits
    }

    /// Sends a request (with `fd` attached in its own sendmsg) and returns its reply's message;
    /// an error reply throws.
    func call(_ message: Message, fd attached: Int32? = nil) throws -> Message {
        try send(Frame(message, id: MessageID(rawValue: nextID)), fd: attached)
        nextID &+= 1
        let reply = try receive()
        if case .error(let opcode, let report) = reply.message {
            throw ToolError("\(opcode) refused: \(report.status) detail \(report.detail) \(report.text)")
        }
        return reply.message
    }

    func send(_ frame: Frame, fd attached: Int32? = nil) throws {
        var bytes = frame.encoded
        guard let attached else {
            try bytes.withUnsafeBytes { (raw) throws in try sendRaw(raw) }
            return
        }
        var fds = [attached]
        let sent = bytes.withUnsafeMutableBytes { raw in
            var iov = iovec(iov_base: raw.baseAddress, iov_len: raw.count)
            return withUnsafeMutablePointer(to: &iov) { iovPointer in
                var header = msghdr()
                header.msg_iov = iovPointer
                header.msg_iovlen = 1
                let control = UnsafeMutableRawPointer.allocate(byteCount: its_cmsg_space_fds(1), alignment: 8)
                defer { control.deallocate() }
                its_cmsg_put_fds(&header, control, &fds, 1)
                return sendmsg(fd, &header, Int32(MSG_NOSIGNAL))
            }
        }
        guard sent == bytes.count else { throw ToolError.system("sendmsg") }
    }

    /// Writes already-encoded frames.
    @inline(__always)
    func sendRaw(_ bytes: UnsafeRawBufferPointer) throws {
        try writeAll(fd, bytes)
    }

    /// The next frame from the server; EVENT frames are skipped (its-load subscribes to none).
    func receive() throws -> Frame {
        while true {
            switch decoder.decode(buffer[start ..< end], fdCount: 0) {
            case .frame(let frame, let consumed):
                start += consumed
                if start == end { start = 0; end = 0 }
                if frame.flags.contains(.event) { continue }
                return frame
            case .failure(let error):
                throw ToolError("malformed frame from the server: \(error)")
            case .needMoreData:
                if end + 65536 > buffer.count {
                    let pending = end - start
                    buffer.withUnsafeMutableBytes { raw in
                        // SAFETY: start ..< end lies inside the buffer; memmove handles the overlap.
                        _ = memmove(raw.baseAddress!, raw.baseAddress! + start, pending)
                    }
                    start = 0
                    end = pending
                }
                let count = buffer.withUnsafeMutableBytes { raw in
                    // SAFETY: end + 65536 <= raw.count after the compaction above.
                    recv(fd, raw.baseAddress! + end, raw.count - end, 0)
                }
                if count < 0, its_errno() == EINTR { continue }
                guard count > 0 else { throw count == 0 ? ToolError("the server closed the connection") : ToolError.system("recv") }
                end += count
            }
        }
    }
}

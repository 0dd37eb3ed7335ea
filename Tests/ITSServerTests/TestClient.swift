import CITSSupport
import Glibc
import ITSWire

/// A blocking client for tests: connects to a Unix socket, sends frames (with descriptors in the
/// same sendmsg) and reads whole frames back.
final class TestClient {
    let fd: Int32
    var decoder = FrameDecoder(role: .client, limits: .serverMaximum)
    private var buffer: [UInt8] = []

    /// Seconds a receive waits: long, because a debug itsd on a machine busy with every other test
    /// can take seconds to answer; no test waits for it to run out unless something is wrong.
    static let receiveTimeout = 30

    init?(path: String) {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path.utf8) }
        var timeout = timeval(tv_sec: Self.receiveTimeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if connected != 0 {
            Glibc.close(fd)
            return nil
        }
    }

    /// A client on a connected socket of any kind (TCP tests).
    init(connected fd: Int32) {
        self.fd = fd
        var timeout = timeval(tv_sec: Self.receiveTimeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { Glibc.close(fd) }

    /// Sends raw bytes, with `fds` attached to this one sendmsg.
    func sendBytes(_ bytes: [UInt8], fds: [Int32] = []) {
        var bytes = bytes
        bytes.withUnsafeMutableBytes { buffer in
            var iov = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
            var message = msghdr()
            withUnsafeMutablePointer(to: &iov) { iovPointer in
                message.msg_iov = iovPointer
                message.msg_iovlen = 1
                let control = UnsafeMutableRawPointer.allocate(byteCount: max(1, its_cmsg_space_fds(fds.count)), alignment: 8)
                defer { control.deallocate() }
                if !fds.isEmpty { fds.withUnsafeBufferPointer { its_cmsg_put_fds(&message, control, $0.baseAddress, fds.count) } }
                precondition(sendmsg(fd, &message, Int32(MSG_NOSIGNAL)) == buffer.count, "sendmsg")
            }
        }
    }

    func send(_ frame: Frame, fds: [Int32] = []) { sendBytes(frame.encoded, fds: fds) }

    /// The next frame from the server, or nil when the connection closed (or timed out).
    func receive() -> Frame? {
        while true {
            switch decoder.decode(buffer, fdCount: 0) {
            case .frame(let frame, let consumed):
                buffer.removeFirst(consumed)
                return frame
            case .failure(let error):
                fatalError("the server sent a malformed frame: \(error)")
            case .needMoreData:
                var chunk = [UInt8](repeating: 0, count: 65536)
                let count = recv(fd, &chunk, chunk.count, 0)
                if count <= 0 { return nil }
                buffer += chunk[0 ..< count]
            }
        }
    }
}

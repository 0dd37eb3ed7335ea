import Foundation
import Glibc
import ITSWire

/// A stand-in for itsd on a Unix socket, for what a live itsd cannot show (a server that never
/// answers, an older minor version, the exact bytes a call sends). It accepts one connection on a
/// thread of its own and answers each request with what `answer` returns for it, or not at all (nil).
/// The thread holds the server until the client closes its connection.
final class FakeServer: @unchecked Sendable {
    let socketPath: String
    private let listener: Int32
    private let lock = NSLock()
    /// Guarded by `lock`.
    private var messages: [Message] = []

    /// The requests received so far, in order.
    var received: [Message] { lock.withLock { messages } }

    init?(answer: @escaping @Sendable (Message) -> Message?) {
        socketPath = temporaryPath("fake-itsd.sock")
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: socketPath.utf8) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard listener >= 0, bound == 0, listen(listener, 4) == 0 else { return nil }
        Thread { [self] in serve(answer) }.start()
    }

    deinit { unlink(socketPath) }

    private func serve(_ answer: (Message) -> Message?) {
        let fd = accept(listener, nil, nil)
        close(listener)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let decoder = FrameDecoder(role: .server, limits: .defaults)
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &chunk, chunk.count, 0)
            guard count > 0 else { return }
            buffer += chunk[..<count]
            while case .frame(let frame, let consumed) = decoder.decode(buffer[...], fdCount: 0) {
                buffer.removeFirst(consumed)
                lock.withLock { messages.append(frame.message) }
                guard let reply = answer(frame.message) else { continue }
                let bytes = Frame(reply, id: frame.messageID).encoded
                _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }
    }
}

/// Runs `body` on a thread of its own after `seconds`.
func afterDelay(_ seconds: Double, _ body: @escaping @Sendable () -> Void) {
    Thread {
        usleep(UInt32(seconds * 1_000_000))
        body()
    }.start()
}

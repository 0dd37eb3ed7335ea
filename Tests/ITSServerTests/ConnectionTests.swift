import CITSSupport
import Glibc
import ITSWire
import Synchronization
import Testing
@testable import ITSServer

/// Runs `client` on a new thread while this thread runs `loop`, until the client is done.
func runLoop(_ loop: EventLoop, whileClient client: @escaping @Sendable () -> Void) {
    let done = Atomic<Bool>(false)
    let thread = startThread {
        client()
        done.store(true, ordering: .releasing)
    }
    while !done.load(ordering: .acquiring) {
        loop.runOnce()
        usleep(200)
    }
    loop.runOnce()
    pthread_join(thread, nil)
}

func temporarySocketPath(_ name: String) -> String { "/tmp/itsd-test-\(getpid())-\(name).sock" }

/// What the server side of the test observed, filled on the loop thread (the test's own thread).
final class ServerLog: @unchecked Sendable {
    var frames: [Frame] = []
    var fdCounts: [Int] = []
    var closed = 0
}

@Suite(.serialized) struct ConnectionTests {
    /// A listener and connections whose handler answers PING and counts descriptors; the client
    /// thread exercises framing, descriptors and malformed frames over a real socket.
    @Test func framesRepliesAndDescriptorsOverARealSocket() throws {
        let path = temporarySocketPath("frames")
        let loop = EventLoop()
        let log = ServerLog()
        var connections: [Connection] = []
        let listener = try UnixListener(path: path, loop: loop) { fd, peer in
            let connection = try! Connection(id: UInt64(connections.count), fd: fd, peer: peer, loop: loop,
                                             decoder: FrameDecoder(role: .server, limits: .defaults))
            connection.onFrame = { connection, frame, fds in
                log.frames.append(frame)
                log.fdCounts.append(fds.count)
                fds.forEach { _ = close($0) }
                if case .ping(let nonce) = frame.message { connection.send(Frame(.pingReply(nonce: nonce), id: frame.messageID)) }
            }
            connection.onClose = { _ in log.closed += 1 }
            connections.append(connection)
        }
        var mode = stat()
        #expect(stat(path, &mode) == 0 && mode.st_mode & 0o777 == 0o600, "socket file mode 0600")

        let results = ClientResults()
        runLoop(loop) {
            guard let client = TestClient(path: path) else { return }
            // PING, split across two writes.
            let ping = Frame(.ping(nonce: 42), id: MessageID(1)).encoded
            client.sendBytes(Array(ping[0 ..< 5]))
            usleep(2000)
            client.sendBytes(Array(ping[5...]))
            results.replies.append(client.receive())
            // A PING carrying a descriptor: FD_COUNT_MISMATCH, and the connection goes on.
            let eventfd = its_eventfd(0, 0)
            client.send(Frame(.ping(nonce: 43), id: MessageID(2)), fds: [eventfd])
            close(eventfd)
            results.replies.append(client.receive())
            // An unknown opcode in a well-formed header: UNKNOWN_OPCODE, the connection goes on.
            var unknown = Frame(.ping(nonce: 44), id: MessageID(3)).encoded
            unknown[4] = 0xEE
            unknown[5] = 0x7E
            client.sendBytes(unknown)
            results.replies.append(client.receive())
            client.send(Frame(.ping(nonce: 45), id: MessageID(4)))
            results.replies.append(client.receive())
            // A length below the header cannot be framed: error reply, then the server closes.
            client.sendBytes([8, 0, 0, 0, 2, 0, 0, 0] + [UInt8](repeating: 0, count: 8))
            results.replies.append(client.receive())
            results.replies.append(client.receive())
        }
        listener.close()
        #expect(access(path, F_OK) != 0, "the socket file is removed")

        #expect(results.replies.count == 6)
        #expect(results.replies[0]?.message == .pingReply(nonce: 42))
        #expect(results.replies[1]?.status == .fdCountMismatch)
        #expect(results.replies[1]?.messageID == MessageID(2))
        #expect(results.replies[2]?.status == .unknownOpcode)
        #expect(results.replies[3]?.message == .pingReply(nonce: 45))
        #expect(results.replies[4]?.status == .lengthBelowHeader)
        #expect(results.replies[5] == nil, "closed after an unframeable frame")
        #expect(log.frames.count == 2 && log.fdCounts == [0, 0])
        #expect(log.closed == 1)
    }

    /// A peer whose uid and gid are not admitted gets one PERMISSION_DENIED frame (opcode 0,
    /// message id 0, its credentials in the text) and the connection is closed.
    @Test func peersOutsideTheAllowListAreRefused() throws {
        let path = temporarySocketPath("refused")
        let loop = EventLoop()
        var options = UnixListener.Options()
        options.allowedUIDs = [12345]
        options.allowedGIDs = []
        var accepted = 0
        let listener = try UnixListener(path: path, options: options, loop: loop) { fd, _ in
            accepted += 1
            close(fd)
        }
        let results = ClientResults()
        runLoop(loop) {
            guard let client = TestClient(path: path) else { return }
            // The server may have closed already: the request may not even be sent.
            _ = client.trySendBytes(Frame(.ping(nonce: 1), id: MessageID(1)).encoded)
            results.replies.append(client.receive())
            results.replies.append(client.receive())
        }
        #expect(accepted == 0 && listener.refused == 1)
        #expect(results.replies.count == 2)
        let refusal = results.replies.first ?? nil
        #expect(refusal?.errorReport?.status == .permissionDenied, "\(String(describing: refusal))")
        #expect(refusal?.messageID == MessageID(0) && refusal?.errorOpcode == Opcode(0))
        if case .error(_, let report)? = refusal?.message { #expect(report.text.contains("uid \(getuid())")) }
        #expect(results.replies.last == .some(nil), "then the connection is closed")
        listener.close()
    }

    @Test func aLiveSocketIsNotTakenOverButAStaleOneIs() throws {
        let path = temporarySocketPath("live")
        let loop = EventLoop()
        let first = try UnixListener(path: path, loop: loop) { fd, _ in close(fd) }
        #expect(throws: SystemError.self) { _ = try UnixListener(path: path, loop: loop) { fd, _ in close(fd) } }
        // Leave a stale socket file behind: a bound socket that never listens.
        first.close()
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path.utf8) }
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(stale, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        close(stale)
        let second = try UnixListener(path: path, loop: loop) { fd, _ in close(fd) }
        second.close()
    }
}

/// Replies the client thread collected, read after the thread is joined.
final class ClientResults: @unchecked Sendable {
    var replies: [Frame?] = []
}

import Glibc
import ITSWire
import Testing
@testable import ITSServer

/// Replies queued on a connection with a ``SendCoalescer`` leave together before the loop next
/// polls, in order; without one they leave at once.
@Suite(.serialized) struct SendCoalescerTests {
    private static func socketPair() -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        return (fds[0], fds[1])
    }

    /// A loop with a coalescer, and a server connection on it that uses it; the peer's descriptor,
    /// which the caller closes.
    private static func coalescedConnection() throws -> (EventLoop, SendCoalescer, Connection, Int32) {
        let loop = EventLoop()
        let coalescer = SendCoalescer(loop: loop)
        let (server, client) = socketPair()
        let connection = try Connection(id: 1, fd: server, peer: PeerCredentials(pid: 0, uid: 0, gid: 0), loop: loop,
                                        decoder: FrameDecoder(role: .server, limits: .defaults))
        connection.coalescer = coalescer
        return (loop, coalescer, connection, client)
    }

    /// Bytes the peer can read now, without waiting.
    private static func available(_ fd: Int32) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 65536)
        let count = recv(fd, &bytes, bytes.count, Int32(MSG_DONTWAIT))
        return count > 0 ? Array(bytes[0 ..< count]) : []
    }

    @Test func queuedRepliesLeaveTogetherBeforeThePoll() throws {
        let (loop, coalescer, connection, client) = try Self.coalescedConnection()
        defer { close(client) }
        let frames = (1 ... 32 as ClosedRange<UInt64>).map { Frame(.pingReply(nonce: $0), id: MessageID(rawValue: UInt32($0))) }
        for frame in frames { connection.send(frame) }
        #expect(Self.available(client).isEmpty, "nothing is sent before the loop's prepare phase")
        #expect(connection.pendingOutput == frames.count * frames[0].encoded.count)
        loop.runOnce()
        #expect(Self.available(client) == frames.flatMap(\.encoded), "all 32, in order, in one read")
        #expect(connection.pendingOutput == 0)
        // Without a coalescer: at once.
        connection.coalescer = nil
        connection.send(frames[0])
        #expect(Self.available(client) == frames[0].encoded)
        connection.close()
        coalescer.close()
        loop.runOnce()
    }

    @Test func aConnectionClosedWhileQueuedSendsNothing() throws {
        let (loop, coalescer, connection, client) = try Self.coalescedConnection()
        defer { close(client) }
        connection.send(Frame(.pingReply(nonce: 1), id: MessageID(rawValue: 1)))
        connection.close()
        loop.runOnce()
        var byte: UInt8 = 0
        #expect(recv(client, &byte, 1, Int32(MSG_DONTWAIT)) == 0, "the peer sees the close and no bytes")
        coalescer.close()
        loop.runOnce()
    }
}

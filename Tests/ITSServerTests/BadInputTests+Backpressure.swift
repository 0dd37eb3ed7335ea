import Glibc
import ITSWire
import Testing
@testable import ITSServer

/// Clients that do not keep up with their replies (Protocol/PROTOCOL.md, 2 "Ordering and
/// pipelining"): the server stops reading from them instead of queueing without bound, and every
/// reply still arrives, in order, once they read.
extension BadInputTests {
    /// PINGs, 64 KiB at a time, with no reply read: the socket soon takes no more, itsd's resident
    /// memory stays bounded, STATS shows the connection paused with a bounded send buffer, and
    /// after the client drains every reply arrives in request order.
    @Test func aClientThatDoesNotReadStopsTheServerReading() throws {
        let (itsd, path) = try #require(startItsd("no-reader"), "the itsd executable next to the test bundle")
        defer { itsd.stop() }
        let vm = try #require(ClientVM.hello(path))
        let fd = vm.client.fd
        let memoryBefore = itsd.residentBytes()
        let pingsPerWrite = 65536 / 24
        var generated = 0
        var pending: [UInt8] = []
        var offset = 0
        var sent = 0
        // The most the test sends: a server that never stopped reading would take all of it.
        let cap = 32 << 20
        while sent < cap {
            if offset == pending.count {
                pending = (generated ..< generated + pingsPerWrite).flatMap { Frame(.ping(nonce: UInt64($0)), id: MessageID(rawValue: UInt32($0))).encoded }
                generated += pingsPerWrite
                offset = 0
            }
            let count = sendAvailable(fd, pending[offset...])
            offset += count
            sent += count
            if count == 0, !waitWritable(fd, milliseconds: 500) { break }
        }
        // It stops once a megabyte of replies waits; socket buffers hold a little more.
        #expect(sent < 8 << 20, "the server kept reading: \(sent) bytes")
        let growth = itsd.residentBytes() - memoryBefore
        #expect(growth < 8 << 20, "itsd grew by \(growth) bytes while \(sent) bytes of PINGs waited")
        // STATS, asked on another connection, shows the one connection not read and what its send
        // buffer holds: over the high-water mark, and bounded by twice it and one read's replies.
        let observer = try #require(ClientVM.hello(path))
        let stats = try #require(observer.statistics(.all))
        #expect(stats["connections_reading_paused"] == .gauge(1), "\(String(describing: stats["connections_reading_paused"]))")
        let buffered: Int64 = if case .gauge(let bytes)? = stats["send_buffered_bytes"] { bytes } else { -1 }
        #expect(buffered > Int64(Connection.outputHighWater) && buffered < Int64(2 * Connection.outputHighWater + Connection.readBudget),
                "the send buffers held \(buffered) bytes")

        // Drain: finish the write under way while reading, then read the rest.
        var reader = FrameReader(fd: fd)
        var received = 0
        var wrong: [String] = []
        func check(_ frame: Frame) {
            if frame.message != .pingReply(nonce: UInt64(received)) || frame.messageID.rawValue != UInt32(received) {
                wrong.append("\(received): \(frame)")
            }
            received += 1
        }
        while offset < pending.count {
            let wrote = sendAvailable(fd, pending[offset...])
            offset += wrote
            let read = reader.readAvailable(limit: 1 << 20)
            reader.framesBuffered().forEach(check)
            if wrote == 0, read == 0 { usleep(1000) }
        }
        while received < generated, let frame = reader.next() { check(frame) }
        #expect(received == generated, "\(received) of \(generated) replies")
        #expect(wrong.isEmpty, "\(wrong.prefix(3))")
    }

    /// A client that reads, but more slowly than it asks, keeps the send buffer from ever running
    /// dry. Sent bytes must still leave it: while 48 MiB of 64 KiB replies go through, the buffer
    /// holds no more than a few times the high-water mark. This runs a Connection in process over a
    /// real socket, answering every PING with a 64 KiB frame that costs a copy to encode: a debug
    /// itsd cannot produce replies faster than a test reads them.
    @Test func aReaderThatNeverCatchesUpCannotGrowTheSendBuffer() throws {
        let path = temporarySocketPath("slow-reader")
        let loop = EventLoop()
        let log = SendBufferLog()
        var connections: [Connection] = []
        let image = [UInt8](repeating: 0xA5, count: 65536 - 48)
        let reply = Message.snapshotReply(SnapshotChunk(vm: VMID(rawValue: 1), offset: 0, totalLength: UInt64(image.count), isLast: true, bytes: image[...]))
        let listener = try UnixListener(path: path, loop: loop) { fd, peer in
            let connection = try! Connection(id: 0, fd: fd, peer: peer, loop: loop, decoder: FrameDecoder(role: .server, limits: .defaults))
            connection.onFrame = { connection, frame, fds in
                fds.forEach { _ = close($0) }
                connection.send(Frame(reply, id: frame.messageID))
                log.largest = max(log.largest, connection.bufferedOutput)
                log.answered += 1
            }
            connections.append(connection)
        }
        defer { listener.close() }
        let client = ClientResults()
        runLoop(loop) {
            guard let connection = TestClient(path: path) else { return }
            let requests = (0 ..< 16).flatMap { Frame(.ping(nonce: UInt64($0)), id: MessageID(rawValue: UInt32($0))).encoded }
            var offset = 0
            var read = 0
            var scratch = [UInt8](repeating: 0, count: 64 << 10)
            // At most 64 KiB a millisecond: slower than the server answers.
            while read < 48 << 20 {
                offset = (offset + sendAvailable(connection.fd, requests[offset...])) % requests.count
                let count = scratch.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                read += max(count, 0)
                usleep(1000)
            }
            client.replies.append(Frame(.pingReply(nonce: UInt64(read)), id: MessageID(0)))
        }
        #expect(client.replies.count == 1, "the client read its 48 MiB")
        #expect(log.answered > 48 * 16, "\(log.answered) requests answered")
        #expect(log.largest < 3 * Connection.outputHighWater, "the send buffer held up to \(log.largest) bytes")
    }
}

/// What the slow reader's server side saw, written on the loop thread (the test's own).
final class SendBufferLog: @unchecked Sendable {
    var largest = 0
    var answered = 0
}

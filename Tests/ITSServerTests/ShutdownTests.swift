import Glibc
import ITSWire
import Testing
@testable import ITSServer

/// SIGTERM and SIGINT (docs/OPERATIONS.md, "Starting and stopping"): itsd stops accepting and
/// reading, sends every reply it owes, closes, removes its socket file and exits 0.
@Suite struct ShutdownTests {
    /// A client pipelines PINGs and HPPIs (served by the lanes) without reading until itsd stops
    /// reading it with more than a megabyte of replies waiting; then SIGTERM. The client reads
    /// afterwards: every reply arrives, in order and whole, more than the socket buffers alone
    /// hold, and then the connection ends. No new connection is accepted once the signal is
    /// handled; itsd exits 0 soon after the client has read, and its socket file is gone.
    @Test func sigtermSendsEveryReplyOwedThenExitsZero() throws {
        let (itsd, path) = try #require(startItsd("shutdown"), "the itsd executable next to the test bundle")
        defer { itsd.stop() }
        let vm = try #require(ClientVM.hello(path))
        #expect(vm.createVM())
        let fd = vm.client.fd
        func request(_ index: Int) -> Message {
            index % 3 == 0 ? .hppi(vm.vm, Wire.VCPU(rawValue: UInt16(index % 2))) : .ping(nonce: UInt64(index))
        }
        let perWrite = 65536 / 24
        var generated = 0
        var pending: [UInt8] = []
        var offset = 0
        while generated < 2_000_000 {
            if offset == pending.count {
                pending = (generated ..< generated + perWrite).flatMap { Frame(request($0), id: MessageID(rawValue: UInt32($0))).encoded }
                generated += perWrite
                offset = 0
            }
            let count = sendAvailable(fd, pending[offset...])
            offset += count
            if count == 0, !waitWritable(fd, milliseconds: 500) { break }
        }
        let sentRequests = generated - (pending.count - offset) / 24
        #expect(kill(itsd.pid, SIGTERM) == 0)
        // Once the signal is handled the socket file is gone and nobody else gets in.
        for _ in 0 ..< 300 where access(path, F_OK) == 0 { usleep(10_000) }
        #expect(access(path, F_OK) != 0, "the socket file is removed at once")
        #expect(TestClient(path: path) == nil, "no connection is accepted after SIGTERM")

        var reader = FrameReader(fd: fd)
        var received = 0
        var wrong: [String] = []
        while let frame = reader.next() {
            let expected: Bool = switch frame.message {
            case .hppiReply(let lpi): received % 3 == 0 && lpi.intid.rawValue == 1023
            case .pingReply(let nonce): received % 3 != 0 && nonce == UInt64(received)
            default: false
            }
            if !expected || frame.messageID.rawValue != UInt32(received) { wrong.append("\(received): \(frame)") }
            received += 1
        }
        #expect(wrong.isEmpty, "\(wrong.prefix(3))")
        // itsd stopped reading with more than outputHighWater bytes of replies in its own buffer;
        // the kernel's socket buffers hold a fifth of that. All of it must arrive.
        #expect(received * 24 > Connection.outputHighWater, "\(received) replies (of \(sentRequests) requests sent) arrived")
        #expect(received <= sentRequests)
        let status = itsd.waitForExit(seconds: 4)
        #expect(status.map { $0 & 0x7F == 0 && ($0 >> 8) & 0xFF == 0 } == true, "itsd exited with wait status \(String(describing: status))")
    }

    /// A client that never reads what it is owed does not hold the shutdown beyond
    /// --shutdown-timeout: itsd closes its connection then and exits 0.
    @Test func aClientThatDoesNotReadIsClosedAtTheShutdownTimeout() throws {
        let (itsd, path) = try #require(startItsd("shutdown-timeout", ["--shutdown-timeout", "1"]), "the itsd executable next to the test bundle")
        defer { itsd.stop() }
        let vm = try #require(ClientVM.hello(path))
        let pings = (0 ..< 65536 / 24).flatMap { Frame(.ping(nonce: UInt64($0)), id: MessageID(rawValue: UInt32($0))).encoded }
        var sent = 0
        while sent < 64 << 20 {
            let count = sendAvailable(vm.client.fd, pings[(sent % pings.count)...])
            sent += count
            if count == 0, !waitWritable(vm.client.fd, milliseconds: 500) { break }
        }
        let start = monotonicNanoseconds()
        #expect(kill(itsd.pid, SIGTERM) == 0)
        let status = itsd.waitForExit(seconds: 10)
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        #expect(status.map { $0 & 0x7F == 0 && ($0 >> 8) & 0xFF == 0 } == true, "itsd exited with wait status \(String(describing: status))")
        #expect(seconds >= 0.9 && seconds < 5, "itsd exited \(seconds) s after SIGTERM")
        #expect(access(path, F_OK) != 0)
    }
}

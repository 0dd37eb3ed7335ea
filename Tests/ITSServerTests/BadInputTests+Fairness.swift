import Glibc
import ITSWire
import Synchronization
import Testing
@testable import ITSServer

/// One client cannot keep the loop to itself: a connection reads at most Connection.readBudget
/// bytes per loop turn, so others are served between its reads.
extension BadInputTests {
    /// A client writes INJECT frames with NO_REPLY as fast as its socket takes them and reads
    /// nothing (every MSI is valid, so nothing is owed to it and nothing stops the server reading
    /// it). Meanwhile another client's PINGs are answered within a fraction of a second each, and
    /// the flood is being served all along (STATS counts its MSIs).
    @Test func aFloodingClientDoesNotStarveTheOthers() throws {
        let (itsd, path) = try #require(startItsd("flood"), "the itsd executable next to the test bundle")
        defer { itsd.stop() }
        let flooder = try #require(ClientVM.hello(path))
        #expect(flooder.createProgrammedVM())
        let other = try #require(ClientVM.hello(path))
        #expect(other.call(.ping(nonce: 0))?.message == .pingReply(nonce: 0))

        // 64 KiB of INJECTs of DeviceID 7 EventID 0 (LPI 8192 on vCPU 1), written again and again.
        let inject = Frame(.inject(flooder.vm, Wire.DeviceID(rawValue: 7), Wire.EventID(rawValue: 0)), id: MessageID(1), noReply: true).encoded
        let chunk = [UInt8]((0 ..< 65536 / inject.count).flatMap { _ in inject })
        let stop = Atomic<Bool>(false)
        let written = Atomic<Int>(0)
        let fd = flooder.client.fd
        let thread = startThread {
            var offset = 0
            while !stop.load(ordering: .relaxed) {
                let count = sendAvailable(fd, chunk[offset...])
                offset = (offset + count) % chunk.count
                written.add(count, ordering: .relaxed)
                if count == 0 { _ = waitWritable(fd, milliseconds: 50) }
            }
        }
        // The flood is under way once the socket has taken more than its buffers hold.
        for _ in 0 ..< 500 where written.load(ordering: .relaxed) < 4 << 20 { usleep(10_000) }
        var slowest: UInt64 = 0
        var answered = 0
        for nonce in 1 ... 20 as ClosedRange<UInt64> {
            let start = monotonicNanoseconds()
            let reply = other.call(.ping(nonce: nonce))
            slowest = max(slowest, monotonicNanoseconds() - start)
            if reply?.message == .pingReply(nonce: nonce) { answered += 1 }
            usleep(20_000)
        }
        let flooded = written.load(ordering: .relaxed)
        stop.store(true, ordering: .relaxed)
        pthread_join(thread, nil)
        #expect(flooded > 4 << 20, "the flooder wrote \(flooded) bytes")
        #expect(answered == 20, "\(answered) of 20 PINGs answered during the flood")
        #expect(slowest < 1_000_000_000, "the slowest PING took \(slowest / 1_000_000) ms")
        let injected = other.statistics(.all)?["msis_inject_total"]
        #expect(injected.map { if case .counter(let n) = $0 { n > 10000 } else { false } } == true,
                "the flood was served meanwhile: \(String(describing: injected))")
    }
}

extension ClientVM {
    /// STATS of `id` (or the whole server) by name; nil when the reply is not a report.
    func statistics(_ id: VMID) -> [String: StatValue]? {
        guard let frame = call(.stats(id, includeSchema: true)) else { return nil }
        return StatsLog.values(frame)
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

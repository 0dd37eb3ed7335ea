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
    /// it). Meanwhile another client's PINGs are all answered, promptly (without the read budget
    /// not one is while the flood lasts), and the flood is served all along (STATS counts its MSIs).
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
        let stalls = Atomic<Int>(0)
        let fd = flooder.client.fd
        let thread = startThread {
            var offset = 0
            while !stop.load(ordering: .relaxed) {
                let count = sendAvailable(fd, chunk[offset...])
                offset = (offset + count) % chunk.count
                written.add(count, ordering: .relaxed)
                if count == 0 {
                    stalls.add(1, ordering: .relaxed)
                    _ = waitWritable(fd, milliseconds: 50)
                }
            }
        }
        // The flood is under way once itsd has taken more than the socket buffers hold.
        for _ in 0 ..< 2000 where written.load(ordering: .relaxed) < 1 << 20 { usleep(10_000) }
        let (writtenBefore, stallsBefore) = (written.load(ordering: .relaxed), stalls.load(ordering: .relaxed))
        var slowest: UInt64 = 0
        var answered = 0
        for nonce in 1 ... 20 as ClosedRange<UInt64> {
            let start = monotonicNanoseconds()
            let reply = other.call(.ping(nonce: nonce))
            slowest = max(slowest, monotonicNanoseconds() - start)
            guard reply?.message == .pingReply(nonce: nonce) else { break }
            answered += 1
            usleep(20_000)
        }
        let (writtenDuring, stallsDuring) = (written.load(ordering: .relaxed) - writtenBefore, stalls.load(ordering: .relaxed) - stallsBefore)
        stop.store(true, ordering: .relaxed)
        pthread_join(thread, nil)
        #expect(writtenBefore >= 1 << 20, "the flooder wrote \(writtenBefore) bytes before the PINGs")
        // Throughout the PINGs the flood went on, faster than itsd took it: the socket filled up.
        #expect(writtenDuring > 0 && stallsDuring > 0, "during the PINGs the flooder wrote \(writtenDuring) bytes and found the socket full \(stallsDuring) times")
        #expect(answered == 20, "\(answered) of 20 PINGs answered during the flood")
        // Typically a few milliseconds; the bound leaves room for a machine busy with other tests.
        #expect(slowest < 3_000_000_000, "the slowest PING took \(slowest / 1_000_000) ms")
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

/// NO_REPLY requests queue lane work that no reply paces: a connection may have at most
/// `noReplyLaneWorkLimit` such items queued and not yet reached by the lanes.
extension BadInputTests {
    /// 20000 INJECTs and 500 INJECT_BATCHes of 4, all NO_REPLY, in one write to a server that
    /// allows 16 unanswered lane work items per connection: it stops reading at the limit again and
    /// again (no_reply_holds_total), never has more than the limit plus one request's items queued
    /// (no_reply_lane_work_peak), loses no MSI, and owes the lanes nothing once a PING is answered.
    @Test func noReplyLaneWorkPerConnectionIsBounded() throws {
        let log = NoReplyLog()
        try runServer("no-reply-limit", configure: { $0.noReplyLaneWorkLimit = 16 }) { path in
            guard let vm = ClientVM.hello(path), vm.createProgrammedVM() else { return }
            var bytes: [UInt8] = []
            for index in 0 ..< 20000 {
                let event = Wire.EventID(rawValue: UInt32(index % 4))
                bytes += Frame(.inject(vm.vm, Wire.DeviceID(rawValue: 7), event), id: MessageID(1), noReply: true).encoded
                if index % 40 == 0 {
                    let entries = (0 ..< 4 as Range<UInt32>).map { InjectEntry(deviceID: Wire.DeviceID(rawValue: 7), eventID: Wire.EventID(rawValue: $0)) }
                    bytes += Frame(.injectBatch(InjectBatch(vm: vm.vm, entries: entries)), id: MessageID(2), noReply: true).encoded
                }
            }
            // Written without blocking while reading whatever comes back: nothing should.
            var reader = FrameReader(fd: vm.client.fd)
            var offset = 0
            while offset < bytes.count {
                let count = sendAvailable(vm.client.fd, bytes[offset...])
                offset += count
                if reader.readAvailable(limit: 1 << 20) > 0 { log.unexpected += reader.framesBuffered() }
                if count == 0 { _ = waitWritable(vm.client.fd, milliseconds: 10) }
            }
            log.ping = vm.call(.ping(nonce: 7))
            log.stats = vm.statistics(.all)
            log.acknowledged = vm.drain(1)
        }
        #expect(log.unexpected.isEmpty, "\(log.unexpected.prefix(3))")
        #expect(log.ping?.message == .pingReply(nonce: 7))
        let stats = try #require(log.stats)
        #expect(stats["msis_inject_total"] == .counter(20000))
        #expect(stats["msis_inject_batch_total"] == .counter(2000))
        #expect(stats["msis_injected_total"] == .counter(22000))
        let holds: UInt64 = if case .counter(let n)? = stats["no_reply_holds_total"] { n } else { 0 }
        #expect(holds > 10, "reading stopped \(holds) times")
        let peak: Int64 = if case .gauge(let n)? = stats["no_reply_lane_work_peak"] { n } else { -1 }
        #expect((16 ... 19).contains(peak), "up to \(peak) items unanswered")
        #expect(stats["no_reply_lane_work"] == .gauge(0))
        #expect(log.acknowledged == [8192, 8193, 8194, 8195])
    }
}

final class NoReplyLog: @unchecked Sendable {
    var ping: Frame?
    var unexpected: [Frame] = []
    var stats: [String: StatValue]?
    var acknowledged: [UInt32] = []
}

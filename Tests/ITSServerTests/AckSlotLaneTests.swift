import Glibc
import Synchronization
import ITSModel
import ITSWire
import Testing
@testable import ITSServer

/// Acknowledge slots on the lanes (Protocol/PROTOCOL.md, section 6.16b): a waiting WAIT_ACK takes an
/// LPI before the slot does, a slot survives a restored redistributor with its counters, and a
/// slot installed while an LPI is deliverable takes it at once.
@Suite(.serialized) struct AckSlotLaneTests {
    private func install(_ slot: SharedSlot, on harness: LaneHarness, vcpu: UInt16 = 0) throws {
        let mapped = try AcknowledgeSlot(fd: slot.fd, offset: UInt64(SharedSlot.offset))
        harness.wait(for: [harness.request(.setAcknowledgeSlot(mapped), vcpu: VCPUIndex(vcpu))])
    }

    /// Runs everything queued on `vcpu`'s lane.
    private func settle(_ harness: LaneHarness, vcpu: UInt16 = 0) {
        harness.wait(for: [harness.request(.highestPriorityPending(priorityMask: .lowest), vcpu: VCPUIndex(vcpu))])
    }

    @Test func aSlotInstalledWhileAnLPIIsDeliverableTakesItAtOnce() throws {
        let harness = LaneHarness.twoVCPUsEightEvents()
        defer { harness.shutDown() }
        let slot = try #require(SharedSlot())
        slot.store(.armed(priorityMask: 0xFF))
        harness.inject(1, 2)   // 8194 on vCPU 0
        settle(harness)
        try install(slot, on: harness)
        #expect(slot.value == .delivered(intid: 8194, priority: 0xA0), "\(slot.value)")
        #expect(harness.drain(0) == [])
    }

    @Test func aWaitingWaitAckTakesFirst() throws {
        let harness = LaneHarness.twoVCPUsEightEvents()
        defer { harness.shutDown() }
        let slot = try #require(SharedSlot())
        slot.store(.armed(priorityMask: 0xFF))
        try install(slot, on: harness)
        let waiting = harness.request(.waitAcknowledge(priorityMask: .lowest), vcpu: VCPUIndex(0))
        settle(harness)
        harness.inject(1, 0)
        harness.inject(1, 2)
        harness.wait(for: [waiting])
        guard case .acknowledged(let first, _, _)? = harness.replies[waiting] else { return #expect(Bool(false), "WAIT_ACK answered") }
        settle(harness)
        #expect(first.rawValue == 8192)
        #expect(slot.value == .delivered(intid: 8194, priority: 0xA0), "the slot took the second: \(slot.value)")
    }

    @Test func aSlotSurvivesARestoredRedistributor() throws {
        let harness = LaneHarness.twoVCPUsEightEvents()
        defer { harness.shutDown() }
        let slot = try #require(SharedSlot())
        slot.store(.armed(priorityMask: 0xFF))
        try install(slot, on: harness)
        harness.inject(1, 0)
        settle(harness)
        #expect(slot.take().intid == 8192)
        // As RESTORE_VM hands the lane the vCPU's redistributor state again.
        let snapshot = harness.request(.snapshot, vcpu: VCPUIndex(0))
        harness.wait(for: [snapshot])
        guard case .redistributor(let saved)? = harness.replies[snapshot] else { return #expect(Bool(false), "snapshot") }
        harness.operations.queue(.attach(harness.vm, memory: harness.memory, redistributors: [saved]), for: VCPUIndex(0))
        harness.inject(1, 4)
        settle(harness)
        #expect(slot.value == .delivered(intid: 8196, priority: 0xA0), "\(slot.value)")
        harness.operations.queue(.statistics(harness.vm, ticket: ReplyTicket(rawValue: 77_777)), for: VCPUIndex(0))
        harness.wait(for: [ReplyTicket(rawValue: 77_777)])
        guard case .statistics(let lane)? = harness.replies[ReplyTicket(rawValue: 77_777)],
              let vcpu = lane.vcpus.first(where: { $0.vcpu == VCPUIndex(0) })
        else { return #expect(Bool(false), "statistics") }
        #expect(vcpu.hasAckSlot && vcpu.ackSlotDeliveries == 2, "the counter survives the restore: \(vcpu.ackSlotDeliveries)")
    }

    /// A VMM taking from the slot as fast as it can makes the lane's compare-and-swaps fail in turn;
    /// when the lane stops retrying with LPIs still deliverable, the word must say so (`more` or
    /// DELIVERED), or a VMM that follows the protocol would sleep beside them. Timing decides how
    /// often the race happens; each trial checks the rule.
    @Test func aVMMTakingAsFastAsItCanIsToldOfWhatIsLeft() throws {
        let harness = LaneHarness(vcpus: 1, lanes: 1)
        defer { harness.shutDown() }
        harness.run([.mapc(CollectionID(0), rdbase: 0, valid: true),
                     .mapd(DeviceID(1), ittAddress: GuestAddress(LaneHarness.itts), eventIDBits: 8, valid: true)]
            + (0 ..< 64).map { .mapti(DeviceID(1), EventID(UInt32($0)), INTID(8192 + UInt32($0)), CollectionID(0)) })
        let slot = try #require(SharedSlot())
        try install(slot, on: harness)
        let log = SlotRaceLog()
        for _ in 0 ..< 100 {
            for event in 0 ..< 64 { harness.inject(1, UInt32(event)) }
            settle(harness)   // all 64 pending; the slot is IDLE with `more`
            slot.store(.armed(priorityMask: 0xFF))
            let taking = Atomic<Bool>(true)
            let taker = startThread {
                var taken = 0
                var toldMore = false
                func takeIfAny() {
                    let word = slot.value
                    guard word.state == .delivered || word.more else { return }
                    let (intid, more) = slot.take()
                    if intid != nil { taken += 1 }
                    if more { toldMore = true }
                }
                while taking.load(ordering: .acquiring) { takeIfAny() }
                takeIfAny()
                log.taken = taken
                log.toldMore = toldMore
            }
            // The lane serves the slot after this request, against the taker.
            settle(harness)
            taking.store(false, ordering: .releasing)
            pthread_join(taker, nil)
            // Disarmed before the ACKs, which the slot would otherwise take from.
            var current = slot.value
            while case (false, let found) = slot.exchange(current, .idle) { current = found }
            if current.state == .delivered { log.taken += 1 }
            let left = harness.drain(0)
            // A VMM following the protocol asks with ACK once a take says `more`: LPIs left over
            // without that would wait for an unrelated operation on the vCPU.
            if !left.isEmpty, !log.toldMore { log.stranded += 1 }
            log.trials += 1
            #expect(log.taken + left.count == 64, "every LPI taken once: \(log.taken) + \(left.count)")
        }
        #expect(log.stranded == 0, "\(log.stranded) of \(log.trials) trials left LPIs deliverable with no word of it")
    }
}

final class SlotRaceLog: @unchecked Sendable {
    // Written by the taker thread, read after it is joined.
    var taken = 0
    var toldMore = false
    var trials = 0
    var stranded = 0
}

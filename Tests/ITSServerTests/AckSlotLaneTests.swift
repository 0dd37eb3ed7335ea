import Glibc
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
}

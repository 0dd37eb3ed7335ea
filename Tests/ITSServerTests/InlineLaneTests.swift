import Glibc
import ITSModel
import Testing
@testable import ITSServer

/// The loop thread borrowing an idle lane (``LaneGroup/runIfIdle(_:onLane:)``): small batches of
/// work that needs nothing of the lane's own loop run at once on the caller; anything else, and
/// anything while the lane holds or has work, goes to the lane, and the order of a lane's work holds.
@Suite(.serialized) struct InlineLaneTests {
    private func harness() -> LaneHarness { LaneHarness.twoVCPUsEightEvents() }

    /// Waits until lane `index` has nothing queued and does not hold its ownership.
    private func settle(_ harness: LaneHarness, lane index: Int) {
        let lane = harness.lanes.lanes[index]
        while !lane.queue.isEmpty || !(lane.ownership?.tryAcquire() ?? true) { usleep(100) }
        lane.ownership?.release()
    }

    @Test func aSmallBatchForAnIdleLaneRunsOnTheCaller() {
        let harness = harness()
        defer { harness.shutDown() }
        settle(harness, lane: 0)
        var batch: [LaneWork] = [.clock(1), .lpi(harness.vm, VCPUIndex(0), .setPending(INTID(8192)))]
        #expect(harness.lanes.runIfIdle(&batch, onLane: 0))
        #expect(batch.isEmpty)
        #expect(harness.drain(0) == [8192], "the LPI is pending on the lane's redistributor")
    }

    @Test func workThatNeedsTheLanesLoopGoesToTheLane() {
        let harness = harness()
        defer { harness.shutDown() }
        settle(harness, lane: 0)
        for work: LaneWork in [.lpi(harness.vm, VCPUIndex(0), .invalidateAll),
                               .request(harness.vm, VCPUIndex(0), .mmioWrite(offset: 0, width: .word, value: 0), ticket: ReplyTicket(rawValue: 1)),
                               .statistics(nil, ticket: ReplyTicket(rawValue: 2))]
        {
            var batch = [work]
            #expect(!harness.lanes.runIfIdle(&batch, onLane: 0))
            #expect(batch.count == 1, "left for the caller to submit")
        }
        var large = [LaneWork](repeating: .clock(1), count: LaneGroup.inlineBatchLimit + 1)
        #expect(!harness.lanes.runIfIdle(&large, onLane: 0))
    }

    @Test func aBusyOrBackloggedLaneGetsTheBatch() {
        let harness = harness()
        defer { harness.shutDown() }
        settle(harness, lane: 1)
        let lane = harness.lanes.lanes[1]
        // Held: as while the lane's thread handles a batch.
        #expect(lane.ownership!.tryAcquire())
        var batch: [LaneWork] = [.lpi(harness.vm, VCPUIndex(1), .setPending(INTID(8193)))]
        #expect(!harness.lanes.runIfIdle(&batch, onLane: 1))
        // Queued behind the held ownership: the lane cannot take it yet, so its queue is not empty.
        lane.submit(.lpi(harness.vm, VCPUIndex(1), .setPending(INTID(8195))))
        lane.ownership!.release()
        // Either the lane has taken its queue by now (then it runs here) or not (then it must not).
        let ranHere = harness.lanes.runIfIdle(&batch, onLane: 1)
        if !ranHere { lane.submit(moving: &batch) }
        #expect(harness.drain(1) == [8193, 8195])
    }

    /// Many rounds of small batches, run here or on the lane as it happens: the lane sees them in
    /// order (each round clears then sets one LPI, so only the last round's outcome may remain).
    @Test func orderHoldsAcrossBorrowedAndQueuedBatches() {
        let harness = harness()
        defer { harness.shutDown() }
        var ranHere = 0
        for round in 0 ..< 2000 {
            let intid = INTID(8192 + UInt32(round % 4) * 2)
            var batch: [LaneWork] = [.lpi(harness.vm, VCPUIndex(0), .clearPending(intid)),
                                     .lpi(harness.vm, VCPUIndex(0), .setPending(intid))]
            if round % 3 == 0 { batch.append(.lpi(harness.vm, VCPUIndex(0), .clearPending(intid))) }
            if harness.lanes.runIfIdle(&batch, onLane: 0) {
                ranHere += 1
            } else {
                harness.lanes.lanes[0].submit(moving: &batch)
            }
        }
        // Rounds 1996...1999 are the last to touch each LPI; 1998 (% 3 == 0) cleared its own.
        #expect(harness.drain(0) == [8192, 8194, 8198])
        #expect(ranHere > 0)
    }
}

import Glibc
import ITSModel
import Testing
@testable import ITSServer

/// WAIT_ACK and WAKE on the lanes (Protocol/PROTOCOL.md, WAIT_ACK): a waiting request is answered
/// by the LPI that becomes deliverable, by WAKE (or a latched one), by a later WAIT_ACK, by the
/// loop ending it, and with "gone" when its VM is dropped.
@Suite(.serialized) struct WaitAckTests {
    private func harness() -> LaneHarness { LaneHarness.twoVCPUsEightEvents() }

    private func intid(_ harness: LaneHarness, _ ticket: ReplyTicket) -> UInt32? {
        switch harness.replies[ticket] {
        case .intid(let intid, _)?, .acknowledged(let intid, _, _)?: return intid.rawValue
        default: return nil
        }
    }

    /// Runs the harness's loop for `milliseconds` and reports whether `ticket` is still unanswered.
    private func stillWaiting(_ harness: LaneHarness, _ ticket: ReplyTicket, milliseconds: Int = 30) -> Bool {
        harness.operations.flush()
        for _ in 0 ..< milliseconds {
            harness.loop.runOnce()
            usleep(1000)
        }
        return harness.replies[ticket] == nil
    }

    @Test func anLPIAlreadyDeliverableIsTakenAtOnce() {
        let harness = harness()
        defer { harness.shutDown() }
        harness.inject(1, 2)
        let ticket = harness.request(.waitAcknowledge(priorityMask: .lowest), vcpu: VCPUIndex(0))
        harness.wait(for: [ticket])
        #expect(intid(harness, ticket) == 8194)
        #expect(harness.drain(0) == [], "acknowledged: no longer pending")
    }

    @Test func aWaitingRequestTakesTheNextLPIWithoutANotification() {
        let harness = harness()
        defer { harness.shutDown() }
        let ticket = harness.request(.waitAcknowledge(priorityMask: .lowest), vcpu: VCPUIndex(1))
        #expect(stillWaiting(harness, ticket))
        let edgesBefore = harness.deliverableEdges
        harness.inject(1, 0)     // vCPU 0: does not end vCPU 1's wait
        #expect(stillWaiting(harness, ticket))
        harness.inject(1, 3)
        harness.wait(for: [ticket])
        #expect(intid(harness, ticket) == 8195)
        #expect(harness.deliverableEdges == edgesBefore + 1, "only vCPU 0's LPI made an edge; the waiter took vCPU 1's")
        #expect(harness.drain(1) == [])
        #expect(harness.drain(0) == [8192])
    }

    @Test func theMaskHoldsBackLowerPriorities() {
        let harness = harness()
        defer { harness.shutDown() }
        // Every LPI has priority 0xA0: a mask of 0xA0 lets none through (IHI 0069, ICC_PMR_EL1).
        let ticket = harness.request(.waitAcknowledge(priorityMask: Priority(0xA0)), vcpu: VCPUIndex(0))
        harness.inject(1, 4)
        #expect(stillWaiting(harness, ticket))
        #expect(harness.drain(0) == [8196], "still pending for an ACK without that mask")
        let end = harness.request(.wake, vcpu: VCPUIndex(0))
        harness.wait(for: [ticket, end])
        #expect(intid(harness, ticket) == 1023)
    }

    @Test func wakeEndsAWaitOrIsLatchedForTheNext() {
        let harness = harness()
        defer { harness.shutDown() }
        let first = harness.request(.waitAcknowledge(priorityMask: .lowest), vcpu: VCPUIndex(0))
        #expect(stillWaiting(harness, first))
        let wake = harness.request(.wake, vcpu: VCPUIndex(0))
        harness.wait(for: [first, wake])
        #expect(intid(harness, first) == 1023)
        // No WAIT_ACK waits now: the WAKE is latched, and the next WAIT_ACK returns at once, once.
        let latched = harness.request(.wake, vcpu: VCPUIndex(0))
        let second = harness.request(.waitAcknowledge(priorityMask: .lowest), vcpu: VCPUIndex(0))
        harness.wait(for: [latched, second])
        #expect(intid(harness, second) == 1023)
        let third = harness.request(.waitAcknowledge(priorityMask: .lowest), vcpu: VCPUIndex(0))
        #expect(stillWaiting(harness, third), "the latch was consumed")
        // A deliverable LPI is taken before a latched WAKE counts.
        let wakeAgain = harness.request(.wake, vcpu: VCPUIndex(0))
        harness.wait(for: [third, wakeAgain])
        harness.inject(1, 6)
        let fourth = harness.request(.wake, vcpu: VCPUIndex(0))
        let fifth = harness.request(.waitAcknowledge(priorityMask: .lowest), vcpu: VCPUIndex(0))
        harness.wait(for: [fourth, fifth])
        #expect(intid(harness, fifth) == 8198)
    }

    @Test func aLaterWaitReplacesAnEarlierOne() {
        let harness = harness()
        defer { harness.shutDown() }
        let first = harness.request(.waitAcknowledge(priorityMask: .lowest), vcpu: VCPUIndex(0))
        let second = harness.request(.waitAcknowledge(priorityMask: .lowest), vcpu: VCPUIndex(0))
        harness.wait(for: [first])
        #expect(intid(harness, first) == 1023)
        #expect(stillWaiting(harness, second))
        harness.inject(1, 0)
        harness.wait(for: [second])
        #expect(intid(harness, second) == 8192)
    }

    @Test func endWaitAnswersOnlyItsOwnTicket() {
        let harness = harness()
        defer { harness.shutDown() }
        let waiting = harness.request(.waitAcknowledge(priorityMask: .lowest), vcpu: VCPUIndex(1))
        #expect(stillWaiting(harness, waiting))
        harness.operations.queue(.endWait(harness.vm, VCPUIndex(1), ticket: ReplyTicket(rawValue: 999_999)), for: VCPUIndex(1))
        #expect(stillWaiting(harness, waiting), "another ticket's end leaves this wait alone")
        harness.operations.queue(.endWait(harness.vm, VCPUIndex(1), ticket: waiting), for: VCPUIndex(1))
        harness.wait(for: [waiting])
        #expect(intid(harness, waiting) == 1023)
        harness.inject(1, 1)
        #expect(harness.drain(1) == [8193], "an ended wait takes nothing")
    }

    @Test func replacingTheRedistributorEndsItsWait() {
        let harness = harness()
        defer { harness.shutDown() }
        let waiting = harness.request(.waitAcknowledge(priorityMask: .lowest), vcpu: VCPUIndex(0))
        #expect(stillWaiting(harness, waiting))
        // As RESTORE_VM hands the lane a restored redistributor for the vCPU.
        let restored = Redistributor(.init(vcpu: VCPUIndex(0), isLast: false))
        harness.operations.queue(.attach(harness.vm, memory: harness.memory, redistributors: [restored]), for: VCPUIndex(0))
        harness.wait(for: [waiting])
        #expect(intid(harness, waiting) == 1023)
    }

    @Test func droppingTheVMAnswersItsWaitsGone() {
        let harness = harness()
        defer { harness.shutDown() }
        let waiting = harness.request(.waitAcknowledge(priorityMask: .lowest), vcpu: VCPUIndex(0))
        #expect(stillWaiting(harness, waiting))
        harness.operations.queue(.detach(harness.vm, ticket: nil), for: VCPUIndex(0))
        harness.wait(for: [waiting])
        guard case .gone? = harness.replies[waiting] else {
            Issue.record("expected gone, got \(String(describing: harness.replies[waiting]))")
            return
        }
    }
}

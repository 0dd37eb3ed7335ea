import CLibUV
import ITSModel
import ITSWire

/// A WAIT_ACK waiting on a lane, as the loop tracks it: whose it is, and when it times out.
struct WaitingAcknowledge {
    var connection: UInt64
    var vm: VMKey
    var vcpu: VCPUIndex
    /// uv_now milliseconds at which the wait ends with 1023; nil for no timeout, or once the lane
    /// has been told to end it.
    var deadline: UInt64?
}

/// WAIT_ACK and WAKE (Protocol/PROTOCOL.md, WAIT_ACK): the vCPU's lane keeps the waiting request
/// and answers it when an LPI becomes deliverable; the loop ends it at its timeout, when its
/// connection closes and at shutdown (``LaneWork/endWait(_:_:ticket:)``).
extension Server {
    func waitAcknowledge(_ vm: ServerVM, _ vcpu: Wire.VCPU, mask: UInt8, timeoutMicroseconds: UInt32, session: Session,
                         frame: Frame)
    {
        counters.waitAcknowledges &+= 1
        let answer: (LaneReply) -> Message = { [key = vm.key, reportsMore = session.reportsMore] reply in
            if case .gone = reply { return .error(.waitAck, ErrorReport(.noSuchVM, detail: key.rawValue)) }
            let (lpi, more) = Self.acknowledged(reply, reportsMore: reportsMore)
            return .waitAckReply(lpi, more: more)
        }
        // Zero: do not wait — an ACK with WAIT_ACK's reply.
        guard timeoutMicroseconds != 0 else {
            laneRequest(vm, vcpu, .acknowledge(priorityMask: Priority(mask)), session: session, frame: frame, answer: answer)
            return
        }
        let ticket = laneRequest(vm, vcpu, .waitAcknowledge(priorityMask: Priority(mask)), session: session, frame: frame,
                                 answer: answer)
        var wait = WaitingAcknowledge(connection: session.connection.id, vm: vm.key, vcpu: VCPUIndex(vcpu.rawValue))
        if timeoutMicroseconds != .max {
            // Whole milliseconds, rounded up: libuv's timers count milliseconds. From the time now,
            // not the loop's cached time of this iteration, which may be older than the request.
            uv_update_time(loop.pointer)
            let deadline = uv_now(loop.pointer) + (UInt64(timeoutMicroseconds) + 999) / 1000
            wait.deadline = deadline
            armWaitTimer(deadline)
        }
        waits[ticket] = wait
    }

    /// WAKE: ends the vCPU's waiting WAIT_ACK or latches the wake on its lane.
    func wake(_ vm: ServerVM, _ vcpu: Wire.VCPU, session: Session, frame: Frame) {
        counters.wakes &+= 1
        laneRequest(vm, vcpu, .wake, session: session, frame: frame) { [key = vm.key] reply in
            if case .gone = reply { return .error(.wake, ErrorReport(.noSuchVM, detail: key.rawValue)) }
            return .done(.wake)
        }
    }

    /// The lane answered a WAIT_ACK (or another request: then nothing happens).
    @inline(__always)
    func waitAnswered(_ ticket: ReplyTicket) {
        if !waits.isEmpty { waits[ticket] = nil }
    }

    /// Asks the lanes to end the waits `selected` picks, with 1023, and forgets their deadlines.
    func endWaits(where selected: (WaitingAcknowledge) -> Bool) {
        for (ticket, wait) in waits where selected(wait) {
            waits[ticket]?.deadline = nil
            guard let vm = registry.vms[wait.vm] else { continue }
            vm.operations.queue(.endWait(wait.vm, wait.vcpu, ticket: ticket), for: wait.vcpu)
            markDirty(vm)
        }
        flushLaneWork()
    }

    private func armWaitTimer(_ deadline: UInt64) {
        if waitTimer == nil { waitTimer = TimerHandle(loop: loop) { [unowned self] in self.waitTimerFired() } }
        guard let timer = waitTimer else { return }
        if timer.isActive, let armed = waitTimerDeadline, armed <= deadline { return }
        waitTimerDeadline = deadline
        let now = uv_now(loop.pointer)
        timer.start(timeout: deadline > now ? deadline - now : 0)
    }

    private func waitTimerFired() {
        let now = uv_now(loop.pointer)
        waitTimerDeadline = nil
        endWaits { ($0.deadline ?? .max) <= now }
        if let next = waits.values.compactMap(\.deadline).min() { armWaitTimer(next) }
    }
}

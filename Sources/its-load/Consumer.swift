// A consumer thread plays the vCPUs' CPU interfaces. With `--acknowledge notify` it waits on the
// notify eventfds of its vCPUs (epoll) and acknowledges each woken vCPU with ACK until the server
// answers 1023, so that no LPI is left pending (PROTOCOL.md 5, 6.14 and 6.16); ACKs are pipelined in
// growing windows. With `--acknowledge wait`
// it has one vCPU and blocks in WAIT_ACK, as a vCPU thread idle in WFI would, and the server answers
// it with the next LPI. With `--acknowledge slot` it waits on the notify eventfds as with notify, but
// each vCPU has an armed acknowledge slot (SET_ACK_SLOT), so a wakeup finds its LPI there, already
// acknowledged, and ACKs only when the slot says `more`. Frames are encoded once, and the loops
// allocate nothing.
import CITSLoad
import CITSSupport
import Glibc
import Histogram
import ITSWire
import ToolSupport

/// How consumers take LPIs (`--acknowledge`).
enum AcknowledgeStyle: String, CaseIterable, Sendable {
    /// Wait on the notify eventfds, then ACK until 1023.
    case notify
    /// Block in WAIT_ACK, one vCPU per consumer.
    case wait
    /// Wait on the notify eventfds, take the LPI from the vCPU's acknowledge slot; ACK until 1023
    /// only when the slot had `more` set.
    case slot
}

/// Owned by its thread while the run goes on; the main thread reads the results after joining it.
final class Consumer: @unchecked Sendable {
    /// How long one WAIT_ACK waits before the consumer looks whether the run is draining.
    static let waitTimeoutMicroseconds: UInt32 = 20_000
    static let maxWindow = 32
    let connection: WireConnection
    let vcpus: [Int]
    let notifyFDs: [Int32]
    /// The acknowledge slot word of each vCPU (slot style), else empty.
    let slotWords: [UnsafeMutablePointer<UInt64>]
    let tracker: LPITracker
    let control: RunControl
    /// Per LPI, the eventfd of the injector waiting for its acknowledge (irqfd mode), else empty.
    let doneFDs: [Int32]
    private let epoll: Int32
    /// `maxWindow` encoded ACK frames per vCPU, back to back.
    private let ackFrames: UnsafeMutableRawBufferPointer
    private let ackFrameLength: Int
    /// The WAIT_ACK frame of the consumer's vCPU (wait style), else empty.
    private let waitFrame: [UInt8]

    /// Inject -> acknowledge, in ns.
    var latency = makeLatencyHistogram()
    /// Inject -> notify wakeup of the first LPI acknowledged after a wakeup (irqfd mode), in ns.
    var wakeLatency = makeLatencyHistogram()
    var acknowledged = 0
    var acksSent = 0
    var wakeups = 0
    var error: ToolError?

    init(connection: WireConnection, vm: VMID, vcpus: [Int], notifyFDs: [Int32], slotWords: [UnsafeMutablePointer<UInt64>],
         tracker: LPITracker,
         control: RunControl, doneFDs: [Int32], style: AcknowledgeStyle) throws {
        self.connection = connection
        self.vcpus = vcpus
        self.notifyFDs = notifyFDs
        self.slotWords = slotWords
        self.tracker = tracker
        self.control = control
        self.doneFDs = doneFDs
        epoll = its_load_epoll_create()
        guard epoll >= 0 else { throw ToolError.system("epoll_create1") }
        for (slot, fd) in notifyFDs.enumerated() where its_load_epoll_add(epoll, fd, UInt64(slot)) != 0 {
            throw ToolError.system("epoll_ctl")
        }
        waitFrame = style == .wait
            ? Frame(.waitAck(vm, Wire.VCPU(rawValue: UInt16(vcpus[0])), priorityMask: 0xFF, timeoutMicroseconds: Self.waitTimeoutMicroseconds),
                    id: MessageID(rawValue: 0)).encoded
            : []
        let one = Frame(.ack(vm, Wire.VCPU(rawValue: 0), priorityMask: 0xFF), id: MessageID(rawValue: 0)).encoded
        ackFrameLength = one.count
        ackFrames = .allocate(byteCount: one.count * Self.maxWindow * vcpus.count, alignment: 8)
        for (slot, vcpu) in vcpus.enumerated() {
            let frame = Frame(.ack(vm, Wire.VCPU(rawValue: UInt16(vcpu)), priorityMask: 0xFF), id: MessageID(rawValue: 0)).encoded
            for copy in 0 ..< Self.maxWindow {
                let offset = (slot * Self.maxWindow + copy) * one.count
                // SAFETY: offset + frame.count <= the allocation (slot < vcpus.count, copy < maxWindow).
                UnsafeMutableRawBufferPointer(rebasing: ackFrames[offset ..< offset + frame.count]).copyBytes(from: frame)
            }
        }
    }

    deinit {
        ackFrames.deallocate()
        close(epoll)
    }

    func run() {
        if !waitFrame.isEmpty { return runWaiting() }
        do {
            var tokens = [UInt64](repeating: 0, count: 64)
            while !control.draining.load(ordering: .acquiring), !control.failed.load(ordering: .relaxed) {
                let ready = tokens.withUnsafeMutableBufferPointer { its_load_epoll_wait(epoll, $0.baseAddress, 64, 20) }
                guard ready > 0 else { continue }
                let wake = monotonicNanoseconds()
                wakeups += 1
                for index in 0 ..< Int(ready) {
                    let slot = Int(tokens[index])
                    _ = readEventFD(notifyFDs[slot])
                    if slotWords.isEmpty {
                        try drain(slot, wake: wake)
                    } else {
                        try take(slot, wake: wake)
                    }
                }
            }
            // Everything injected has reached the lanes: take whatever is still pending.
            // An armed slot would take an LPI as a last ACK is served, after the consumer stopped
            // looking: the slots are disarmed (IDLE) first.
            for slot in 0 ..< vcpus.count {
                if !slotWords.isEmpty { try take(slot, wake: 0, rearm: false) }
                try drain(slot, wake: 0)
            }
        } catch {
            self.error = error as? ToolError ?? ToolError("\(error)")
            control.failed.store(true, ordering: .relaxed)
        }
    }

    /// Wait style: WAIT_ACK after WAIT_ACK on the one vCPU until the run drains, then ACK what is left.
    private func runWaiting() {
        do {
            // One WAIT_ACK is always waiting: the next goes out before the LPI taken is recorded
            // (and before an injector waiting for it may send the next MSI), as a vCPU thread goes
            // back to waiting before it handles the interrupt.
            try waitFrame.withUnsafeBytes { try connection.sendRaw($0) }
            acksSent += 1
            while true {
                let reply = try connection.receive()
                let time = monotonicNanoseconds()
                guard case .waitAckReply(let lpi, _) = reply.message else { throw ToolError("WAIT_ACK: unexpected reply \(reply.message)") }
                if control.draining.load(ordering: .acquiring) || control.failed.load(ordering: .relaxed) {
                    if lpi.intid.rawValue != 1023 { try took(Int(lpi.intid.rawValue), at: time, wake: time, first: true) }
                    break
                }
                try waitFrame.withUnsafeBytes { try connection.sendRaw($0) }
                acksSent += 1
                let intid = Int(lpi.intid.rawValue)
                guard intid != 1023 else { continue }
                wakeups += 1
                try took(intid, at: time, wake: time, first: true)
            }
            for slot in 0 ..< vcpus.count { try drain(slot, wake: 0) }
        } catch {
            self.error = error as? ToolError ?? ToolError("\(error)")
            control.failed.store(true, ordering: .relaxed)
        }
    }

    /// Records that `intid` was acknowledged at `time` (the consumer woke at `wake`; 0 when it did
    /// not wait), and lets an irqfd injector send its next MSI.
    private func took(_ intid: Int, at time: UInt64, wake: UInt64, first: Bool) throws {
        let index = intid - 8192
        guard index >= 0, index < tracker.count else { throw ToolError("ACK returned INTID \(intid), never mapped") }
        let since = tracker.acknowledged(index, at: time)
        acknowledged += 1
        if since != 0, time > since { latency.record(time - since) }
        if first, wake != 0, since != 0, wake > since { wakeLatency.record(wake - since) }
        if !doneFDs.isEmpty, doneFDs[index] >= 0 { signalEventFD(doneFDs[index]) }
    }

    /// Slot style: takes the LPI the server delivered into vCPU `slot`'s acknowledge slot and arms
    /// it again (or, without `rearm`, leaves it IDLE), in one compare-and-swap; when the word had
    /// `more`, drains with ACK (PROTOCOL.md 6.16b).
    private func take(_ slot: Int, wake: UInt64, rearm: Bool = true) throws {
        let word = slotWords[slot]
        let next = rearm ? AckSlotWord.armed(priorityMask: 0xFF) : .idle
        var found = its_atomic_load_u64(word)
        while found != next.rawValue {
            var expected = found
            if its_atomic_cas_u64(word, &expected, next.rawValue) != 0 { break }
            found = expected
        }
        let taken = AckSlotWord(rawValue: found)
        if taken.state == .delivered { try took(Int(taken.intid), at: monotonicNanoseconds(), wake: wake, first: true) }
        if taken.more { try drain(slot, wake: wake, first: taken.state != .delivered) }
    }

    /// ACKs vCPU `slot` until a window of replies ends with 1023. The next LPI then finds the vCPU
    /// with nothing deliverable and writes its eventfd (section 5). A 1.2 reply's `more` would allow
    /// stopping one window earlier, but this thread then sleeps between LPIs where the extra window
    /// takes the next ones: with 16 connections saturating, inject -> acknowledge p50 went from about
    /// 6 ms to about 130 ms when the consumers stopped at `more` (`its-load --mode pipelined -v 16
    /// -d 16 -e 16 --connections 16`), and the idle machine's rtt-ack rose by a fifth.
    private func drain(_ slot: Int, wake: UInt64, first isFirst: Bool = true) throws {
        var window = 1
        var first = isFirst
        while true {
            let offset = slot * Self.maxWindow * ackFrameLength
            // SAFETY: the window's frames lie inside this vCPU's run of `maxWindow` frames.
            try connection.sendRaw(UnsafeRawBufferPointer(rebasing: ackFrames[offset ..< offset + window * ackFrameLength]))
            acksSent += window
            var lastWasNone = false
            for _ in 0 ..< window {
                let reply = try connection.receive()
                guard case .ackReply(let lpi, _) = reply.message else { throw ToolError("ACK: unexpected reply \(reply.message)") }
                let intid = Int(lpi.intid.rawValue)
                lastWasNone = intid == 1023
                guard intid != 1023 else { continue }
                try took(intid, at: monotonicNanoseconds(), wake: wake, first: first)
                first = false
            }
            if lastWasNone { return }
            window = min(window * 2, Self.maxWindow)
        }
    }
}

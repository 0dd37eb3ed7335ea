// A consumer thread plays the vCPUs' CPU interfaces: it waits on the notify eventfds of its vCPUs
// (epoll) and acknowledges each woken vCPU with ACK until the server answers 1023, so that no LPI is
// left pending (PROTOCOL.md 5 and 6.14). ACKs are pipelined in growing windows; the frames are encoded
// once, and the loop allocates nothing.
import CITSLoad
import Glibc
import Histogram
import ITSWire

/// Owned by its thread while the run goes on; the main thread reads the results after joining it.
final class Consumer: @unchecked Sendable {
    static let maxWindow = 32
    let connection: WireConnection
    let vcpus: [Int]
    let notifyFDs: [Int32]
    let tracker: LPITracker
    let control: RunControl
    /// Per LPI, the eventfd of the injector waiting for its acknowledge (irqfd mode), else empty.
    let doneFDs: [Int32]
    private let epoll: Int32
    /// `maxWindow` encoded ACK frames per vCPU, back to back.
    private let ackFrames: UnsafeMutableRawBufferPointer
    private let ackFrameLength: Int

    /// Inject -> acknowledge, in ns.
    var latency = makeLatencyHistogram()
    /// Inject -> notify wakeup of the first LPI acknowledged after a wakeup (irqfd mode), in ns.
    var wakeLatency = makeLatencyHistogram()
    var acknowledged = 0
    var acksSent = 0
    var wakeups = 0
    var error: LoadError?

    init(connection: WireConnection, vm: VMID, vcpus: [Int], notifyFDs: [Int32], tracker: LPITracker,
         control: RunControl, doneFDs: [Int32]) throws {
        self.connection = connection
        self.vcpus = vcpus
        self.notifyFDs = notifyFDs
        self.tracker = tracker
        self.control = control
        self.doneFDs = doneFDs
        epoll = its_load_epoll_create()
        guard epoll >= 0 else { throw LoadError.system("epoll_create1") }
        for (slot, fd) in notifyFDs.enumerated() where its_load_epoll_add(epoll, fd, UInt64(slot)) != 0 {
            throw LoadError.system("epoll_ctl")
        }
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
        do {
            var tokens = [UInt64](repeating: 0, count: 64)
            while !control.draining.load(ordering: .acquiring), !control.failed.load(ordering: .relaxed) {
                let ready = tokens.withUnsafeMutableBufferPointer { its_load_epoll_wait(epoll, $0.baseAddress, 64, 20) }
                guard ready > 0 else { continue }
                let wake = now()
                wakeups += 1
                for index in 0 ..< Int(ready) {
                    let slot = Int(tokens[index])
                    _ = readEventFD(notifyFDs[slot])
                    try drain(slot, wake: wake)
                }
            }
            // Everything injected has reached the lanes: take whatever is still pending.
            for slot in 0 ..< vcpus.count { try drain(slot, wake: 0) }
        } catch {
            self.error = error as? LoadError ?? LoadError("\(error)")
            control.failed.store(true, ordering: .relaxed)
        }
    }

    /// ACKs vCPU `slot` until a window of replies ends with 1023.
    private func drain(_ slot: Int, wake: UInt64) throws {
        var window = 1
        var first = true
        while true {
            let offset = slot * Self.maxWindow * ackFrameLength
            // SAFETY: the window's frames lie inside this vCPU's run of `maxWindow` frames.
            try connection.sendRaw(UnsafeRawBufferPointer(rebasing: ackFrames[offset ..< offset + window * ackFrameLength]))
            acksSent += window
            var lastWasNone = false
            for _ in 0 ..< window {
                let reply = try connection.receive()
                guard case .ackReply(let lpi) = reply.message else { throw LoadError("ACK: unexpected reply \(reply.message)") }
                let intid = Int(lpi.intid.rawValue)
                if intid == 1023 {
                    lastWasNone = true
                    continue
                }
                lastWasNone = false
                let index = intid - 8192
                guard index >= 0, index < tracker.count else { throw LoadError("ACK returned INTID \(intid), never mapped") }
                let time = now()
                let since = tracker.acknowledged(index, at: time)
                acknowledged += 1
                if since != 0, time > since { latency.record(time - since) }
                if first, wake != 0, since != 0, wake > since { wakeLatency.record(wake - since) }
                first = false
                if !doneFDs.isEmpty, doneFDs[index] >= 0 { signalEventFD(doneFDs[index]) }
            }
            if lastWasNone { return }
            window = min(window * 2, Self.maxWindow)
        }
    }
}

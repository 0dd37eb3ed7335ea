/// How completions reach the guest: the descriptors to wait on, and how to take the interrupts that
/// made them readable.
import ToolSupport

protocol InterruptPath: AnyObject {
    /// Descriptors that become readable when an interrupt may be pending.
    var pollFDs: [Int32] { get }
    /// Takes every interrupt pending behind the readable descriptors (indexes into `pollFDs`), one
    /// at a time, running `handler` after each is taken, as a guest runs its handler between
    /// acknowledging one interrupt and asking for the next. Returns how many were taken (0 for a
    /// wakeup that found none).
    func acknowledge(readable: [Int], handler: () throws(ToolError) -> Void) throws(ToolError) -> Int
}

/// The back-end's call eventfd read directly: the interrupt path without itsd, which checks the
/// vhost-user and virtio layers on their own.
final class DirectCallPath: InterruptPath {
    private let device: BlockDevice

    init(device: BlockDevice) { self.device = device }

    var pollFDs: [Int32] { [device.call.fd] }

    func acknowledge(readable: [Int], handler: () throws(ToolError) -> Void) throws(ToolError) -> Int {
        guard try device.call.drain() > 0 else { return 0 }
        try handler()
        return 1
    }
}

/// Runs virtio-blk requests against the device and accounts for every one: a request is complete
/// when an interrupt was taken and the used-ring drain that followed returned it. Latency runs from
/// making the request available to taking (acknowledging) the interrupt that returned it.
final class Workload {
    let device: BlockDevice
    let path: InterruptPath
    /// How long the guest waits for an interrupt while requests are in flight.
    let silenceMilliseconds: Int

    private(set) var requests = 0
    private(set) var completions = 0
    private(set) var reads = 0
    private(set) var writes = 0
    /// Interrupts taken, and those after which the used ring held nothing new (the back-end's
    /// signal on a new call fd, or a signal whose completion an earlier interrupt's drain took).
    private(set) var interrupts = 0
    private(set) var interruptsWithoutCompletion = 0
    /// Submit-to-interrupt latencies in nanoseconds of the requests measured.
    private(set) var latencies: [UInt64] = []

    init(device: BlockDevice, path: InterruptPath, silenceMilliseconds: Int) {
        self.device = device
        self.path = path
        self.silenceMilliseconds = silenceMilliseconds
    }

    /// Requests never returned through an interrupt.
    var lost: Int { requests - completions }

    /// Submits `count` requests, at most `queueDepth` in flight, and services interrupts until all
    /// complete. `midway` runs once, when half of them have been submitted. Stops early, leaving
    /// `lost` above 0, when no interrupt arrives for `silenceMilliseconds` with requests in flight.
    /// Returns whether every request completed.
    @discardableResult
    func run(count: Int, queueDepth: Int, measured: Bool = true,
             midway: (() throws(ToolError) -> Void)? = nil) throws(ToolError) -> Bool {
        let target = completions + count
        var submitted = 0
        var midwayDone = midway == nil
        while completions < target {
            if submitted < count {
                let added = try device.submit(upTo: queueDepth, budget: count - submitted, now: monotonicNanoseconds())
                submitted += added
                requests += added
            }
            if !midwayDone, submitted >= count / 2 {
                midwayDone = true
                try midway?()
            }
            guard try service(timeoutMilliseconds: silenceMilliseconds, measured: measured) else { return false }
        }
        return true
    }

    /// Waits for one wakeup and takes its interrupts; after each one taken, drains the used ring.
    /// Returns false when nothing woke the guest within the timeout.
    @discardableResult
    func service(timeoutMilliseconds: Int, measured: Bool = true) throws(ToolError) -> Bool {
        let ready = try pollReadable(path.pollFDs, timeoutMilliseconds: timeoutMilliseconds)
        guard !ready.isEmpty else { return false }
        _ = try path.acknowledge(readable: ready) { () throws(ToolError) in try drainUsedRing(measured: measured) }
        return true
    }

    /// The guest's interrupt handler: takes every used element and completes its request; the
    /// latency of each ends now, when the interrupt that returned it was taken.
    private func drainUsedRing(measured: Bool) throws(ToolError) {
        let now = monotonicNanoseconds()
        interrupts += 1
        let used = try device.ring.takeUsed()
        if used.isEmpty { interruptsWithoutCompletion += 1 }
        for element in used {
            let request = try device.driver.complete(element)
            completions += 1
            if request.kind == .read { reads += 1 } else { writes += 1 }
            if measured { latencies.append(now - request.submittedAt) }
        }
    }

    /// Takes whatever interrupts arrive within `milliseconds` while nothing is submitted (the
    /// back-end's signal on a new call fd, late signals of drained completions).
    func settle(milliseconds: Int) throws(ToolError) {
        let deadline = monotonicNanoseconds() + UInt64(milliseconds) * 1_000_000
        while true {
            let now = monotonicNanoseconds()
            guard now < deadline else { return }
            try service(timeoutMilliseconds: max(1, Int((deadline - now) / 1_000_000)))
        }
    }

    /// Submits `count` requests and returns once the back-end has put all of them in the used ring,
    /// without taking any interrupt (the caller checks that none arrives). Fails after the timeout.
    func submitUnserviced(count: Int, queueDepth: Int) throws(ToolError) {
        precondition(count <= queueDepth, "unserviced requests must fit in flight at once")
        let added = try device.submit(upTo: queueDepth, budget: count, now: monotonicNanoseconds())
        requests += added
        let deadline = monotonicNanoseconds() + UInt64(silenceMilliseconds) * 1_000_000
        while device.ring.unseenUsedCount < added {
            guard monotonicNanoseconds() < deadline else {
                throw ToolError("the back-end completed \(device.ring.unseenUsedCount) of \(added) requests "
                    + "within \(silenceMilliseconds) ms")
            }
            sleepMilliseconds(1)
        }
    }

    /// The latency below which `percent` of the measured requests fall (nearest rank), in µs.
    func percentileMicroseconds(_ percent: Int) -> Double {
        guard !latencies.isEmpty else { return 0 }
        let sorted = latencies.sorted()
        let rank = max(1, (percent * sorted.count + 99) / 100)
        return Double(sorted[rank - 1]) / 1000
    }
}

// Per-LPI bookkeeping shared by the injector and consumer threads: when each LPI was last injected,
// when it was last acknowledged, and since when it has been pending as far as the client knows.
import Histogram
import Synchronization

/// The latency histogram every thread keeps: nanoseconds from 1 ns to 100 s, 3 significant digits.
func makeLatencyHistogram() -> Histogram<UInt64> {
    Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 100_000_000_000, numberOfSignificantValueDigits: .three)
}

/// Shared between threads: every field is an array of atomics indexed by LPI number (INTID - 8192),
/// allocated once for the run and freed after every thread has been joined.
final class LPITracker: @unchecked Sendable {
    let count: Int
    /// Time (CLOCK_MONOTONIC ns) taken just before the write that carried the LPI's last injection.
    private let lastInject: UnsafeMutablePointer<Atomic<UInt64>>
    /// Time taken just after the reply of the ACK that returned the LPI.
    private let lastAck: UnsafeMutablePointer<Atomic<UInt64>>
    /// The first injection since the last acknowledge (0: none): where inject -> ack latency starts.
    private let pendingSince: UnsafeMutablePointer<Atomic<UInt64>>

    init(count: Int) {
        self.count = count
        func allocate() -> UnsafeMutablePointer<Atomic<UInt64>> {
            let pointer = UnsafeMutablePointer<Atomic<UInt64>>.allocate(capacity: max(count, 1))
            for index in 0 ..< max(count, 1) { (pointer + index).initialize(to: Atomic(0)) }
            return pointer
        }
        lastInject = allocate()
        lastAck = allocate()
        pendingSince = allocate()
    }

    deinit {
        for pointer in [lastInject, lastAck, pendingSince] {
            pointer.deinitialize(count: max(count, 1))
            pointer.deallocate()
        }
    }

    /// Records an injection of LPI `index` sent at `time`.
    /// - Context: injector threads; `index < count`.
    @inline(__always)
    func injected(_ index: Int, at time: UInt64) {
        // SAFETY: index < count (LPI numbers come from the workload), inside the allocation.
        lastInject[index].store(time, ordering: .relaxed)
        if pendingSince[index].load(ordering: .relaxed) == 0 {
            _ = pendingSince[index].compareExchange(expected: 0, desired: time, ordering: .relaxed)
        }
    }

    /// Records that an ACK returned LPI `index` at `time`; returns when it became pending (0: unknown).
    /// - Context: consumer threads; `index < count`.
    @inline(__always)
    func acknowledged(_ index: Int, at time: UInt64) -> UInt64 {
        // SAFETY: as in `injected`.
        lastAck[index].store(time, ordering: .relaxed)
        return pendingSince[index].exchange(0, ordering: .relaxed)
    }

    /// LPIs injected at least once whose last acknowledge is not later than their last injection.
    /// - Context: after every injector and consumer thread has been joined.
    func lost() -> Int {
        var lost = 0
        for index in 0 ..< count {
            let injected = lastInject[index].load(ordering: .relaxed)
            if injected != 0, lastAck[index].load(ordering: .relaxed) <= injected { lost += 1 }
        }
        return lost
    }

    /// LPIs injected at least once.
    func injectedLPIs() -> Int {
        (0 ..< count).reduce(0) { $0 + (lastInject[$1].load(ordering: .relaxed) != 0 ? 1 : 0) }
    }
}

/// Run-wide flags the threads poll.
final class RunControl: Sendable {
    /// Set when every injector has finished and its last request has been answered: consumers then
    /// acknowledge every vCPU until nothing is left once more and stop.
    let draining = Atomic<Bool>(false)
    /// Injector threads wait for this before the first MSI, so that they start together.
    let go = Atomic<Bool>(false)
    /// Set to stop every thread early after an error.
    let failed = Atomic<Bool>(false)
}

/// What the ITS asks of the redistributors. The ITS decides which vCPU an LPI targets; the
/// redistributor that owns that vCPU carries out the operation.
///
/// Every operation is a one-way request with no result the ITS waits for, so that an
/// implementation may queue it to the lane that owns the vCPU, in order. ``LocalRedistributors``
/// applies them at once to redistributors held in the same value, for the pure model and tests.
///
/// - Context: every requirement is called by the ITS on the thread that owns it (the server's loop
///   thread); an implementation carries the operation to the thread that owns the vCPU.
public protocol RedistributorOperations {
    /// The number of vCPUs (redistributors).
    var vcpuCount: Int { get }
    /// One more ITS mapping routes `intid` to `vcpu` (MAPTI, MAPI, MAPC of a collection with LPIs).
    mutating func mapLPI(_ intid: INTID, on vcpu: VCPUIndex)
    /// One ITS mapping of `intid` to `vcpu` is gone (DISCARD, MAPD, MAPC V=0): pending state cleared.
    mutating func unmapLPI(_ intid: INTID, on vcpu: VCPUIndex)
    /// The mapping of `intid` moves from one vCPU to another with its pending state (MOVI, MAPC).
    mutating func moveLPI(_ intid: INTID, from source: VCPUIndex, to target: VCPUIndex)
    /// A translated MSI or INT: `intid` becomes pending at `vcpu`.
    mutating func setPending(_ intid: INTID, on vcpu: VCPUIndex)
    /// CLEAR: `intid` stops being pending at `vcpu`.
    mutating func clearPending(_ intid: INTID, on vcpu: VCPUIndex)
    /// INV: re-read the configuration byte of `intid` at `vcpu`.
    mutating func invalidate(_ intid: INTID, on vcpu: VCPUIndex)
    /// INVALL: re-read the configuration of every LPI at `vcpu`, as background work.
    mutating func invalidateAll(on vcpu: VCPUIndex)
    /// MOVALL: every pending LPI of `source` becomes pending at `target` instead. Returns the units
    /// of work done before returning (one per LPI moved), which the ITS charges to its budget.
    mutating func moveAllPending(from source: VCPUIndex, to target: VCPUIndex) -> Int
    /// Whether work an earlier INVALL or MOVALL started at `vcpu` is still under way: SYNC waits
    /// until it is not (IHI 0069, 5.3.15: SYNC makes earlier commands' effects visible).
    func hasBackgroundWork(on vcpu: VCPUIndex) -> Bool
}

/// Redistributors held by value next to the ITS, with the guest memory they read and the sink they
/// report to: the single-threaded model. The server's lanes implement ``RedistributorOperations``
/// with queues instead.
///
/// `Memory` is a reference type because the ITS and the redistributors read and write the same
/// guest RAM.
/// - Context: one thread owns the value with the ITS it serves; nothing here is shared.
public struct LocalRedistributors<Memory: GuestMemory & AnyObject, Sink: LPIDeliverySink>: RedistributorOperations {
    public var redistributors: [Redistributor]
    public let memory: Memory
    public var sink: Sink
    /// Background work an INVALL does at once; the rest runs in ``performPendingWork(budget:)``.
    public var workBudget = Redistributor.defaultWorkBudget

    public init(vcpuCount: Int, intidBits: Int, memory: Memory, sink: Sink) {
        redistributors = (0 ..< vcpuCount).map { index in
            Redistributor(.init(vcpu: VCPUIndex(UInt16(index)), isLast: index == vcpuCount - 1, intidBits: intidBits))
        }
        self.memory = memory
        self.sink = sink
    }

    public var vcpuCount: Int { redistributors.count }

    public mutating func mapLPI(_ intid: INTID, on vcpu: VCPUIndex) {
        _ = redistributors[Int(vcpu.rawValue)].mapLPI(intid, memory: memory, sink: &sink)
    }

    public mutating func unmapLPI(_ intid: INTID, on vcpu: VCPUIndex) {
        redistributors[Int(vcpu.rawValue)].unmapLPI(intid)
    }

    public mutating func moveLPI(_ intid: INTID, from source: VCPUIndex, to target: VCPUIndex) {
        guard source != target else { return }
        let wasPending = redistributors[Int(source.rawValue)].unmapLPI(intid)
        _ = redistributors[Int(target.rawValue)].mapLPI(intid, memory: memory, sink: &sink)
        if wasPending { _ = redistributors[Int(target.rawValue)].setPending(intid, sink: &sink) }
    }

    @inlinable public mutating func setPending(_ intid: INTID, on vcpu: VCPUIndex) {
        _ = redistributors[Int(vcpu.rawValue)].setPending(intid, sink: &sink)
    }

    /// Makes each translation's LPI pending at its vCPU, in order, as ``setPending(_:on:)`` does one
    /// at a time (the sink hears the same edges, in the same order), with one exclusive access to
    /// the redistributors for the whole batch and the records of each run of LPIs located before any
    /// is marked (``Redistributor/makePending(_:at:)``).
    @inlinable public mutating func setPending(_ translations: UnsafeBufferPointer<ITS.Translation>) {
        Self.setPending(translations, at: &redistributors, sink: &sink)
    }

    /// The work of ``setPending(_:)`` on the two properties it changes, passed apart so that the
    /// sink can be called while the redistributors are borrowed.
    @inlinable static func setPending(_ translations: UnsafeBufferPointer<ITS.Translation>,
                                      at redistributors: inout [Redistributor], sink: inout Sink)
    {
        redistributors.withUnsafeMutableBufferPointer { redistributors in
            var start = 0
            while start < translations.count {
                let run = UnsafeBufferPointer(rebasing: translations[start ..< min(start + Redistributor.pendingBatchLimit,
                                                                                      translations.count)])
                var edges = Redistributor.makePending(run, at: redistributors)
                while edges != 0 {
                    sink.lpiBecameDeliverable(on: run[edges.trailingZeroBitCount].vcpu)
                    edges &= edges &- 1
                }
                start += run.count
            }
        }
    }

    public mutating func clearPending(_ intid: INTID, on vcpu: VCPUIndex) {
        redistributors[Int(vcpu.rawValue)].clearPending(intid)
    }

    public mutating func invalidate(_ intid: INTID, on vcpu: VCPUIndex) {
        redistributors[Int(vcpu.rawValue)].invalidate(intid, memory: memory, sink: &sink)
    }

    /// Starts the sweep without doing any of it: ``performPendingWork(budget:)`` does it, so that
    /// a stream of INVALLs costs the ITS one unit each.
    public mutating func invalidateAll(on vcpu: VCPUIndex) {
        redistributors[Int(vcpu.rawValue)].invalidateAll(budget: 0, memory: memory, sink: &sink)
    }

    public mutating func moveAllPending(from source: VCPUIndex, to target: VCPUIndex) -> Int {
        guard source != target else { return 1 }
        let page = redistributors[Int(source.rawValue)].pendingLPIs(limit: .max)
        for lpi in page.lpis {
            redistributors[Int(source.rawValue)].clearPending(lpi.intid)
            // An LPI no mapping routes to the target arrives there as a direct LPI.
            _ = redistributors[Int(target.rawValue)].setPendingDirect(lpi.intid, memory: memory, sink: &sink)
        }
        return max(1, page.lpis.count)
    }

    public func hasBackgroundWork(on vcpu: VCPUIndex) -> Bool {
        redistributors[Int(vcpu.rawValue)].hasPendingWork
    }

    /// Runs every redistributor's background work for at most `budget` units each; returns whether
    /// any remains.
    public mutating func performPendingWork(budget: Int) -> Bool {
        let memory = self.memory
        var more = false
        for index in redistributors.indices where redistributors[index].hasPendingWork {
            if redistributors[index].performPendingWork(budget: budget, memory: memory, sink: &sink) { more = true }
        }
        return more
    }
}

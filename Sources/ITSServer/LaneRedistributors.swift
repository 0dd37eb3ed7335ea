import CLibUV
import ITSModel

/// ``RedistributorOperations`` for a VM whose redistributors live on lanes: each operation becomes
/// a ``LaneWork`` item in a per-lane batch, sent by ``flush()`` — once per loop callback, however
/// many MSIs or commands it handled — so that work crosses threads in batches.
///
/// A move (MOVI, MAPC) is a "map with a new epoch" queued to the target's lane and an "unmap,
/// reporting whether it was pending" queued to the source's lane; the report comes back to the loop
/// (``moved(_:from:to:epoch:wasPending:)``), which queues the pending state to the target behind everything
/// queued there meanwhile, applied only if the mapping still has that epoch (docs/ARCHITECTURE.md).
///
/// Until the target half is queued, the LPI's pending state is on no redistributor. A SYNC on the
/// source or the target waits for it (``hasBackgroundWork(on:)``), and so does one after a MOVALL
/// on either end: CREADR passes the SYNC only once the move is complete as far as a later request
/// to either vCPU can see (docs/SEMANTICS.md, "SYNC and moves between lanes").
/// - Context: the loop thread.
public struct LaneRedistributors: RedistributorOperations {
    public let vm: VMKey
    public let vcpuCount: Int
    public let lanes: LaneGroup
    private var batches: [[LaneWork]]
    /// The epoch of the latest mapping; every map takes the next one.
    private var epoch: UInt16 = 0
    /// Per vCPU, the INVALLs and MOVALLs queued whose completion the lane has not reported yet.
    private var backgroundWork: [Int]
    /// Moves whose source half the lane has not reported yet.
    private var movesInFlight = 0
    /// Per vCPU, the moves from or to it whose pending state has not reached the target's queue:
    /// MOVIs whose source half is unreported, and MOVALLs into it whose LPIs are unreported.
    private var movesAt: [Int]
    /// Every item ever queued: the difference across a request is the work it queued.
    public private(set) var itemsQueued = 0
    /// Lanes queued to since the last ``queueBarriers(_:)``.
    private var touched: [Bool]
    /// `lanes.lanes.count`, kept here: vCPU n goes to lane n % laneCount (``LaneGroup/laneIndex(of:)``).
    private let laneCount: Int
    /// laneCount - 1 when laneCount is a power of two (n % laneCount is then n & laneMask), else -1.
    private let laneMask: Int

    public init(vm: VMKey, vcpuCount: Int, lanes: LaneGroup) {
        self.vm = vm
        self.vcpuCount = vcpuCount
        self.lanes = lanes
        laneCount = lanes.lanes.count
        laneMask = laneCount.nonzeroBitCount == 1 ? laneCount - 1 : -1
        batches = Array(repeating: [], count: lanes.lanes.count)
        touched = Array(repeating: false, count: lanes.lanes.count)
        backgroundWork = Array(repeating: 0, count: vcpuCount)
        movesAt = Array(repeating: 0, count: vcpuCount)
    }

    private mutating func queue(_ operation: LPIOperation, on vcpu: VCPUIndex) {
        queue(.lpi(vm, vcpu, operation), for: vcpu)
    }

    /// Queues an item for the lane owning `vcpu` in order with the LPI operations. A batch starts
    /// with the time its first item was queued: where inject-to-acknowledge latencies start.
    public mutating func queue(_ work: consuming LaneWork, for vcpu: VCPUIndex) {
        let lane = laneIndex(of: vcpu)
        if batches[lane].isEmpty { batches[lane].append(.clock(uv_hrtime())) }
        batches[lane].append(work)
        if !touched[lane] { touched[lane] = true }
        itemsQueued &+= 1
    }

    /// The lane that owns `vcpu`, as ``LaneGroup/laneIndex(of:)`` gives it, with a mask instead of a
    /// division when the number of lanes is a power of two.
    @inline(__always) private func laneIndex(of vcpu: VCPUIndex) -> Int {
        laneMask >= 0 ? Int(vcpu.rawValue) & laneMask : Int(vcpu.rawValue) % laneCount
    }

    /// The translations' LPIs made pending, in order: the items ``setPending(_:on:)`` queues for
    /// each, with one access to a lane's batch per run of translations to that lane, whose items
    /// are appended together.
    public mutating func setPending(_ translations: UnsafeBufferPointer<ITS.Translation>) {
        var start = 0
        while start < translations.count {
            let lane = laneIndex(of: translations[start].vcpu)
            var end = start &+ 1
            while end < translations.count, laneIndex(of: translations[end].vcpu) == lane { end &+= 1 }
            Self.append(UnsafeBufferPointer(rebasing: translations[start ..< end]), of: vm, to: &batches[lane])
            if !touched[lane] { touched[lane] = true }
            itemsQueued &+= end &- start
            start = end
        }
    }

    /// Appends a set-pending item per translation to `batch`, after the clock when the batch starts
    /// with them (as ``queue(_:for:)`` does). Static, so that the batch is the only thing borrowed.
    private static func append(_ run: UnsafeBufferPointer<ITS.Translation>, of vm: VMKey, to batch: inout [LaneWork]) {
        if batch.isEmpty { batch.append(.clock(uv_hrtime())) }
        batch.append(contentsOf: SetPendingItems(vm: vm, run: run))
    }

    /// The set-pending items of a run of translations, as a sequence whose length is known, so that
    /// appending them grows the batch once and checks its uniqueness once.
    private struct SetPendingItems: Sequence, IteratorProtocol {
        let vm: VMKey
        let run: UnsafeBufferPointer<ITS.Translation>
        var position = 0

        init(vm: VMKey, run: UnsafeBufferPointer<ITS.Translation>) {
            self.vm = vm
            self.run = run
        }

        var underestimatedCount: Int { run.count &- position }

        mutating func next() -> LaneWork? {
            guard position < run.count else { return nil }
            let translation = run[position]
            position &+= 1
            return .lpi(vm, translation.vcpu, .setPending(translation.intid))
        }
    }

    /// Queues a barrier to every lane queued to since the last call, behind what was queued
    /// there, each with a ticket from `makeTicket`; returns how many.
    public mutating func queueBarriers(_ makeTicket: () -> ReplyTicket) -> Int {
        var count = 0
        for lane in touched.indices where touched[lane] {
            touched[lane] = false
            if batches[lane].isEmpty { batches[lane].append(.clock(uv_hrtime())) }
            batches[lane].append(.barrier(ticket: makeTicket()))
            count += 1
        }
        return count
    }

    /// Sends every batch to its lane, or runs it here when the lane is idle and the batch small
    /// (``LaneGroup/runIfIdle(_:onLane:)``). Returns how many batches ran here.
    @discardableResult
    public mutating func flush() -> Int {
        var ranHere = 0
        for index in batches.indices where !batches[index].isEmpty {
            if lanes.runIfIdle(&batches[index], onLane: index) {
                ranHere += 1
            } else {
                lanes.lanes[index].submit(moving: &batches[index])
            }
        }
        return ranHere
    }

    public mutating func mapLPI(_ intid: INTID, on vcpu: VCPUIndex) {
        epoch &+= 1
        queue(.map(intid, epoch: epoch), on: vcpu)
    }
    public mutating func unmapLPI(_ intid: INTID, on vcpu: VCPUIndex) { queue(.unmap(intid), on: vcpu) }

    public mutating func moveLPI(_ intid: INTID, from source: VCPUIndex, to target: VCPUIndex) {
        guard source != target else { return }
        epoch &+= 1
        movesInFlight += 1
        movesAt[Int(source.rawValue)] += 1
        movesAt[Int(target.rawValue)] += 1
        queue(.map(intid, epoch: epoch), on: target)
        queue(.unmapReportingPending(intid, to: target, epoch: epoch), on: source)
    }

    /// The source of a move is done with it: if the LPI was pending there, queue the target half.
    public mutating func moved(_ intid: INTID, from source: VCPUIndex, to target: VCPUIndex, epoch: UInt16, wasPending: Bool) {
        movesInFlight = max(0, movesInFlight - 1)
        movesAt[Int(source.rawValue)] = max(0, movesAt[Int(source.rawValue)] - 1)
        movesAt[Int(target.rawValue)] = max(0, movesAt[Int(target.rawValue)] - 1)
        if wasPending { queue(.setPendingIfMapped(intid, epoch: epoch), on: target) }
    }

    /// Whether nothing queued to the lanes will send work back to the loop: no move's source half
    /// unanswered, no INVALL or MOVALL unfinished. A snapshot of the lanes' state taken then holds
    /// every pending LPI exactly once.
    public var isQuiescent: Bool {
        movesInFlight == 0 && !backgroundWork.contains { $0 > 0 } && !movesAt.contains { $0 > 0 }
    }

    /// MOVALL's source took these pending LPIs (none, possibly): make them pending at the target,
    /// as direct LPIs where no mapping routes them there.
    public mutating func allPendingMoved(_ intids: [INTID], to target: VCPUIndex) {
        movesAt[Int(target.rawValue)] = max(0, movesAt[Int(target.rawValue)] - 1)
        for intid in intids { queue(.setPendingDirect(intid), on: target) }
    }

    public mutating func setPending(_ intid: INTID, on vcpu: VCPUIndex) { queue(.setPending(intid), on: vcpu) }
    public mutating func clearPending(_ intid: INTID, on vcpu: VCPUIndex) { queue(.clearPending(intid), on: vcpu) }
    public mutating func invalidate(_ intid: INTID, on vcpu: VCPUIndex) { queue(.invalidate(intid), on: vcpu) }
    public mutating func invalidateAll(on vcpu: VCPUIndex) {
        backgroundWork[Int(vcpu.rawValue)] += 1
        queue(.invalidateAll, on: vcpu)
    }

    /// Queues the move to the source's lane and returns at once: the lane does the work.
    public mutating func moveAllPending(from source: VCPUIndex, to target: VCPUIndex) -> Int {
        guard source != target else { return 1 }
        backgroundWork[Int(source.rawValue)] += 1
        movesAt[Int(target.rawValue)] += 1
        queue(.takeAllPending(to: target), on: source)
        return 1
    }

    /// An INVALL or MOVALL unfinished at `vcpu`, or a move from or to it whose pending state is
    /// still crossing between lanes: SYNC waits for all of them.
    public func hasBackgroundWork(on vcpu: VCPUIndex) -> Bool {
        backgroundWork[Int(vcpu.rawValue)] > 0 || movesAt[Int(vcpu.rawValue)] > 0
    }

    /// The lane reported an INVALL or MOVALL at `vcpu` complete.
    public mutating func backgroundWorkDone(on vcpu: VCPUIndex) {
        backgroundWork[Int(vcpu.rawValue)] = max(0, backgroundWork[Int(vcpu.rawValue)] - 1)
    }
}

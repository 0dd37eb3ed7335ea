import ITSModel

/// ``RedistributorOperations`` for a VM whose redistributors live on lanes: each operation becomes
/// a ``LaneWork`` item in a per-lane batch, sent by ``flush()`` — once per loop callback, however
/// many MSIs or commands it handled — so that work crosses threads in batches.
///
/// A move (MOVI, MAPC) is a "map" queued to the target's lane and an "unmap, forwarding the
/// pending state" queued to the source's lane. Anything the ITS queues for the target afterwards
/// lands behind the map; the forwarded pending state arrives as a direct set-pending and merges
/// (docs/ARCHITECTURE.md).
/// - Context: the loop thread.
public struct LaneRedistributors: RedistributorOperations {
    public let vm: VMKey
    public let vcpuCount: Int
    public let lanes: LaneGroup
    private var batches: [[LaneWork]]

    public init(vm: VMKey, vcpuCount: Int, lanes: LaneGroup) {
        self.vm = vm
        self.vcpuCount = vcpuCount
        self.lanes = lanes
        batches = Array(repeating: [], count: lanes.lanes.count)
    }

    private mutating func queue(_ operation: LPIOperation, on vcpu: VCPUIndex) {
        batches[lanes.laneIndex(of: vcpu)].append(.lpi(vm, vcpu, operation))
    }

    /// Queues an item for the lane owning `vcpu` in order with the LPI operations.
    public mutating func queue(_ work: LaneWork, for vcpu: VCPUIndex) {
        batches[lanes.laneIndex(of: vcpu)].append(work)
    }

    /// Sends every batch to its lane.
    public mutating func flush() {
        for index in batches.indices where !batches[index].isEmpty {
            lanes.lanes[index].submit(contentsOf: batches[index])
            batches[index].removeAll(keepingCapacity: true)
        }
    }

    public mutating func mapLPI(_ intid: INTID, on vcpu: VCPUIndex) { queue(.map(intid), on: vcpu) }
    public mutating func unmapLPI(_ intid: INTID, on vcpu: VCPUIndex) { queue(.unmap(intid), on: vcpu) }

    public mutating func moveLPI(_ intid: INTID, from source: VCPUIndex, to target: VCPUIndex) {
        guard source != target else { return }
        queue(.map(intid), on: target)
        queue(.unmapForwardingPending(intid, to: target), on: source)
    }

    public mutating func setPending(_ intid: INTID, on vcpu: VCPUIndex) { queue(.setPending(intid), on: vcpu) }
    public mutating func clearPending(_ intid: INTID, on vcpu: VCPUIndex) { queue(.clearPending(intid), on: vcpu) }
    public mutating func invalidate(_ intid: INTID, on vcpu: VCPUIndex) { queue(.invalidate(intid), on: vcpu) }
    public mutating func invalidateAll(on vcpu: VCPUIndex) { queue(.invalidateAll, on: vcpu) }

    public mutating func moveAllPending(from source: VCPUIndex, to target: VCPUIndex) {
        guard source != target else { return }
        queue(.forwardAllPending(to: target), on: source)
    }
}

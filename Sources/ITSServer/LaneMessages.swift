import Histogram
import ITSModel

/// A VM's number inside the server (the protocol's VM id).
public struct VMKey: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ value: UInt32) { rawValue = value }
    public static func < (a: VMKey, b: VMKey) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

/// Names a request whose reply the loop is waiting for (the loop maps it to a connection and the
/// request's place in that connection's reply order).
public struct ReplyTicket: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// A one-way LPI operation on one vCPU's redistributor: what ``RedistributorOperations`` becomes
/// once it is queued to the vCPU's lane.
public enum LPIOperation: Hashable, Sendable {
    /// Map, tagging the mapping with `epoch` (see ``LPIRecord``).
    case map(INTID, epoch: UInt16)
    case unmap(INTID)
    /// The source half of a move: unmap here and report whether the LPI was pending to the loop,
    /// which then queues ``setPendingIfMapped(_:epoch:)`` to the target.
    case unmapReportingPending(INTID, to: VCPUIndex, epoch: UInt16)
    case setPending(INTID)
    /// The target half of a move: pending only if the mapping still carries `epoch`.
    case setPendingIfMapped(INTID, epoch: UInt16)
    /// Pending whether or not a mapping routes the LPI here (GICR_SETLPIR, forwarded state).
    case setPendingDirect(INTID)
    case clearPending(INTID)
    case invalidate(INTID)
    case invalidateAll
    /// MOVALL: every pending LPI here stops being pending and is reported to the loop, which makes
    /// them pending at `to`.
    case takeAllPending(to: VCPUIndex)
}

/// A request served by a vCPU's lane, answered through the loop's mailbox.
public enum LaneRequest: Hashable, Sendable {
    case mmioRead(offset: UInt64, width: MMIOWidth)
    case mmioWrite(offset: UInt64, width: MMIOWidth, value: UInt64)
    case highestPriorityPending(priorityMask: Priority)
    case acknowledge(priorityMask: Priority)
    /// WAIT_ACK: acknowledge as ``acknowledge(priorityMask:)`` does, or, with nothing to take and no
    /// WAKE latched, wait until something is (Protocol/PROTOCOL.md, WAIT_ACK). An earlier wait on
    /// the vCPU is answered with 1023.
    case waitAcknowledge(priorityMask: Priority)
    /// WAKE: answers the vCPU's waiting WAIT_ACK with 1023, or latches the wake for the next one.
    case wake
    case pendingLPIs(from: INTID, limit: Int)
    /// Replaces the vCPU's notify eventfd (nil: none); the lane closes the one it replaces.
    case setNotifyFD(Int32?)
    /// Replaces the vCPU's acknowledge slot (nil: none), then serves it at once.
    case setAcknowledgeSlot(AcknowledgeSlot?)
    /// The vCPU's redistributor, for a snapshot.
    case snapshot
    /// Up to `limit` LPIs known here from `from` on, for DUMP.
    case lpis(from: INTID, limit: Int)
}

/// An LPI as DUMP lists it.
public struct LPIListing: Sendable {
    public var intid: INTID
    public var config: LPIConfig
    public var pending: Bool
}

/// A lane's answer to a ``LaneRequest``.
public enum LaneReply: Sendable {
    case mmioRead(Result<UInt64, MMIOIgnoredReason>)
    /// The write's outcome, and whether it turned EnableLPIs from 1 to 0 (the ITS must then
    /// invalidate its translations).
    case mmioWrite(MMIOIgnoredReason?, disabledLPIs: Bool)
    case intid(INTID, LPIConfig?)
    /// What ACK, or WAIT_ACK, acknowledged (spurious: nothing), and whether the vCPU still has an
    /// LPI above the request's mask once its waiting WAIT_ACK and acknowledge slot have taken
    /// theirs: another ACK with that mask would take it (PROTOCOL.md 6.16, `more`).
    case acknowledged(INTID, LPIConfig?, more: Bool)
    case pending(PendingPage)
    case done
    case redistributor(Redistributor)
    case statistics(LaneStatistics)
    /// A page of LPIs and the INTID to continue from, if any.
    case lpis([LPIListing], next: INTID?)
    /// The VM or vCPU is not on this lane (destroyed while the request was queued).
    case gone
}

/// Work for a lane.
public enum LaneWork: Sendable {
    /// The lane now owns these redistributors of `vm` (besides any it had), reading guest memory
    /// through `memory`.
    case attach(VMKey, memory: MappedGuestMemory, redistributors: [Redistributor])
    /// The lane drops `vm`, closing its notify fds; answers `ticket`, if any, when done.
    case detach(VMKey, ticket: ReplyTicket?)
    case lpi(VMKey, VCPUIndex, LPIOperation)
    case request(VMKey, VCPUIndex, LaneRequest, ticket: ReplyTicket)
    /// Answered once everything queued before it on this lane is done.
    case barrier(ticket: ReplyTicket)
    /// When the loop queued the items that follow (uv_hrtime nanoseconds): the start of the
    /// inject-to-acknowledge latency of the LPIs they make pending.
    case clock(UInt64)
    /// The lane's statistics for `vm` (every VM when nil), answered as ``LaneReply/statistics(_:)``.
    case statistics(VMKey?, ticket: ReplyTicket)
    /// Ends the wait of the WAIT_ACK answered through `ticket`, with 1023, if it is still waiting
    /// on `vcpu` of `vm` (its timeout passed, its connection closed, the server is shutting down).
    case endWait(VMKey, VCPUIndex, ticket: ReplyTicket)
}

/// What a lane reports for STATS.
public struct LaneStatistics: Sendable {
    /// Nanoseconds the lane's loop has spent waiting for work (uv_metrics_idle_time).
    public var idleNanoseconds: UInt64
    /// The redistributors of the VM (or every VM) on this lane.
    public var vcpus: [VCPUStatistics]
    /// Inject-to-acknowledge latencies of the LPIs acknowledged on this lane for the VM (or every VM).
    public var latency: Histogram<UInt64>
}

/// One redistributor's counters and gauges.
public struct VCPUStatistics: Sendable {
    public var vm: VMKey
    public var vcpu: VCPUIndex
    public var counters: Redistributor.Counters
    /// LPIs pending, and LPIs known (mapped or pending).
    public var pending: Int
    public var lpis: Int
    /// Whether the vCPU has an acknowledge slot; LPIs acknowledged into its slots so far; invalid
    /// words the lane found there.
    public var hasAckSlot = false
    public var ackSlotDeliveries: UInt64 = 0
    public var ackSlotInvalidWords: UInt64 = 0
}

/// What lanes send to the loop thread.
public enum LoopWork: Sendable {
    case reply(ReplyTicket, LaneReply)
    /// `vcpu` of `vm` went from nothing deliverable to something deliverable (for clients that
    /// subscribed to in-band notifications).
    case deliverable(VMKey, VCPUIndex)
    /// The source half of a move is done; if the LPI was pending there, the loop queues the target
    /// half. Sent for every move, so that the loop knows when none is in flight (snapshots, SYNC).
    case moved(VMKey, INTID, from: VCPUIndex, to: VCPUIndex, epoch: UInt16, wasPending: Bool)
    /// MOVALL's source took these pending LPIs; the loop makes them pending at `to`. Sent for every
    /// MOVALL, with none taken too, so that a SYNC on `to` knows when it is done.
    case movedAllPending(VMKey, [INTID], to: VCPUIndex)
    /// An INVALL or MOVALL at `vcpu` is complete (a SYNC waiting for it may go on).
    case backgroundWorkDone(VMKey, VCPUIndex)
}

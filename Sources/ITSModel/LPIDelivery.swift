/// Where the model reports that a vCPU has something to take. The model does no I/O: its owner (a
/// vCPU lane of the server, or a test) implements this and decides how to wake the vCPU.
///
/// Operations that can make an LPI deliverable take the sink as `inout some LPIDeliverySink`, so the
/// call is static (no existential) and allocation-free.
public protocol LPIDeliverySink {
    /// `vcpu` went from having no deliverable LPI (pending, enabled, EnableLPIs set) to having one.
    /// Called once per such edge, not once per LPI.
    mutating func lpiBecameDeliverable(on vcpu: VCPUIndex)
}

/// A sink for operations whose edges nobody needs to hear about.
public struct NoDeliverySink: LPIDeliverySink {
    public init() {}
    public mutating func lpiBecameDeliverable(on vcpu: VCPUIndex) {}
}

/// A sink that records the vCPUs it was told about, in order. For tests and tools.
public struct DeliveryLog: LPIDeliverySink, Sendable {
    public private(set) var notified: [VCPUIndex] = []
    public init() {}
    public mutating func lpiBecameDeliverable(on vcpu: VCPUIndex) { notified.append(vcpu) }
    public mutating func removeAll() { notified.removeAll() }
}

/// The per-vCPU record of an LPI that targets it: its cached configuration byte and how many ITS
/// mappings (ITEs) route it here. An LPI made pending directly (GICR_SETLPIR or the pending table)
/// has no mapping and lives only while pending.
///
/// Four bytes: the configuration byte, the mapping count (saturating at 255), and the epoch of the
/// mapping that last routed the LPI here, which a server with lanes uses to tell a pending state
/// moved from another vCPU that is still wanted from one overtaken by a later unmap or remap
/// (docs/ARCHITECTURE.md).
public struct LPIRecord: Hashable, Sendable, BitwiseCopyable {
    public var config: LPIConfig
    public var mappings: UInt8
    public var epoch: UInt16

    @inlinable public init(config: LPIConfig, mappings: UInt8, epoch: UInt16 = 0) {
        self.config = config
        self.mappings = mappings
        self.epoch = epoch
    }
}

/// What became of a request to make an LPI pending.
public enum LPIPendOutcome: Hashable, Sendable {
    /// The LPI is now pending (and deliverable if its configuration enables it).
    case madePending
    /// It was pending already; LPIs are edge-triggered, so the two signals merge.
    case alreadyPending
    /// GICR_CTLR.EnableLPIs is 0 at this redistributor: the LPI is dropped (IHI 0069, 5.1).
    case droppedLPIsDisabled
    /// The INTID is not an LPI below the limit GICR_PROPBASER.IDbits sets: ignored.
    case outOfRange
    /// No mapping of this INTID targets this redistributor (a translation raced an unmap).
    case notMapped
    /// A pending state moved from another vCPU arrived after the mapping it was moved with was
    /// replaced or removed: dropped.
    case staleMove
    /// A direct LPI would exceed the redistributor's LPI limit: dropped, counted.
    case limitReached
}

/// One pending LPI in a listing.
public struct PendingLPI: Hashable, Sendable {
    public var intid: INTID
    public var config: LPIConfig
    public init(intid: INTID, config: LPIConfig) {
        self.intid = intid
        self.config = config
    }
}

/// A page of a vCPU's pending LPIs in INTID order, and the cursor to pass for the next page.
public struct PendingPage: Hashable, Sendable {
    public var lpis: [PendingLPI]
    /// The INTID to start the next page at, or nil when the listing is complete.
    public var next: INTID?
}

/// The LPI part of one vCPU's redistributor (IHI 0069, chapter 5 and 12.11): GICR_CTLR.EnableLPIs,
/// the LPI Configuration and Pending tables programmed through GICR_PROPBASER and GICR_PENDBASER,
/// the direct LPI registers, and the vCPU's pending LPIs with their acknowledge path.
///
/// It is a value with no I/O: guest memory and delivery come in as parameters.
/// - Context: owned by the lane that owns the vCPU; every mutating method runs there.
public struct Redistributor: Sendable {
    public let configuration: Configuration

    /// GICR_CTLR.EnableLPIs.
    public internal(set) var lpisEnabled = false
    /// GICR_PROPBASER as stored (implemented fields only).
    public internal(set) var propbaser: UInt64 = 0
    /// GICR_PENDBASER as stored (implemented fields only; PTZ kept apart).
    public internal(set) var pendbaser: UInt64 = 0
    /// GICR_PENDBASER.PTZ as last written: consumed when EnableLPIs goes from 0 to 1.
    public internal(set) var pendingTableZero = false

    /// Every LPI targeting this vCPU, by INTID. The pending ones, enabled or not, are marked
    /// (``SparseIndex/mark(_:)``): making an LPI pending is the lookup of its record and one store.
    public internal(set) var lpis = SparseIndex<LPIRecord>()
    /// Pending and enabled LPIs, one set per priority level (priority >> 2).
    var deliverable = [SparseBitSet](repeating: SparseBitSet(), count: 64)
    /// Bit n is set when `deliverable[n]` is non-empty.
    var deliverableLevels: UInt64 = 0
    /// The number of pending, enabled LPIs.
    public internal(set) var deliverableCount = 0

    /// The next INTID of a GICR_INVALLR sweep in progress.
    var invalidateAllCursor: UInt64?
    /// The next pending-table word of a load started by EnableLPIs going from 0 to 1.
    var pendingTableLoadCursor: UInt64?

    public internal(set) var counters = Counters()

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    public var vcpu: VCPUIndex { configuration.vcpu }

    /// The number of pending LPIs, enabled or not. O(1).
    public var pendingCount: Int { lpis.markedCount }
}

extension Redistributor {
    /// What a redistributor is built with; fixed for its life.
    public struct Configuration: Hashable, Sendable {
        /// The vCPU, also GICR_TYPER.Processor_Number.
        public var vcpu: VCPUIndex
        /// GICR_TYPER.Affinity_Value: Aff3.Aff2.Aff1.Aff0 of the vCPU's MPIDR.
        public var affinity: UInt32
        /// GICR_TYPER.Last: the highest redistributor of the VM's contiguous frames.
        public var isLast: Bool
        /// INTID bits the VM supports (GICD_TYPER.IDbits + 1), 14 ... 32: LPIs are 8192 ..< 2^bits.
        public var intidBits: Int
        /// LPI records at most (mapped or direct): the guest controls how many exist, so their
        /// host memory is capped. Beyond it new LPIs are refused and counted (`lpiLimitReached`).
        public var maximumLPIs: Int

        public init(vcpu: VCPUIndex, affinity: UInt32? = nil, isLast: Bool, intidBits: Int = 16,
                    maximumLPIs: Int = 1 << 22)
        {
            precondition((14 ... 32).contains(intidBits), "INTID bits must be 14 ... 32")
            self.vcpu = vcpu
            self.affinity = affinity ?? Self.defaultAffinity(of: vcpu)
            self.isLast = isLast
            self.intidBits = intidBits
            self.maximumLPIs = maximumLPIs
        }

        /// The affinity KVM gives vCPU n: Aff0 = n[3:0], Aff1 = n[11:4], Aff2 = n[19:12] (16 per cluster).
        public static func defaultAffinity(of vcpu: VCPUIndex) -> UInt32 {
            let n = UInt32(vcpu.rawValue)
            return (n & 0xF) | ((n >> 4) & 0xFF) << 8 | ((n >> 12) & 0xFF) << 16
        }
    }

    /// Events counted at this redistributor, for stats.
    public struct Counters: Hashable, Sendable {
        /// LPIs that became pending.
        public var lpisMadePending: UInt64 = 0
        /// Signals for an LPI that was already pending (merged).
        public var lpisCoalesced: UInt64 = 0
        /// LPIs acknowledged.
        public var lpisAcknowledged: UInt64 = 0
        /// LPIs dropped because GICR_CTLR.EnableLPIs was 0.
        public var lpisDroppedDisabled: UInt64 = 0
        /// Pending LPIs dropped when EnableLPIs went from 1 to 0.
        public var lpisDroppedOnDisable: UInt64 = 0
        /// INTIDs outside 8192 ..< the GICR_PROPBASER.IDbits limit, ignored.
        public var intidsOutOfRange: UInt64 = 0
        /// Translations that found no mapping here (raced an unmap).
        public var lpisNotMapped: UInt64 = 0
        /// Pending states moved from another vCPU that arrived after their mapping was replaced
        /// or removed, dropped.
        public var staleMoves: UInt64 = 0
        /// New LPIs refused because ``Configuration/maximumLPIs`` records exist.
        public var lpiLimitReached: UInt64 = 0
        /// Configuration bytes that could not be read from guest memory.
        public var configReadFaults: UInt64 = 0
        /// Pending-table words that could not be read or written.
        public var pendingTableFaults: UInt64 = 0
        /// Register accesses ignored: unimplemented offsets, widths, read-only or write-only misuse,
        /// and base register writes while EnableLPIs is 1.
        public var mmioIgnored: UInt64 = 0
    }
}

extension Redistributor {
    /// The number of INTID bits in force: GICR_PROPBASER.IDbits + 1, capped by the VM's limit.
    public var effectiveIDBits: Int {
        min(Int(propbaser & 0x1F) + 1, configuration.intidBits)
    }

    /// Whether `intid` is an LPI this redistributor accepts: 8192 ..< 2^effectiveIDBits. With fewer
    /// than 14 ID bits there are no LPIs at all (IHI 0069, GICR_PROPBASER.IDbits).
    public func accepts(_ intid: INTID) -> Bool {
        let bits = effectiveIDBits
        return bits >= 14 && intid.isLPI && UInt64(intid.rawValue) < (1 as UInt64) << UInt64(bits)
    }

    /// The LPI Configuration table's base address (GICR_PROPBASER.PA, bits [51:12]).
    public var configurationTable: GuestAddress { GuestAddress(propbaser & 0x000F_FFFF_FFFF_F000) }

    /// The LPI Pending table's base address (GICR_PENDBASER.PA, bits [51:16]).
    public var pendingTable: GuestAddress { GuestAddress(pendbaser & 0x000F_FFFF_FFFF_0000) }

    /// Whether background work (a GICR_INVALLR sweep or a pending-table load) remains; GICR_SYNCR.Busy.
    public var hasPendingWork: Bool { invalidateAllCursor != nil || pendingTableLoadCursor != nil }
}

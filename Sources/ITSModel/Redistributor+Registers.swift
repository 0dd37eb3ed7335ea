/// The LPI registers of a redistributor's RD_base frame (IHI 0069, 12.11), as a register table.
extension Redistributor {
    /// What a register write asks the redistributor to do once the register itself is updated.
    public enum RegisterEffect: Hashable, Sendable {
        case none
        case ignored(MMIOIgnoredReason)
        case setLPIsEnabled(Bool)
        case setPending(INTID)
        case clearPending(INTID)
        case invalidate(INTID)
        case invalidateAll
    }

    /// Register offsets within RD_base.
    public enum Offset {
        public static let ctlr: UInt64 = 0x0000
        public static let iidr: UInt64 = 0x0004
        public static let typer: UInt64 = 0x0008
        public static let setlpir: UInt64 = 0x0040
        public static let clrlpir: UInt64 = 0x0048
        public static let propbaser: UInt64 = 0x0070
        public static let pendbaser: UInt64 = 0x0078
        public static let invlpir: UInt64 = 0x00A0
        public static let invallr: UInt64 = 0x00B0
        public static let syncr: UInt64 = 0x00C0
        public static let pidr2: UInt64 = 0xFFE8
    }

    /// GICR_CTLR: EnableLPIs [0]; CES [1] = 1 (EnableLPIs can be cleared); IR [2] = 1 (INVLPIR,
    /// INVALLR and SYNCR are implemented); RWP [3] reads 0 because every change completes before
    /// the write returns.
    static let ctlrCES: UInt64 = 1 << 1
    static let ctlrIR: UInt64 = 1 << 2
    /// GICR_IIDR: Implementer 0x43B (the JEP106 code GIC emulations report), ProductID 0x49 ("I").
    static let iidr: UInt64 = 0x4900_043B
    /// GICR_PIDR2: ArchRev [7:4] = 3 (GICv3), JEP106 identity bits 0xB.
    static let pidr2: UInt64 = 0x3B
    /// GICR_PROPBASER fields kept: IDbits [4:0], InnerCache [9:7], Shareability [11:10],
    /// PA [51:12], OuterCache [58:56].
    static let propbaserMask: UInt64 = 0x1F | 0x7 << 7 | 0x3 << 10 | 0x000F_FFFF_FFFF_F000 | 0x7 << 56
    /// GICR_PENDBASER fields kept: InnerCache [9:7], Shareability [11:10], PA [51:16],
    /// OuterCache [58:56]. PTZ [62] is kept apart and reads as 0.
    static let pendbaserMask: UInt64 = 0x7 << 7 | 0x3 << 10 | 0x000F_FFFF_FFFF_0000 | 0x7 << 56
    static let pendbaserPTZ: UInt64 = 1 << 62
    /// GICR_INVLPIR.V and GICR_INVALLR.V [63]: the request targets a vPE.
    static let invalidateVirtual: UInt64 = 1 << 63

    /// GICR_TYPER: PLPIS [0] = 1, DirectLPI [3] = 1, Last [4], Processor_Number [23:8],
    /// CommonLPIAff [25:24] = 0 (all redistributors share one LPI Configuration table),
    /// Affinity_Value [63:32]; VLPIS, Dirty, DPGS, MPAM, RVPEID, VSGI and PPInum are 0.
    public var typer: UInt64 {
        1 | 1 << 3 | (configuration.isLast ? 1 << 4 : 0) | UInt64(configuration.vcpu.rawValue) << 8
            | UInt64(configuration.affinity) << 32
    }

    /// The register table of the LPI part of RD_base.
    public static let registers = RegisterTable<Redistributor, RegisterEffect>([
        RegisterDescriptor("GICR_CTLR", offset: Offset.ctlr, size: 4,
                           read: { ($0.lpisEnabled ? 1 : 0) | ctlrCES | ctlrIR },
                           write: { _, value in .setLPIsEnabled(value & 1 != 0) }),
        RegisterDescriptor("GICR_IIDR", offset: Offset.iidr, size: 4, read: { _ in iidr }, write: nil),
        RegisterDescriptor("GICR_TYPER", offset: Offset.typer, size: 8, read: { $0.typer }, write: nil),
        RegisterDescriptor("GICR_SETLPIR", offset: Offset.setlpir, size: 8, read: nil,
                           write: { _, value in .setPending(INTID(UInt32(truncatingIfNeeded: value))) }),
        RegisterDescriptor("GICR_CLRLPIR", offset: Offset.clrlpir, size: 8, read: nil,
                           write: { _, value in .clearPending(INTID(UInt32(truncatingIfNeeded: value))) }),
        RegisterDescriptor("GICR_PROPBASER", offset: Offset.propbaser, size: 8, read: { $0.propbaser },
                           write: { redistributor, value in
                               // IHI 0069, GICR_PROPBASER: writes while EnableLPIs is 1 are ignored here,
                               // as KVM does (the architecture makes them UNPREDICTABLE).
                               guard !redistributor.lpisEnabled else { return .ignored(.lockedInCurrentState) }
                               redistributor.propbaser = value & propbaserMask
                               return .none
                           }),
        RegisterDescriptor("GICR_PENDBASER", offset: Offset.pendbaser, size: 8, read: { $0.pendbaser },
                           write: { redistributor, value in
                               guard !redistributor.lpisEnabled else { return .ignored(.lockedInCurrentState) }
                               redistributor.pendbaser = value & pendbaserMask
                               redistributor.pendingTableZero = value & pendbaserPTZ != 0
                               return .none
                           }),
        RegisterDescriptor("GICR_INVLPIR", offset: Offset.invlpir, size: 8, read: nil,
                           write: { _, value in
                               value & invalidateVirtual != 0
                                   ? .ignored(.unsupportedRequest)
                                   : .invalidate(INTID(UInt32(truncatingIfNeeded: value)))
                           }),
        RegisterDescriptor("GICR_INVALLR", offset: Offset.invallr, size: 8, read: nil,
                           write: { _, value in
                               value & invalidateVirtual != 0 ? .ignored(.unsupportedRequest) : .invalidateAll
                           }),
        RegisterDescriptor("GICR_SYNCR", offset: Offset.syncr, size: 4,
                           read: { $0.hasPendingWork ? 1 : 0 }, write: nil),
        RegisterDescriptor("GICR_PIDR2", offset: Offset.pidr2, size: 4, read: { _ in pidr2 }, write: nil),
    ])

    /// The default amount of background work (LPIs or pending-table words) an MMIO write does
    /// before returning; the rest continues through ``performPendingWork(budget:memory:sink:)``.
    public static let defaultWorkBudget = 4096

    /// A guest read of `width` bytes at `offset` in RD_base. Ignored accesses read 0 and are counted.
    /// - Context: the owning lane.
    public mutating func mmioRead(offset: UInt64, width: MMIOWidth) -> Result<UInt64, MMIOIgnoredReason> {
        let result = Self.registers.read(self, offset: offset, width: width)
        if case .failure = result { counters.mmioIgnored += 1 }
        return result
    }

    /// A guest write of `width` bytes at `offset` in RD_base. Returns nil when it took effect, or
    /// why it was ignored (counted).
    /// - Context: the owning lane.
    @discardableResult
    public mutating func mmioWrite<M: GuestMemory, S: LPIDeliverySink>(
        offset: UInt64, width: MMIOWidth, value: UInt64, memory: M, sink: inout S,
        workBudget: Int = Redistributor.defaultWorkBudget
    ) -> MMIOIgnoredReason? {
        let effect: RegisterEffect
        switch Self.registers.write(&self, offset: offset, width: width, value: value) {
        case .failure(let reason):
            counters.mmioIgnored += 1
            return reason
        case .success(let result):
            effect = result
        }
        switch effect {
        case .none:
            break
        case .ignored(let reason):
            counters.mmioIgnored += 1
            return reason
        case .setLPIsEnabled(let enable):
            setLPIsEnabled(enable, budget: workBudget, memory: memory, sink: &sink)
        case .setPending(let intid):
            _ = setPendingDirect(intid, memory: memory, sink: &sink)
        case .clearPending(let intid):
            clearPending(intid)
        case .invalidate(let intid):
            invalidate(intid, memory: memory, sink: &sink)
        case .invalidateAll:
            invalidateAll(budget: workBudget, memory: memory, sink: &sink)
        }
        return nil
    }

    /// GICR_CTLR.EnableLPIs transitions. 0 -> 1 loads the pending table unless PTZ was written;
    /// 1 -> 0 drops every pending LPI of this vCPU (KVM's choice; IHI 0069 leaves what happens to
    /// pending LPIs IMPLEMENTATION DEFINED). Mappings and cached configuration stay.
    mutating func setLPIsEnabled<M: GuestMemory, S: LPIDeliverySink>(
        _ enable: Bool, budget: Int, memory: M, sink: inout S
    ) {
        guard enable != lpisEnabled else { return }
        lpisEnabled = enable
        if enable {
            startPendingTableLoad(budget: budget, memory: memory, sink: &sink)
        } else {
            dropAllPending()
        }
    }
}

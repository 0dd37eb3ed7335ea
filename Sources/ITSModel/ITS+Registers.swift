/// The ITS register frame (IHI 0069, 12.19): the control frame at offset 0 and, in the second 64K
/// frame, GITS_TRANSLATER at 0x10040.
extension ITS {
    /// What a register write asks the ITS to do once the register itself is updated.
    public enum RegisterEffect: Hashable, Sendable {
        case none
        case ignored(MMIOIgnoredReason)
        case setEnabled(Bool)
        case processQueue
        case translate(EventID)
    }

    public enum Offset {
        public static let ctlr: UInt64 = 0x0000
        public static let iidr: UInt64 = 0x0004
        public static let typer: UInt64 = 0x0008
        public static let cbaser: UInt64 = 0x0080
        public static let cwriter: UInt64 = 0x0088
        public static let creadr: UInt64 = 0x0090
        public static let baser0: UInt64 = 0x0100
        public static let pidr2: UInt64 = 0xFFE8
        public static let translater: UInt64 = 0x1_0040
    }

    /// The size of the ITS frame: two 64K frames.
    public static let frameSize: UInt64 = 0x2_0000

    /// GITS_IIDR: Implementer 0x43B, Revision [15:12] 0 (the table ABI revision), ProductID 0x49.
    static let iidr: UInt64 = 0x4900_043B
    static let pidr2: UInt64 = 0x3B
    /// GITS_CBASER fields kept: Size [7:0], Shareability [11:10], PA [51:12], OuterCache [55:53],
    /// InnerCache [61:59], Valid [63].
    static let cbaserWritable: UInt64 = 0xFF | 0x3 << 10 | 0x000F_FFFF_FFFF_F000 | 0x7 << 53 | 0x7 << 59 | 1 << 63

    /// GITS_TYPER: Physical [0] = 1; ITT_entry_size [7:4] = 7 (8 bytes); IDbits [12:8] = EventID
    /// bits - 1; Devbits [17:13] = DeviceID bits - 1; PTA [19] = 0 (RDbase is a processor number);
    /// HCC [31:24] = 0 (every collection lives in the Collection table); CIDbits [35:32] = 15 and
    /// CIL [36] = 1 (16-bit ICIDs). Virtual, CCT, SEIS and the GICv4 fields are 0.
    public var typer: UInt64 {
        1 | 7 << 4 | UInt64(configuration.eventIDBits - 1) << 8 | UInt64(configuration.deviceIDBits - 1) << 13
            | 15 << 32 | 1 << 36
    }

    /// GITS_CTLR.Quiescent: the ITS is disabled and has no command in progress.
    public var isQuiescent: Bool { !enabled && operation == nil && (creadr == cwriter || stalled) }

    /// The register table of the ITS frame.
    public static let registers: RegisterTable<ITS, RegisterEffect> = {
        var registers: [RegisterDescriptor<ITS, RegisterEffect>] = [
            RegisterDescriptor("GITS_CTLR", offset: Offset.ctlr, size: 4,
                               read: { ($0.enabled ? 1 : 0) | ($0.isQuiescent ? 1 << 31 : 0) },
                               write: { _, value in .setEnabled(value & 1 != 0) }),
            RegisterDescriptor("GITS_IIDR", offset: Offset.iidr, size: 4, read: { _ in iidr }, write: nil),
            RegisterDescriptor("GITS_TYPER", offset: Offset.typer, size: 8, read: { $0.typer }, write: nil),
            RegisterDescriptor("GITS_CBASER", offset: Offset.cbaser, size: 8, read: { $0.cbaser },
                               write: { its, value in
                                   // Writes while the ITS is enabled are ignored (KVM; UNPREDICTABLE).
                                   guard !its.enabled else { return .ignored(.lockedInCurrentState) }
                                   its.cbaser = value & cbaserWritable
                                   // IHI 0069 12.19.2: writing CBASER resets CREADR; CWRITER follows it.
                                   its.creadr = 0
                                   its.cwriter = 0
                                   its.stalled = false
                                   return .none
                               }),
            RegisterDescriptor("GITS_CWRITER", offset: Offset.cwriter, size: 8, read: { $0.cwriter },
                               write: { its, value in
                                   let offset = value & 0xF_FFE0
                                   guard offset < (its.queueBytes ?? 0) else {
                                       its.counters.cwriterIgnored += 1
                                       return .ignored(.unsupportedRequest)
                                   }
                                   its.cwriter = offset
                                   if value & 1 != 0 { its.stalled = false }
                                   return .processQueue
                               }),
            RegisterDescriptor("GITS_CREADR", offset: Offset.creadr, size: 8,
                               read: { $0.creadr | ($0.stalled ? 1 : 0) }, write: nil),
            RegisterDescriptor("GITS_PIDR2", offset: Offset.pidr2, size: 4, read: { _ in pidr2 }, write: nil),
            RegisterDescriptor("GITS_TRANSLATER", offset: Offset.translater, size: 4, widths: [.halfword, .word],
                               read: nil, write: { _, value in .translate(EventID(UInt32(truncatingIfNeeded: value))) }),
        ]
        for index in 0 ..< 8 {
            registers.append(baser(index))
        }
        return RegisterTable(registers)
    }()

    /// GITS_BASER<n>: BASER0 is the Device table (flat or two-level), BASER1 the Collection table
    /// (flat), BASER2 ... 7 are unimplemented and RAZ/WI. Entry_Size and Type are read-only.
    static func baser(_ index: Int) -> RegisterDescriptor<ITS, RegisterEffect> {
        let name = "GITS_BASER\(index)"
        let offset = Offset.baser0 + UInt64(index) * 8
        switch index {
        case 0:
            return RegisterDescriptor(name, offset: offset, size: 8, read: { $0.deviceBaser }, write: { its, value in
                guard !its.enabled else { return .ignored(.lockedInCurrentState) }
                its.deviceBaser = (value & (baserWritable | baserIndirect)) | deviceBaserFixed
                return .none
            })
        case 1:
            return RegisterDescriptor(name, offset: offset, size: 8, read: { $0.collectionBaser }, write: { its, value in
                guard !its.enabled else { return .ignored(.lockedInCurrentState) }
                its.collectionBaser = (value & baserWritable) | collectionBaserFixed
                return .none
            })
        default:
            return RegisterDescriptor(name, offset: offset, size: 8, read: { _ in 0 }, write: { _, _ in .none })
        }
    }

    /// The default budget of command processing an MMIO write does before returning; the rest
    /// continues through ``processCommands(budget:memory:redistributors:)``.
    public static let defaultWorkBudget = 4096

    /// A guest read of `width` bytes at `offset` in the ITS frame. Ignored accesses read 0, counted.
    /// - Context: the ITS's thread.
    public mutating func mmioRead(offset: UInt64, width: MMIOWidth) -> Result<UInt64, MMIOIgnoredReason> {
        let result = Self.registers.read(self, offset: offset, width: width)
        if case .failure = result { counters.mmioIgnored += 1 }
        return result
    }

    /// A guest write of `width` bytes at `offset` in the ITS frame. A GITS_TRANSLATER write carries
    /// the DeviceID the caller vouches for (the bus's requester ID). Enabling the ITS or writing
    /// CWRITER processes commands for up to `budget` units. Returns nil when the write took effect,
    /// or why it was ignored (counted).
    /// - Context: the ITS's thread.
    @discardableResult
    public mutating func mmioWrite<M: GuestMemory, R: RedistributorOperations>(
        offset: UInt64, width: MMIOWidth, value: UInt64, deviceID: DeviceID? = nil,
        memory: M, redistributors: inout R, budget: Int = ITS.defaultWorkBudget
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
            return nil
        case .ignored(let reason):
            counters.mmioIgnored += 1
            return reason
        case .setEnabled(let enable):
            if enable, !enabled {
                // KVM's rule: the queue and both tables must be Valid before the ITS can be enabled.
                guard queueBytes != nil, Self.geometry(of: deviceBaser) != nil, Self.geometry(of: collectionBaser) != nil else {
                    counters.mmioIgnored += 1
                    return .lockedInCurrentState
                }
                enabled = true
                _ = processCommands(budget: budget, memory: memory, redistributors: &redistributors)
            } else if !enable, enabled {
                enabled = false
                invalidateTranslations(.all)
            }
            return nil
        case .processQueue:
            _ = processCommands(budget: budget, memory: memory, redistributors: &redistributors)
            return nil
        case .translate(let event):
            guard let deviceID else {
                counters.mmioIgnored += 1
                return .unsupportedRequest
            }
            signal(deviceID, event, redistributors: &redistributors)
            return nil
        }
    }
}

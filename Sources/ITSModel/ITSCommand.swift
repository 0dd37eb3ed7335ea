/// One ITS command, decoded once from its 32 bytes (IHI 0069, 5.3 "ITS commands"): four
/// little-endian doublewords DW0 ... DW3 with the command number in DW0[7:0]. Past the decoder
/// nothing reads bitfields.
public enum ITSCommand: Hashable, Sendable {
    /// MAPD: map DeviceID to an ITT of 2^(eventIDBits) entries at `ittAddress`, or unmap it.
    case mapd(DeviceID, ittAddress: GuestAddress, eventIDBits: Int, valid: Bool)
    /// MAPC: map collection ICID to the redistributor RDbase (a processor number, GITS_TYPER.PTA 0).
    case mapc(CollectionID, rdbase: UInt64, valid: Bool)
    /// MAPTI: map an event to a physical LPI in a collection.
    case mapti(DeviceID, EventID, INTID, CollectionID)
    /// MAPI: MAPTI with the pINTID equal to the EventID.
    case mapi(DeviceID, EventID, CollectionID)
    /// MOVI: move an event's LPI to another collection.
    case movi(DeviceID, EventID, CollectionID)
    /// DISCARD: remove an event's mapping and the pending state of its LPI.
    case discard(DeviceID, EventID)
    /// INV: re-read the configuration of an event's LPI.
    case inv(DeviceID, EventID)
    /// INVALL: re-read the configuration of every LPI of a collection's redistributor.
    case invall(CollectionID)
    /// INT: make an event's LPI pending, as an MSI would.
    case int(DeviceID, EventID)
    /// CLEAR: clear the pending state of an event's LPI.
    case clear(DeviceID, EventID)
    /// SYNC: wait for earlier effects on RDbase to be visible.
    case sync(rdbase: UInt64)
    /// MOVALL: move every pending LPI from RDbase1 to RDbase2.
    case movall(from: UInt64, to: UInt64)
    /// A GICv4 command (0x20 | n). GITS_TYPER.Virtual is 0, so these are skipped.
    case virtual(opcode: UInt8)
    /// A command number the architecture does not define.
    case unknown(opcode: UInt8)

    /// Command numbers (DW0[7:0]).
    public enum Opcode {
        public static let movi: UInt8 = 0x01
        public static let int: UInt8 = 0x03
        public static let clear: UInt8 = 0x04
        public static let sync: UInt8 = 0x05
        public static let mapd: UInt8 = 0x08
        public static let mapc: UInt8 = 0x09
        public static let mapti: UInt8 = 0x0A
        public static let mapi: UInt8 = 0x0B
        public static let inv: UInt8 = 0x0C
        public static let invall: UInt8 = 0x0D
        public static let movall: UInt8 = 0x0E
        public static let discard: UInt8 = 0x0F
    }

    /// The GICv4 command numbers: VMOVI 0x21, VMOVP 0x22, VSGI 0x23, VSYNC 0x25, VMAPP 0x29,
    /// VMAPTI 0x2A, VMAPI 0x2B, VINVALL 0x2D, INVDB 0x2E.
    static let virtualOpcodes: Set<UInt8> = [0x21, 0x22, 0x23, 0x25, 0x29, 0x2A, 0x2B, 0x2D, 0x2E]

    /// Decodes a command from its four doublewords. Every field is taken exactly where IHI 0069
    /// lays it out: DeviceID DW0[63:32]; EventID DW1[31:0]; pINTID DW1[63:32]; Size DW1[4:0];
    /// ITT_addr DW2[51:8]; V DW2[63]; ICID DW2[15:0]; RDbase DW2[51:16]; RDbase2 DW3[51:16].
    /// Reserved fields are ignored, as they are RES0 for software to write.
    public init(_ dw0: UInt64, _ dw1: UInt64, _ dw2: UInt64, _ dw3: UInt64) {
        let opcode = UInt8(truncatingIfNeeded: dw0)
        let device = DeviceID(UInt32(truncatingIfNeeded: dw0 >> 32))
        let event = EventID(UInt32(truncatingIfNeeded: dw1))
        let collection = CollectionID(UInt16(truncatingIfNeeded: dw2))
        let rdbase = (dw2 >> 16) & 0xF_FFFF_FFFF
        let valid = dw2 >> 63 != 0
        switch opcode {
        case Opcode.mapd:
            self = .mapd(device, ittAddress: GuestAddress(dw2 & 0x000F_FFFF_FFFF_FF00),
                         eventIDBits: Int(dw1 & 0x1F) + 1, valid: valid)
        case Opcode.mapc: self = .mapc(collection, rdbase: rdbase, valid: valid)
        case Opcode.mapti: self = .mapti(device, event, INTID(UInt32(truncatingIfNeeded: dw1 >> 32)), collection)
        case Opcode.mapi: self = .mapi(device, event, collection)
        case Opcode.movi: self = .movi(device, event, collection)
        case Opcode.discard: self = .discard(device, event)
        case Opcode.inv: self = .inv(device, event)
        case Opcode.invall: self = .invall(collection)
        case Opcode.int: self = .int(device, event)
        case Opcode.clear: self = .clear(device, event)
        case Opcode.sync: self = .sync(rdbase: rdbase)
        case Opcode.movall: self = .movall(from: rdbase, to: (dw3 >> 16) & 0xF_FFFF_FFFF)
        default: self = Self.virtualOpcodes.contains(opcode) ? .virtual(opcode: opcode) : .unknown(opcode: opcode)
        }
    }

    /// The command number.
    public var opcode: UInt8 {
        switch self {
        case .mapd: Opcode.mapd
        case .mapc: Opcode.mapc
        case .mapti: Opcode.mapti
        case .mapi: Opcode.mapi
        case .movi: Opcode.movi
        case .discard: Opcode.discard
        case .inv: Opcode.inv
        case .invall: Opcode.invall
        case .int: Opcode.int
        case .clear: Opcode.clear
        case .sync: Opcode.sync
        case .movall: Opcode.movall
        case .virtual(let opcode), .unknown(let opcode): opcode
        }
    }
}

/// A command error (IHI 0069, 6.2 "ITS command errors"): the code is 0x01 in bits [23:16], the
/// command in [15:8] and the kind of error in [7:0] (E_ITS_MAPD_DEVICE_OOR is 0x010801).
/// A command with an error is skipped and counted.
public struct ITSCommandError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: UInt8, Sendable, CaseIterable {
        /// DeviceID beyond GITS_TYPER.Devbits or the Device table (MAPD), or RDbase beyond the
        /// vCPUs (MOVALL).
        case deviceOrProcessorOutOfRange = 0x01
        /// ITT size beyond GITS_TYPER.IDbits (MAPD), or RDbase beyond the vCPUs (MAPC).
        case sizeOrProcessorOutOfRange = 0x02
        /// ICID beyond the Collection table.
        case collectionOutOfRange = 0x03
        /// The DeviceID is not mapped.
        case unmappedDevice = 0x04
        /// EventID beyond the device's ITT (2^(Size+1) entries).
        case eventOutOfRange = 0x05
        /// pINTID is not an LPI the VM supports.
        case physicalIDOutOfRange = 0x06
        /// No mapping for the event.
        case unmappedInterrupt = 0x07
        /// The collection is not mapped.
        case unmappedCollection = 0x09
    }

    public var opcode: UInt8
    public var kind: Kind

    public init(_ opcode: UInt8, _ kind: Kind) {
        self.opcode = opcode
        self.kind = kind
    }

    /// The E_ITS_* code. The command field is the command number, except for CLEAR, whose errors
    /// carry 0x05 (E_ITS_CLEAR_UNMAPPED_INTERRUPT is 0x010507).
    public var code: UInt32 {
        let command = opcode == ITSCommand.Opcode.clear ? 0x05 : UInt32(opcode)
        return 0x01_0000 | command << 8 | UInt32(kind.rawValue)
    }

    public var description: String { "E_ITS 0x" + String(code, radix: 16) }
}

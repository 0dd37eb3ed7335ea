/// The ITS's tables in guest memory (IHI 0069, 5.3.1 and 12.19.1 GITS_BASER<n>): the Device table
/// (flat or two-level), the Collection table and each device's ITT. Entries are 8 bytes in the
/// layout of KVM's ITS table ABI revision 0:
/// - DTE: V [63], next [62:49], ITT_addr[51:8] in [48:5], Size [4:0];
/// - CTE: V [63], RDbase [51:16], ICID [15:0];
/// - ITE: next [63:48], pINTID [47:16], ICID [15:0]; pINTID 0 means invalid.
extension ITS {
    /// Every table entry is 8 bytes (GITS_BASER.Entry_Size 7, GITS_TYPER.ITT_entry_size 7).
    public static let entrySize: UInt64 = 8

    /// BASER fields the guest cannot change: Entry_Size [52:48] = 7 and Type [58:56].
    static let deviceBaserFixed: UInt64 = 7 << 48 | 1 << 56
    static let collectionBaserFixed: UInt64 = 7 << 48 | 4 << 56
    /// BASER fields the guest writes: Size [7:0], PageSize [9:8], Shareability [11:10], PA [47:12],
    /// OuterCache [55:53], InnerCache [61:59], Indirect [62] (Device table only), Valid [63].
    static let baserWritable: UInt64 = 0xFF | 0x3 << 8 | 0x3 << 10 | 0x0000_FFFF_FFFF_F000 | 0x7 << 53 | 0x7 << 59 | 1 << 63
    static let baserIndirect: UInt64 = 1 << 62

    /// A table programmed through a GITS_BASER.
    struct TableGeometry {
        var base: GuestAddress
        var pageSize: UInt64
        /// Total bytes of the (first-level) table: (Size + 1) pages.
        var bytes: UInt64
        var indirect: Bool
    }

    /// The geometry a BASER value describes, or nil when it is not Valid. PageSize 0b11 is
    /// reserved and treated as 64K, as 0b10.
    static func geometry(of baser: UInt64) -> TableGeometry? {
        guard baser >> 63 != 0 else { return nil }
        let pageSize: UInt64 = switch (baser >> 8) & 0x3 { case 0: 4096; case 1: 16384; default: 65536 }
        var address = baser & 0x0000_FFFF_FFFF_F000
        if pageSize == 65536 {
            // 64K pages keep PA[51:48] in bits [15:12].
            address = (address & 0x0000_FFFF_FFFF_0000) | ((baser >> 12) & 0xF) << 48
        }
        address &= ~(pageSize - 1)
        return TableGeometry(base: GuestAddress(address), pageSize: pageSize, bytes: ((baser & 0xFF) + 1) * pageSize,
                             indirect: baser & baserIndirect != 0)
    }

    /// Where the DTE of `device` lives: a guest address, nil when the DeviceID is beyond the table
    /// (a command error), or a fault reading a two-level table's first-level entry (a stall).
    func deviceEntryAddress<M: GuestMemory>(_ device: DeviceID, memory: M) -> Result<GuestAddress?, GuestMemoryFault> {
        guard let table = Self.geometry(of: deviceBaser) else { return .success(nil) }
        let id = UInt64(device.rawValue)
        if !table.indirect {
            guard id < table.bytes / Self.entrySize else { return .success(nil) }
            return .success(table.base.adding(index: id, stride: Self.entrySize))
        }
        // Two levels: first-level entries of 8 bytes, each naming one page of DTEs (Valid [63],
        // PA [51:12] aligned to the page size).
        let perPage = table.pageSize / Self.entrySize
        let level1 = id / perPage
        guard level1 < table.bytes / 8, let entryAddress = table.base.adding(index: level1, stride: 8) else {
            return .success(nil)
        }
        let entry: UInt64
        do { entry = try memory.readUInt64(at: entryAddress) } catch { return .failure(error) }
        guard entry >> 63 != 0 else { return .success(nil) }
        let page = GuestAddress(entry & 0x000F_FFFF_FFFF_F000 & ~(table.pageSize - 1))
        return .success(page.adding(index: id % perPage, stride: Self.entrySize))
    }

    /// Where the CTE of `collection` lives, or nil when the ICID is beyond the Collection table.
    func collectionEntryAddress(_ collection: CollectionID) -> GuestAddress? {
        guard let table = Self.geometry(of: collectionBaser),
              UInt64(collection.rawValue) < table.bytes / Self.entrySize
        else { return nil }
        return table.base.adding(index: UInt64(collection.rawValue), stride: Self.entrySize)
    }

    /// Where the ITE of `event` lives in an ITT at `itt`.
    static func eventEntryAddress(_ event: EventID, itt: GuestAddress) -> GuestAddress? {
        itt.adding(index: UInt64(event.rawValue), stride: entrySize)
    }

    // MARK: - Entry layouts (KVM ITS table ABI revision 0)

    static func encodeDTE(_ device: DeviceMapping, next: UInt64 = 0) -> UInt64 {
        1 << 63 | (next & 0x3FFF) << 49 | (device.ittAddress.rawValue >> 8) << 5 | UInt64(device.eventIDBits - 1)
    }

    static func decodeDTE(_ entry: UInt64) -> (DeviceMapping, next: UInt64)? {
        guard entry >> 63 != 0 else { return nil }
        let itt = ((entry >> 5) & 0xFFF_FFFF_FFFF) << 8
        return (DeviceMapping(ittAddress: GuestAddress(itt), eventIDBits: UInt8(entry & 0x1F) + 1), (entry >> 49) & 0x3FFF)
    }

    static func encodeCTE(_ collection: CollectionID, vcpu: VCPUIndex) -> UInt64 {
        1 << 63 | UInt64(vcpu.rawValue) << 16 | UInt64(collection.rawValue)
    }

    static func decodeCTE(_ entry: UInt64) -> (CollectionID, rdbase: UInt64)? {
        guard entry >> 63 != 0 else { return nil }
        return (CollectionID(UInt16(truncatingIfNeeded: entry)), (entry >> 16) & 0xF_FFFF_FFFF)
    }

    static func encodeITE(_ event: EventMapping, next: UInt64 = 0) -> UInt64 {
        (next & 0xFFFF) << 48 | UInt64(event.intid.rawValue) << 16 | UInt64(event.collection.rawValue)
    }

    static func decodeITE(_ entry: UInt64) -> (EventMapping, next: UInt64)? {
        let intid = UInt32(truncatingIfNeeded: entry >> 16)
        guard intid != 0 else { return nil }
        return (EventMapping(intid: INTID(intid), collection: CollectionID(UInt16(truncatingIfNeeded: entry))), entry >> 48)
    }
}

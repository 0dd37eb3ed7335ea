/// Restoring the ITS's mappings from tables saved in KVM's ITS table ABI revision 0 (Linux
/// Documentation/virt/kvm/devices/arm-vgic-its.rst, KVM_DEV_ARM_ITS_RESTORE_TABLES; the entry
/// layouts are in ITS+SaveRestore.swift). The tables are untrusted guest memory: every entry is
/// validated against the ITS's configuration and the geometry GITS_BASER0/1 give, and the whole
/// restore is rejected, changing nothing, at the first entry that is not valid.
extension ITS {
    /// Why the saved tables were rejected. Nothing changed.
    public enum TableRestoreError: Error, Hashable, Sendable {
        /// GITS_CTLR.Enabled is 1: the tables are restored before the ITS is enabled (KVM's order:
        /// GITS_CBASER, the other registers, RESTORE_TABLES, then GITS_CTLR).
        case itsEnabled
        /// A command is still being carried out across budgets; it would act on the mappings the
        /// restore replaces.
        case commandInProgress
        /// An entry of the Collection table could not be read.
        case collectionTableFault(GuestMemoryFault)
        /// A CTE names an ICID beyond the Collection table.
        case collectionBeyondTable(CollectionID)
        /// A CTE's RDbase is not a vCPU of the VM (GITS_TYPER.PTA is 0: RDbase is a processor number).
        case collectionTargetOutOfRange(CollectionID, rdbase: UInt64)
        /// Two CTEs name the same ICID.
        case duplicateCollection(CollectionID)
        /// An entry of the Device table (or a level-1 entry of a two-level table) could not be read.
        case deviceTableFault(GuestMemoryFault)
        /// A DTE's Size gives more EventID bits than GITS_TYPER.IDbits allows.
        case deviceEventIDBitsOutOfRange(DeviceID, eventIDBits: Int)
        /// A DTE's "next" points past the Device table (or past GITS_TYPER.Devbits).
        case deviceNextBeyondTable(DeviceID, next: UInt64)
        /// An entry of a device's ITT could not be read.
        case ittFault(DeviceID, GuestMemoryFault)
        /// An ITE's "next" points past the device's ITT (2^(Size + 1) entries).
        case eventNextBeyondITT(DeviceID, EventID, next: UInt64)
        /// An ITE's pINTID is not an LPI of the VM (8192 ..< 2^INTID bits).
        case eventINTIDOutOfRange(DeviceID, EventID, INTID)
        /// An ITE's ICID is beyond the Collection table.
        case eventCollectionBeyondTable(DeviceID, EventID, CollectionID)
    }

    /// Replaces the ITS's devices, events and collections with those of the tables in guest memory,
    /// as GITS_BASER0 (Device table, flat or two-level) and GITS_BASER1 (Collection table) locate
    /// them; a table whose BASER is not Valid is empty. The Collection table is read from its first
    /// slot up to its first invalid entry. The Device table is scanned from DeviceID 0: an invalid
    /// DTE (or level-1 entry) moves on to the next slot (page), a valid one to the DeviceID its
    /// "next" names, and the first valid DTE whose "next" is 0 ends it. Each device's ITT is
    /// scanned the same way from EventID 0. IDs only increase, so no chain can loop.
    ///
    /// Each entry is checked: ICIDs within the Collection table, unique, targeting vCPUs of the VM;
    /// EventID widths within GITS_TYPER.IDbits; DeviceIDs within GITS_TYPER.Devbits and the table;
    /// pINTIDs within 8192 ..< 2^INTID bits; ITE ICIDs within the Collection table (an ITE may
    /// name a collection that is not mapped, as MAPTI allows). On the first error nothing changes.
    ///
    /// Once every entry is valid: the LPIs of the old mappings are unmapped at their
    /// redistributors, the mappings are replaced, the translation cache is invalidated, and every
    /// event in a mapped collection has its LPI mapped at that collection's redistributor (which
    /// reads its configuration byte, so GICR_PROPBASER and the LPI Configuration table are
    /// restored first). Pending state is not in these tables: it comes back from the LPI Pending
    /// tables when GICR_CTLR.EnableLPIs goes from 0 to 1, before or after this call.
    /// - Complexity: at most one read per Device table slot, level-1 entry, Collection table slot
    ///   and ITT entry of a mapped device, all bounded by the sizes the guest programmed; a read
    ///   beyond registered memory ends the restore with an error.
    /// - Context: the ITS's thread, with the VM paused.
    public mutating func restoreTables<M: GuestMemory, R: RedistributorOperations>(
        memory: M, redistributors: inout R
    ) throws(TableRestoreError) {
        guard !enabled else { throw .itsEnabled }
        guard operation == nil else { throw .commandInProgress }
        let restoredCollections = try readCollectionTable(memory: memory)
        let restoredDevices = try readDeviceTable(memory: memory)
        var restoredEvents: [(key: UInt64, ite: EventMapping)] = []
        for (device, mapping) in restoredDevices {
            try readInterruptTranslationTable(of: device, mapping, memory: memory, into: &restoredEvents)
        }

        // Every entry is valid: replace the mappings.
        var oldLPIs: [(INTID, VCPUIndex)] = []
        events.forEach { _, ite in
            if let vcpu = collections.load(UInt64(ite.collection.rawValue)) { oldLPIs.append((ite.intid, vcpu)) }
            return true
        }
        for (intid, vcpu) in oldLPIs { redistributors.unmapLPI(intid, on: vcpu) }
        devices = SparseIndex()
        for (device, mapping) in restoredDevices { devices.store(mapping, at: UInt64(device.rawValue)) }
        collections = SparseIndex()
        for (collection, vcpu) in restoredCollections { collections.store(vcpu, at: UInt64(collection.rawValue)) }
        events = SparseIndex()
        for (key, ite) in restoredEvents { events.store(ite, at: key) }
        invalidateTranslations(.all)
        for (_, ite) in restoredEvents {
            if let vcpu = collections.load(UInt64(ite.collection.rawValue)) { redistributors.mapLPI(ite.intid, on: vcpu) }
        }
    }

    /// The CTEs from the first slot up to the first invalid one.
    func readCollectionTable<M: GuestMemory>(memory: M) throws(TableRestoreError) -> [(CollectionID, VCPUIndex)] {
        guard let table = Self.geometry(of: collectionBaser) else { return [] }
        var seen = SparseBitSet()
        var result: [(CollectionID, VCPUIndex)] = []
        for slot in 0 ..< table.bytes / Self.entrySize {
            let entry = try Self.readEntry(table.base, slot, memory: memory, TableRestoreError.collectionTableFault)
            guard let (collection, rdbase) = Self.decodeCTE(entry) else { break }
            guard collectionEntryAddress(collection) != nil else { throw .collectionBeyondTable(collection) }
            guard rdbase < UInt64(configuration.vcpuCount) else {
                throw .collectionTargetOutOfRange(collection, rdbase: rdbase)
            }
            guard seen.insert(UInt64(collection.rawValue)) else { throw .duplicateCollection(collection) }
            result.append((collection, VCPUIndex(UInt16(truncatingIfNeeded: rdbase))))
        }
        return result
    }

    /// The valid DTEs, following "next" offsets, in DeviceID order.
    func readDeviceTable<M: GuestMemory>(memory: M) throws(TableRestoreError) -> [(DeviceID, DeviceMapping)] {
        guard let table = Self.geometry(of: deviceBaser) else { return [] }
        let limit: UInt64 = 1 << UInt64(configuration.deviceIDBits)
        // A two-level table: level-1 entries of 8 bytes, each naming one page of DTEs (Valid [63],
        // PA [51:12] aligned to the page size), as ``deviceEntryAddress(_:memory:)`` reads them.
        let perPage = table.indirect ? table.pageSize / Self.entrySize : table.bytes / Self.entrySize
        let pages = table.indirect ? table.bytes / Self.entrySize : 1
        let slots = min(pages * perPage, limit)
        var result: [(DeviceID, DeviceMapping)] = []
        var page: (index: UInt64, base: GuestAddress?)?
        var id: UInt64 = 0
        while id < slots {
            let level1 = id / perPage
            if table.indirect, page?.index != level1 {
                let entry = try Self.readEntry(table.base, level1, memory: memory, TableRestoreError.deviceTableFault)
                page = (level1, entry >> 63 != 0 ? GuestAddress(entry & 0x000F_FFFF_FFFF_F000 & ~(table.pageSize - 1)) : nil)
            }
            let base = table.indirect ? page?.base : table.base
            guard let base else {
                id = (level1 + 1) * perPage
                continue
            }
            let entry = try Self.readEntry(base, id % perPage, memory: memory, TableRestoreError.deviceTableFault)
            guard let (mapping, next) = Self.decodeDTE(entry) else {
                id += 1
                continue
            }
            let device = DeviceID(UInt32(truncatingIfNeeded: id))
            guard Int(mapping.eventIDBits) <= configuration.eventIDBits else {
                throw .deviceEventIDBitsOutOfRange(device, eventIDBits: Int(mapping.eventIDBits))
            }
            result.append((device, mapping))
            if next == 0 { break }
            guard next < slots - id else { throw .deviceNextBeyondTable(device, next: next) }
            id += next
        }
        return result
    }

    /// The valid ITEs of `device`'s ITT, following "next" offsets, appended in EventID order.
    func readInterruptTranslationTable<M: GuestMemory>(
        of device: DeviceID, _ mapping: DeviceMapping, memory: M, into result: inout [(key: UInt64, ite: EventMapping)]
    ) throws(TableRestoreError) {
        let entries: UInt64 = 1 << UInt64(mapping.eventIDBits)
        let intids: UInt64 = 1 << UInt64(configuration.intidBits)
        var event: UInt64 = 0
        while event < entries {
            let entry = try Self.readEntry(mapping.ittAddress, event, memory: memory) { .ittFault(device, $0) }
            guard let (ite, next) = Self.decodeITE(entry) else {
                event += 1
                continue
            }
            let id = EventID(UInt32(truncatingIfNeeded: event))
            guard ite.intid.isLPI, UInt64(ite.intid.rawValue) < intids else {
                throw .eventINTIDOutOfRange(device, id, ite.intid)
            }
            guard collectionEntryAddress(ite.collection) != nil else {
                throw .eventCollectionBeyondTable(device, id, ite.collection)
            }
            result.append((eventKey(device, id), ite))
            if next == 0 { break }
            guard next < entries - event else { throw .eventNextBeyondITT(device, id, next: next) }
            event += next
        }
    }

    /// Reads the 8-byte entry `index` of the table at `base`, turning a fault into `makeError`'s error.
    static func readEntry<M: GuestMemory>(_ base: GuestAddress, _ index: UInt64, memory: M,
                                          _ makeError: (GuestMemoryFault) -> TableRestoreError) throws(TableRestoreError) -> UInt64
    {
        guard let address = base.adding(index: index, stride: entrySize) else {
            throw makeError(GuestMemoryFault(.addressOverflow, address: base, length: Int(entrySize)))
        }
        do { return try memory.readUInt64(at: address) } catch { throw makeError(error) }
    }
}

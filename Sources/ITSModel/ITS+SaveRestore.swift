/// Saving the ITS's tables into guest memory for migration, in KVM's ITS table ABI revision 0
/// (Linux Documentation/virt/kvm/devices/arm-vgic-its.rst: KVM_DEV_ARM_ITS_SAVE_TABLES, and
/// KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES for the redistributors). The tables are the ones the guest
/// programmed through GITS_BASER0/1 and MAPD (IHI 0069, 5.3.1 and 12.19.1); each entry is 8 bytes:
/// - DTE: V [63], next [62:49], ITT_addr[51:8] in [48:5], Size [4:0];
/// - CTE: V [63], RDbase (the vCPU) [51:16], ICID [15:0];
/// - ITE: next [63:48], pINTID [47:16], ICID [15:0]; pINTID 0 marks an invalid entry.
///
/// "next" is the distance in IDs to the next valid entry of the same table (0 for the last), so
/// that a restore can skip the empty stretches of a sparse table.
extension ITS {
    /// The largest "next" a DTE can hold (14 bits). A longer gap is saved as this value, and the
    /// restore scans on from there.
    public static let maximumDeviceOffset: UInt64 = (1 << 14) - 1
    /// The largest "next" an ITE can hold (16 bits).
    public static let maximumEventOffset: UInt64 = (1 << 16) - 1

    /// Why the tables could not be saved. Entries written before the error are correct entries
    /// of the state being saved, but the tables as a whole are not a valid save.
    public enum TableSaveError: Error, Hashable, Sendable {
        /// A command is still being carried out across budgets (MAPD dropping a device's events,
        /// MAPC moving a collection's LPIs); its state has no place in the tables. Run the queue
        /// until the command completes, then save.
        case commandInProgress
        /// A mapped device has no DTE slot in the Device table as GITS_BASER0 now describes it
        /// (the guest reprogrammed the table after MAPD, or invalidated a level-1 entry).
        case deviceBeyondTable(DeviceID)
        /// A mapped collection has no slot in the Collection table as GITS_BASER1 now describes it.
        case collectionBeyondTable(CollectionID)
        /// A table entry could not be written (or a level-1 entry of the Device table read).
        case fault(GuestMemoryFault)
        /// A redistributor's LPI Pending table could not be written.
        case pendingTableFault(VCPUIndex, GuestMemoryFault)
    }

    /// Writes the Device table, every mapped device's ITT and the Collection table into guest
    /// memory with their "next" offsets: each mapped device's DTE, each mapped event's ITE, and
    /// every mapped collection's CTE. The Collection table is written compactly from its first
    /// slot in ICID order and ended by an invalid entry when there is room for one, because a
    /// restore stops at the first invalid CTE. A table whose GITS_BASER is not Valid is not
    /// written (it holds no entries). Stops at the first error.
    ///
    /// The ITS need not be disabled: the state saved is the state after the last completed command.
    /// Commands still queued stay in the queue for the restored ITS to carry out.
    /// - Complexity: O(devices + events + collections) writes, plus a level-1 read per device for
    ///   a two-level Device table.
    /// - Context: the ITS's thread, with the VM paused (nothing else writes the tables meanwhile).
    public func saveTables<M: GuestMemory>(memory: M) throws(TableSaveError) {
        guard operation == nil else { throw .commandInProgress }
        try saveDeviceTable(memory: memory)
        try saveCollectionTable(memory: memory)
    }

    /// Every mapped device's DTE, with the distance to the next mapped DeviceID, and its ITT.
    func saveDeviceTable<M: GuestMemory>(memory: M) throws(TableSaveError) {
        let mapped = devices.entries
        for (index, (key, mapping)) in mapped.enumerated() {
            let device = DeviceID(UInt32(truncatingIfNeeded: key))
            let next = index + 1 < mapped.count ? min(mapped[index + 1].key - key, Self.maximumDeviceOffset) : 0
            let address: GuestAddress
            switch deviceEntryAddress(device, memory: memory) {
            case .failure(let fault): throw .fault(fault)
            case .success(nil): throw .deviceBeyondTable(device)
            case .success(let found?): address = found
            }
            do { try memory.writeUInt64(Self.encodeDTE(mapping, next: next), at: address) } catch { throw .fault(error) }
            try saveInterruptTranslationTable(of: device, mapping, memory: memory)
        }
    }

    /// The ITEs of `device`'s mapped events, each with the distance to the next mapped EventID.
    func saveInterruptTranslationTable<M: GuestMemory>(of device: DeviceID, _ mapping: DeviceMapping,
                                                       memory: M) throws(TableSaveError)
    {
        let keys = eventKeys(of: device)
        var mapped: [(event: UInt64, ite: EventMapping)] = []
        events.forEach(in: keys) { key, ite in
            mapped.append((key - keys.lowerBound, ite))
            return true
        }
        for (index, (event, ite)) in mapped.enumerated() {
            let next = index + 1 < mapped.count ? min(mapped[index + 1].event - event, Self.maximumEventOffset) : 0
            guard let address = mapping.ittAddress.adding(index: event, stride: Self.entrySize) else {
                throw .fault(GuestMemoryFault(.addressOverflow, address: mapping.ittAddress, length: Int(Self.entrySize)))
            }
            do { try memory.writeUInt64(Self.encodeITE(ite, next: next), at: address) } catch { throw .fault(error) }
        }
    }

    /// The mapped collections from the table's first slot on, then an invalid entry if one fits.
    func saveCollectionTable<M: GuestMemory>(memory: M) throws(TableSaveError) {
        let mapped = collections.entries
        guard let table = Self.geometry(of: collectionBaser) else {
            if let first = mapped.first { throw .collectionBeyondTable(CollectionID(UInt16(truncatingIfNeeded: first.key))) }
            return
        }
        for (slot, (key, vcpu)) in mapped.enumerated() {
            let collection = CollectionID(UInt16(truncatingIfNeeded: key))
            guard collectionEntryAddress(collection) != nil,
                  let address = table.base.adding(index: UInt64(slot), stride: Self.entrySize)
            else { throw .collectionBeyondTable(collection) }
            do { try memory.writeUInt64(Self.encodeCTE(collection, vcpu: vcpu), at: address) } catch { throw .fault(error) }
        }
        let end = UInt64(mapped.count)
        if end < table.bytes / Self.entrySize, let address = table.base.adding(index: end, stride: Self.entrySize) {
            do { try memory.writeUInt64(0, at: address) } catch { throw .fault(error) }
        }
    }
}

extension VirtualGIC {
    /// Saves the ITS's tables (``ITS/saveTables(memory:)``) and then the LPI Pending table of every
    /// redistributor with EnableLPIs set (``Redistributor/savePendingTable(to:)``): what
    /// KVM_DEV_ARM_ITS_SAVE_TABLES and KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES do together. A
    /// redistributor with EnableLPIs clear has nothing pending and its table stays the guest's.
    /// Throws the first error.
    /// - Context: the VM's loop thread with the VM paused.
    public func saveTables() throws(ITS.TableSaveError) {
        try its.saveTables(memory: memory)
        for redistributor in redistributors.redistributors where redistributor.lpisEnabled {
            if let fault = redistributor.savePendingTable(to: memory) {
                throw .pendingTableFault(redistributor.vcpu, fault)
            }
        }
    }

    /// Restores the ITS's mappings from the tables in guest memory
    /// (``ITS/restoreTables(memory:redistributors:)``) and maps their LPIs on the redistributors.
    /// - Context: the VM's loop thread with the VM paused.
    public mutating func restoreTables() throws(ITS.TableRestoreError) {
        let memory = self.memory
        try its.restoreTables(memory: memory, redistributors: &redistributors)
    }
}

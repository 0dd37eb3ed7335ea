/// Restoring a ``VGICSnapshot``. A snapshot comes from outside the process (a migration stream, a
/// re-attaching client), so it is checked before anything is built from it: every identifier
/// within the configured widths, every list sorted without duplicates, every vCPU number a vCPU of
/// the VM, every register holding only the bits the model keeps, and the parts consistent with one
/// another (events of mapped devices, cached translations equal to the mappings, pending LPIs with
/// LPI entries). A snapshot that fails any check is rejected whole.
///
/// What is not checked: how many mappings each redistributor counts for an LPI against the ITS's
/// events. The server keeps the ITS and the redistributors on different threads, so the two
/// counts may legitimately be a queue apart; nothing unsafe follows from a wrong count.
extension ITS {
    /// An ITS with the state of `state`, or the first inconsistency found.
    public init(restoring state: VGICSnapshot.ITSState) throws(VGICSnapshot.RestoreError) {
        let configuration = state.configuration
        guard (1 ... 32).contains(configuration.deviceIDBits), (1 ... 32).contains(configuration.eventIDBits),
              (14 ... 32).contains(configuration.intidBits), (1 ... 65536).contains(configuration.vcpuCount),
              configuration.translationCacheLimit >= 0
        else { throw .invalidConfiguration }
        self.init(configuration)
        try restoreRegisters(state)
        try restoreDevicesAndCollections(state)
        try restoreOperation(state.operation)
        try restoreEvents(state.events)
        try restoreTranslations(state.translations)
        guard state.counters.commandsByNumber.count == Counters.commandNumbers else { throw .invalidRegister("counters.commandsByNumber") }
        counters = state.counters
    }

    func fits(_ device: DeviceID) -> Bool { UInt64(device.rawValue) >> UInt64(configuration.deviceIDBits) == 0 }
    func fits(_ event: EventID) -> Bool { UInt64(event.rawValue) >> UInt64(configuration.eventIDBits) == 0 }
    func fits(_ vcpu: VCPUIndex) -> Bool { Int(vcpu.rawValue) < configuration.vcpuCount }
    func fitsEventIDBits(_ bits: UInt8) -> Bool { (1 ... configuration.eventIDBits).contains(Int(bits)) }

    mutating func restoreRegisters(_ state: VGICSnapshot.ITSState) throws(VGICSnapshot.RestoreError) {
        guard state.cbaser & ~Self.cbaserWritable == 0 else { throw .invalidRegister("GITS_CBASER") }
        guard state.deviceBaser == (state.deviceBaser & (Self.baserWritable | Self.baserIndirect)) | Self.deviceBaserFixed else {
            throw .invalidRegister("GITS_BASER0")
        }
        guard state.collectionBaser == (state.collectionBaser & Self.baserWritable) | Self.collectionBaserFixed else {
            throw .invalidRegister("GITS_BASER1")
        }
        cbaser = state.cbaser
        // CWRITER and CREADR are command offsets inside the queue, 0 while there is none.
        let size = queueBytes ?? 0
        for (name, offset) in [("GITS_CWRITER", state.cwriter), ("GITS_CREADR", state.creadr)] {
            guard offset % Self.commandSize == 0, offset == 0 || offset < size else { throw .invalidRegister(name) }
        }
        enabled = state.enabled
        cwriter = state.cwriter
        creadr = state.creadr
        stalled = state.stalled
        lastStallFault = state.lastStallFault
        deviceBaser = state.deviceBaser
        collectionBaser = state.collectionBaser
    }

    mutating func restoreDevicesAndCollections(_ state: VGICSnapshot.ITSState) throws(VGICSnapshot.RestoreError) {
        var previous: UInt64?
        for device in state.devices {
            let key = UInt64(device.id.rawValue)
            try VGICSnapshot.requireAscending(&previous, key, "devices")
            guard fits(device.id), fitsEventIDBits(device.mapping.eventIDBits) else { throw .deviceOutOfRange(device.id) }
            devices.store(device.mapping, at: key)
        }
        previous = nil
        for collection in state.collections {
            let key = UInt64(collection.id.rawValue)
            try VGICSnapshot.requireAscending(&previous, key, "collections")
            guard fits(collection.vcpu) else { throw .collectionOutOfRange(collection.id) }
            collections.store(collection.vcpu, at: key)
        }
    }

    /// The command in progress, after the devices and collections it is checked against.
    mutating func restoreOperation(_ state: VGICSnapshot.Operation?) throws(VGICSnapshot.RestoreError) {
        switch state {
        case nil:
            operation = nil
        case let .unmapDevice(device, itt, nextEvent, then):
            // MAPD erased the device before dropping its events, and maps `then` only at the end.
            guard fits(device), fits(nextEvent), devices.load(UInt64(device.rawValue)) == nil,
                  then.map({ fitsEventIDBits($0.eventIDBits) }) ?? true
            else { throw .inconsistentOperation }
            operation = .unmapDevice(device, itt: itt, next: eventKey(device, nextEvent), then: then)
        case let .retargetCollection(collection, from, to, nextDevice, nextEvent):
            // MAPC mapped the collection to `to` before moving its LPIs, and only when it changed.
            guard from != to, from.map(fits) ?? true, to.map(fits) ?? true,
                  collections.load(UInt64(collection.rawValue)) == to, fits(nextDevice), fits(nextEvent)
            else { throw .inconsistentOperation }
            operation = .retargetCollection(collection, from: from, to: to, next: eventKey(nextDevice, nextEvent))
        case .synchronize(let vcpu):
            guard fits(vcpu) else { throw .inconsistentOperation }
            operation = .synchronize(vcpu)
        }
    }

    /// Events belong to a mapped device and lie in its ITT, or to the device a MAPD in progress is
    /// still unmapping, at or after where it stands.
    mutating func restoreEvents(_ state: [VGICSnapshot.Event]) throws(VGICSnapshot.RestoreError) {
        let intids: UInt64 = 1 << UInt64(configuration.intidBits)
        var previous: UInt64?
        for event in state {
            try VGICSnapshot.requireAscending(&previous, UInt64(event.device.rawValue) << 32 | UInt64(event.event.rawValue), "events")
            let outOfRange = VGICSnapshot.RestoreError.eventOutOfRange(event.device, event.event)
            guard fits(event.device), fits(event.event), event.mapping.intid.isLPI,
                  UInt64(event.mapping.intid.rawValue) < intids
            else { throw outOfRange }
            let key = eventKey(event.device, event.event)
            if let device = devices.load(UInt64(event.device.rawValue)) {
                guard UInt64(event.event.rawValue) >> UInt64(device.eventIDBits) == 0 else { throw outOfRange }
            } else {
                guard case let .unmapDevice(unmapping, _, next, _) = operation, unmapping == event.device, key >= next else {
                    throw outOfRange
                }
            }
            events.store(event.mapping, at: key)
        }
    }

    /// Cached translations, after the mappings: each must be what a walk of the mappings gives.
    mutating func restoreTranslations(_ state: [VGICSnapshot.CachedTranslation]) throws(VGICSnapshot.RestoreError) {
        guard state.count <= configuration.translationCacheLimit else { throw .translationCacheOverLimit }
        var previous: UInt64?
        for entry in state {
            try VGICSnapshot.requireAscending(&previous, UInt64(entry.device.rawValue) << 32 | UInt64(entry.event.rawValue), "translations")
            guard fits(entry.device), fits(entry.event), walk(entry.device, entry.event) == .success(entry.translation) else {
                throw .staleTranslation(entry.device, entry.event)
            }
            translationCache.store(entry.translation, at: eventKey(entry.device, entry.event))
        }
    }
}

extension VGICSnapshot {
    /// Requires `key` to come strictly after `previous`, then makes it the previous key.
    static func requireAscending(_ previous: inout UInt64?, _ key: UInt64, _ list: String) throws(RestoreError) {
        if let previous, previous >= key { throw .notStrictlyAscending(list) }
        previous = key
    }
}

extension Redistributor {
    /// A redistributor with the state of `state`, or the first inconsistency found. The
    /// deliverable sets are rebuilt from the pending LPIs; no sink is told (``VirtualGIC`` does
    /// that once the whole VM is restored).
    public init(restoring state: VGICSnapshot.RedistributorState) throws(VGICSnapshot.RestoreError) {
        let vcpu = state.configuration.vcpu
        guard (14 ... 32).contains(state.configuration.intidBits) else { throw .redistributorConfiguration(vcpu) }
        self.init(state.configuration)
        guard state.propbaser & ~Self.propbaserMask == 0 else { throw .invalidRedistributorRegister(vcpu, "GICR_PROPBASER") }
        guard state.pendbaser & ~Self.pendbaserMask == 0 else { throw .invalidRedistributorRegister(vcpu, "GICR_PENDBASER") }
        guard state.lpisEnabled || (state.pending.isEmpty && state.pendingTableLoadCursor == nil) else {
            throw .pendingWhileLPIsDisabled(vcpu)
        }
        lpisEnabled = state.lpisEnabled
        propbaser = state.propbaser
        pendbaser = state.pendbaser
        pendingTableZero = state.pendingTableZero

        let limit: UInt64 = 1 << UInt64(state.configuration.intidBits)
        var previous: UInt64?
        for lpi in state.lpis {
            let key = UInt64(lpi.intid.rawValue)
            try VGICSnapshot.requireAscending(&previous, key, "redistributors[\(vcpu)].lpis")
            guard lpi.intid.isLPI, key < limit else { throw .lpiOutOfRange(vcpu, lpi.intid) }
            lpis.store(lpi.record, at: key)
        }
        previous = nil
        for intid in state.pending {
            let key = UInt64(intid.rawValue)
            try VGICSnapshot.requireAscending(&previous, key, "redistributors[\(vcpu)].pending")
            guard let (record, _) = lpis.mark(key) else { throw .pendingWithoutRecord(vcpu, intid) }
            if record.config.isEnabled {
                let level = record.config.priority.level
                deliverable[level].insert(key)
                deliverableLevels |= 1 << UInt64(level)
                deliverableCount += 1
            }
        }
        for lpi in state.lpis where lpi.record.mappings == 0 && !lpis.isMarked(UInt64(lpi.intid.rawValue)) {
            throw .directLPINotPending(vcpu, lpi.intid)
        }
        invalidateAllCursor = state.invalidateAllCursor
        pendingTableLoadCursor = state.pendingTableLoadCursor
        counters = state.counters
    }
}

extension VirtualGIC {
    /// A VM whose interrupt state is `snapshot`'s, over `memory` (the VM's RAM, restored already)
    /// and reporting to `sink`, which is told of every vCPU that has a deliverable LPI.
    /// - Context: the thread that will own the VM.
    public init(restoring snapshot: VGICSnapshot, memory: Memory, sink: Sink) throws(VGICSnapshot.RestoreError) {
        let (its, restored) = try snapshot.restoredParts()
        self.init(its.configuration, memory: memory, sink: sink)
        self.its = its
        redistributors.redistributors = restored
        notifyDeliverableVCPUs()
    }

    /// Replaces the VM's interrupt state with `snapshot`'s, which must have been taken from a VM of
    /// the same configuration. The sink is then told of every vCPU that has a deliverable LPI. On
    /// an error nothing changes.
    /// - Context: the VM's loop thread, with the VM paused.
    public mutating func restore(_ snapshot: VGICSnapshot) throws(VGICSnapshot.RestoreError) {
        guard snapshot.version == VGICSnapshot.version else { throw .unsupportedVersion(snapshot.version) }
        guard snapshot.its.configuration == its.configuration,
              snapshot.redistributors.map(\.configuration) == redistributors.redistributors.map(\.configuration)
        else { throw .configurationMismatch }
        let (its, restored) = try snapshot.restoredParts()
        self.its = its
        redistributors.redistributors = restored
        notifyDeliverableVCPUs()
    }

    mutating func notifyDeliverableVCPUs() {
        for redistributor in redistributors.redistributors where redistributor.deliverableCount > 0 {
            redistributors.sink.lpiBecameDeliverable(on: redistributor.vcpu)
        }
    }
}

extension VGICSnapshot {
    /// The ITS and the redistributors (in vCPU order) this snapshot describes, each checked and
    /// checked to fit together: what a restore installs, whichever threads then own the parts.
    public func restoredParts() throws(RestoreError) -> (ITS, [Redistributor]) {
        guard version == VGICSnapshot.version else { throw .unsupportedVersion(version) }
        let its = try ITS(restoring: self.its)
        let count = redistributors.count
        guard count == its.configuration.vcpuCount else { throw .redistributorCount(count) }
        var restored: [Redistributor] = []
        restored.reserveCapacity(count)
        for (index, state) in redistributors.enumerated() {
            let configuration = state.configuration
            guard Int(configuration.vcpu.rawValue) == index, configuration.isLast == (index == count - 1),
                  configuration.intidBits == its.configuration.intidBits
            else { throw .redistributorConfiguration(VCPUIndex(UInt16(truncatingIfNeeded: index))) }
            restored.append(try Redistributor(restoring: state))
        }
        return (its, restored)
    }
}

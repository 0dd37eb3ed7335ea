/// Writing the sections of a snapshot image, field by field in declaration order (see
/// ``SnapshotImage``); SnapshotImage+Decoding.swift reads them back in the same order.
struct SnapshotImageWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int) {
        bytes.reserveCapacity(capacity)
    }

    mutating func integer<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func int(_ value: Int) { integer(Int64(value)) }
    mutating func bool(_ value: Bool) { integer(UInt8(value ? 1 : 0)) }

    /// A tag byte 0 when `value` is nil; otherwise 1 and the value.
    mutating func optional<T>(_ value: T?, _ append: (inout SnapshotImageWriter, T) -> Void) {
        bool(value != nil)
        if let value { append(&self, value) }
    }

    mutating func optional<T: FixedWidthInteger>(_ value: T?) {
        optional(value) { $0.integer($1) }
    }

    /// The count as a u64, then each element.
    mutating func list<C: Collection>(_ elements: C, _ append: (inout SnapshotImageWriter, C.Element) -> Void) {
        integer(UInt64(elements.count))
        for element in elements { append(&self, element) }
    }

    /// Overwrites a u64 written earlier at `offset`.
    mutating func patch(_ value: UInt64, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            for index in 0 ..< raw.count { bytes[offset + index] = raw[index] }
        }
    }
}

extension SnapshotImageWriter {
    mutating func append(_ state: VGICSnapshot.ITSState) {
        append(state.configuration)
        bool(state.enabled)
        integer(state.cbaser)
        integer(state.cwriter)
        integer(state.creadr)
        bool(state.stalled)
        optional(state.lastStallFault) { $0.append($1) }
        integer(state.deviceBaser)
        integer(state.collectionBaser)
        list(state.devices) { writer, device in
            writer.integer(device.id.rawValue)
            writer.append(device.mapping)
        }
        list(state.events) { writer, event in
            writer.integer(event.device.rawValue)
            writer.integer(event.event.rawValue)
            writer.integer(event.mapping.intid.rawValue)
            writer.integer(event.mapping.collection.rawValue)
        }
        list(state.collections) { writer, collection in
            writer.integer(collection.id.rawValue)
            writer.integer(collection.vcpu.rawValue)
        }
        list(state.translations) { writer, entry in
            writer.integer(entry.device.rawValue)
            writer.integer(entry.event.rawValue)
            writer.integer(entry.translation.intid.rawValue)
            writer.integer(entry.translation.vcpu.rawValue)
        }
        optional(state.operation) { $0.append($1) }
        append(state.counters)
    }

    mutating func append(_ configuration: ITS.Configuration) {
        int(configuration.deviceIDBits)
        int(configuration.eventIDBits)
        int(configuration.intidBits)
        int(configuration.vcpuCount)
        int(configuration.translationCacheLimit)
        int(configuration.maximumDevices)
        int(configuration.maximumEvents)
    }

    mutating func append(_ fault: GuestMemoryFault) {
        switch fault.kind {
        case .unmapped: integer(0 as UInt8)
        case .addressOverflow: integer(1 as UInt8)
        }
        integer(fault.address.rawValue)
        int(fault.length)
    }

    mutating func append(_ mapping: ITS.DeviceMapping) {
        integer(mapping.ittAddress.rawValue)
        integer(mapping.eventIDBits)
    }

    mutating func append(_ operation: VGICSnapshot.Operation) {
        switch operation {
        case let .unmapDevice(device, itt, nextEvent, then):
            integer(0 as UInt8)
            integer(device.rawValue)
            integer(itt.rawValue)
            integer(nextEvent.rawValue)
            optional(then) { $0.append($1) }
        case let .retargetCollection(collection, from, to, nextDevice, nextEvent):
            integer(1 as UInt8)
            integer(collection.rawValue)
            optional(from?.rawValue)
            optional(to?.rawValue)
            integer(nextDevice.rawValue)
            integer(nextEvent.rawValue)
        case .synchronize(let vcpu):
            integer(2 as UInt8)
            integer(vcpu.rawValue)
        }
    }

    mutating func append(_ counters: ITS.Counters) {
        integer(counters.commandsProcessed)
        list(counters.commandErrors.sorted { $0.key < $1.key }) { writer, error in
            writer.integer(error.key)
            writer.integer(error.value)
        }
        integer(counters.unknownCommands)
        integer(counters.virtualCommands)
        integer(counters.stalls)
        integer(counters.cwriterIgnored)
        integer(counters.translationHits)
        integer(counters.translationMisses)
        integer(counters.translationsBlocked)
        integer(counters.translaterWritesIgnored)
        integer(counters.mmioIgnored)
        integer(counters.cacheInvalidations)
        integer(counters.mappingLimitReached)
        precondition(counters.commandsByNumber.count == ITS.Counters.commandNumbers, "16 command counts")
        for count in counters.commandsByNumber { integer(count) }
    }

    mutating func append(_ state: VGICSnapshot.RedistributorState) {
        integer(state.configuration.vcpu.rawValue)
        integer(state.configuration.affinity)
        bool(state.configuration.isLast)
        int(state.configuration.intidBits)
        int(state.configuration.maximumLPIs)
        bool(state.lpisEnabled)
        integer(state.propbaser)
        integer(state.pendbaser)
        bool(state.pendingTableZero)
        list(state.lpis) { writer, lpi in
            writer.integer(lpi.intid.rawValue)
            writer.integer(lpi.record.config.rawValue)
            writer.integer(lpi.record.mappings)
            writer.integer(lpi.record.epoch)
        }
        list(state.pending) { $0.integer($1.rawValue) }
        optional(state.invalidateAllCursor)
        optional(state.pendingTableLoadCursor)
        append(state.counters)
    }

    mutating func append(_ counters: Redistributor.Counters) {
        integer(counters.lpisMadePending)
        integer(counters.lpisCoalesced)
        integer(counters.lpisAcknowledged)
        integer(counters.lpisDroppedDisabled)
        integer(counters.lpisDroppedOnDisable)
        integer(counters.intidsOutOfRange)
        integer(counters.lpisNotMapped)
        integer(counters.staleMoves)
        integer(counters.lpiLimitReached)
        integer(counters.configReadFaults)
        integer(counters.pendingTableFaults)
        integer(counters.mmioIgnored)
    }
}

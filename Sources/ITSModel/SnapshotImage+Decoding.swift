/// Reading the sections of a snapshot image, in the order SnapshotImage+Encoding.swift writes them.
/// The image is untrusted: every read is bounds-checked and fails with the offset where it
/// started, every count is checked against the bytes left before anything is allocated, and
/// every tag must be one the writer produces, so that an image decodes only if it is the image of
/// the snapshot it decodes to. Fields are named in errors as paths in the snapshot.
struct SnapshotImageReader {
    let bytes: UnsafeRawBufferPointer
    /// Offset of the next unread byte.
    private(set) var offset: Int

    init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    mutating func load<T: FixedWidthInteger>(_: T.Type) throws(SnapshotImageError) -> T {
        guard MemoryLayout<T>.size <= remaining else { throw SnapshotImageError(offset: offset, reason: .truncated) }
        // SAFETY: the guard checked that the field lies inside `bytes`; loadUnaligned has no alignment needs.
        let value = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return value
    }

    /// A byte that must be below `cases`.
    mutating func tag(_ field: @autoclosure () -> String, cases: UInt8) throws(SnapshotImageError) -> UInt8 {
        let start = offset
        let tag = try load(UInt8.self)
        guard tag < cases else { throw SnapshotImageError(offset: start, reason: .badValue(field())) }
        return tag
    }

    mutating func bool(_ field: @autoclosure () -> String) throws(SnapshotImageError) -> Bool {
        try tag(field(), cases: 2) == 1
    }

    /// An i64 that must fit `Int`.
    mutating func int(_ field: @autoclosure () -> String) throws(SnapshotImageError) -> Int {
        let start = offset
        guard let value = Int(exactly: try load(Int64.self)) else {
            throw SnapshotImageError(offset: start, reason: .badValue(field()))
        }
        return value
    }

    /// nil for a tag byte 0; for 1, the value `read` reads.
    mutating func optional<T>(_ field: @autoclosure () -> String,
                              _ read: (inout SnapshotImageReader) throws(SnapshotImageError) -> T) throws(SnapshotImageError) -> T?
    {
        try bool(field()) ? try read(&self) : nil
    }

    mutating func optional<T: FixedWidthInteger>(_ field: @autoclosure () -> String, _: T.Type) throws(SnapshotImageError) -> T? {
        try optional(field()) { (reader) throws(SnapshotImageError) in try reader.load(T.self) }
    }

    /// A list's count, which must leave room for that many elements of at least
    /// `minimumElementSize` bytes in what is left of the image.
    mutating func count(_ field: @autoclosure () -> String, minimumElementSize: Int) throws(SnapshotImageError) -> Int {
        let start = offset
        let count = try load(UInt64.self)
        guard count <= UInt64(remaining / minimumElementSize) else {
            throw SnapshotImageError(offset: start, reason: .countTooLarge(field()))
        }
        return Int(count)
    }

    /// A list of `count(_:minimumElementSize:)` elements, each read by `read`.
    mutating func list<T>(_ field: @autoclosure () -> String, minimumElementSize: Int,
                          _ read: (inout SnapshotImageReader) throws(SnapshotImageError) -> T) throws(SnapshotImageError) -> [T]
    {
        let count = try count(field(), minimumElementSize: minimumElementSize)
        var elements: [T] = []
        elements.reserveCapacity(count)
        for _ in 0 ..< count { elements.append(try read(&self)) }
        return elements
    }

    /// Fails unless every byte has been read.
    func finish() throws(SnapshotImageError) {
        guard remaining == 0 else { throw SnapshotImageError(offset: offset, reason: .trailingBytes) }
    }
}

extension SnapshotImageReader {
    mutating func itsState() throws(SnapshotImageError) -> VGICSnapshot.ITSState {
        let configuration = try itsConfiguration()
        let enabled = try bool("its.enabled")
        let cbaser = try load(UInt64.self)
        let cwriter = try load(UInt64.self)
        let creadr = try load(UInt64.self)
        let stalled = try bool("its.stalled")
        let fault = try optional("its.lastStallFault") { (reader) throws(SnapshotImageError) in try reader.fault() }
        let deviceBaser = try load(UInt64.self)
        let collectionBaser = try load(UInt64.self)
        let devices = try list("its.devices", minimumElementSize: SnapshotImage.deviceSize) { (reader) throws(SnapshotImageError) in
            VGICSnapshot.Device(DeviceID(try reader.load(UInt32.self)), try reader.deviceMapping())
        }
        let events = try list("its.events", minimumElementSize: SnapshotImage.eventSize) { (reader) throws(SnapshotImageError) in
            VGICSnapshot.Event(DeviceID(try reader.load(UInt32.self)), EventID(try reader.load(UInt32.self)),
                               ITS.EventMapping(intid: INTID(try reader.load(UInt32.self)),
                                                collection: CollectionID(try reader.load(UInt16.self))))
        }
        let collections = try list("its.collections", minimumElementSize: SnapshotImage.collectionSize) {
            (reader) throws(SnapshotImageError) in
            VGICSnapshot.Collection(CollectionID(try reader.load(UInt16.self)), VCPUIndex(try reader.load(UInt16.self)))
        }
        let translations = try list("its.translations", minimumElementSize: SnapshotImage.translationSize) {
            (reader) throws(SnapshotImageError) in
            VGICSnapshot.CachedTranslation(DeviceID(try reader.load(UInt32.self)), EventID(try reader.load(UInt32.self)),
                                           ITS.Translation(intid: INTID(try reader.load(UInt32.self)),
                                                           vcpu: VCPUIndex(try reader.load(UInt16.self))))
        }
        let operation = try optional("its.operation") { (reader) throws(SnapshotImageError) in try reader.operation() }
        return VGICSnapshot.ITSState(configuration: configuration, enabled: enabled, cbaser: cbaser, cwriter: cwriter,
                                     creadr: creadr, stalled: stalled, lastStallFault: fault, deviceBaser: deviceBaser,
                                     collectionBaser: collectionBaser, devices: devices, events: events,
                                     collections: collections, translations: translations, operation: operation,
                                     counters: try itsCounters())
    }

    /// Assigned field by field: the initializer's preconditions are for the restore to check, as errors.
    mutating func itsConfiguration() throws(SnapshotImageError) -> ITS.Configuration {
        var configuration = ITS.Configuration(vcpuCount: 1)
        configuration.deviceIDBits = try int("its.configuration.deviceIDBits")
        configuration.eventIDBits = try int("its.configuration.eventIDBits")
        configuration.intidBits = try int("its.configuration.intidBits")
        configuration.vcpuCount = try int("its.configuration.vcpuCount")
        configuration.translationCacheLimit = try int("its.configuration.translationCacheLimit")
        configuration.maximumDevices = try int("its.configuration.maximumDevices")
        configuration.maximumEvents = try int("its.configuration.maximumEvents")
        return configuration
    }

    mutating func fault() throws(SnapshotImageError) -> GuestMemoryFault {
        let kind: GuestMemoryFault.Kind = try tag("its.lastStallFault.kind", cases: 2) == 0 ? .unmapped : .addressOverflow
        return GuestMemoryFault(kind, address: GuestAddress(try load(UInt64.self)), length: try int("its.lastStallFault.length"))
    }

    mutating func deviceMapping() throws(SnapshotImageError) -> ITS.DeviceMapping {
        ITS.DeviceMapping(ittAddress: GuestAddress(try load(UInt64.self)), eventIDBits: try load(UInt8.self))
    }

    mutating func operation() throws(SnapshotImageError) -> VGICSnapshot.Operation {
        switch try tag("its.operation", cases: 3) {
        case 0:
            let device = DeviceID(try load(UInt32.self))
            let itt = GuestAddress(try load(UInt64.self))
            let nextEvent = EventID(try load(UInt32.self))
            let then = try optional("its.operation.then") { (reader) throws(SnapshotImageError) in try reader.deviceMapping() }
            return .unmapDevice(device, itt: itt, nextEvent: nextEvent, then: then)
        case 1:
            let collection = CollectionID(try load(UInt16.self))
            let from = try optional("its.operation.from", UInt16.self).map(VCPUIndex.init(rawValue:))
            let to = try optional("its.operation.to", UInt16.self).map(VCPUIndex.init(rawValue:))
            return .retargetCollection(collection, from: from, to: to, nextDevice: DeviceID(try load(UInt32.self)),
                                       nextEvent: EventID(try load(UInt32.self)))
        default:
            return .synchronize(VCPUIndex(try load(UInt16.self)))
        }
    }

    /// Error codes must come in strictly ascending order, as the writer sorts them: a dictionary
    /// cannot hold the same code twice, and the image must be the one its snapshot encodes to.
    mutating func itsCounters() throws(SnapshotImageError) -> ITS.Counters {
        var counters = ITS.Counters()
        counters.commandsProcessed = try load(UInt64.self)
        let count = try count("its.counters.commandErrors", minimumElementSize: SnapshotImage.commandErrorSize)
        counters.commandErrors.reserveCapacity(count)
        var previous: UInt32?
        for _ in 0 ..< count {
            let start = offset
            let code = try load(UInt32.self)
            if let previous, previous >= code {
                throw SnapshotImageError(offset: start, reason: .badValue("its.counters.commandErrors"))
            }
            previous = code
            counters.commandErrors[code] = try load(UInt64.self)
        }
        counters.unknownCommands = try load(UInt64.self)
        counters.virtualCommands = try load(UInt64.self)
        counters.stalls = try load(UInt64.self)
        counters.cwriterIgnored = try load(UInt64.self)
        counters.translationHits = try load(UInt64.self)
        counters.translationMisses = try load(UInt64.self)
        counters.translationsBlocked = try load(UInt64.self)
        counters.translaterWritesIgnored = try load(UInt64.self)
        counters.mmioIgnored = try load(UInt64.self)
        counters.cacheInvalidations = try load(UInt64.self)
        counters.mappingLimitReached = try load(UInt64.self)
        for number in 0 ..< ITS.Counters.commandNumbers { counters.commandsByNumber[number] = try load(UInt64.self) }
        return counters
    }

    /// The redistributor at `index` in the list, which names its fields in errors.
    mutating func redistributorState(_ index: Int) throws(SnapshotImageError) -> VGICSnapshot.RedistributorState {
        let path = "redistributors[\(index)]"
        var configuration = Redistributor.Configuration(vcpu: VCPUIndex(try load(UInt16.self)), isLast: false)
        configuration.affinity = try load(UInt32.self)
        configuration.isLast = try bool(path + ".configuration.isLast")
        configuration.intidBits = try int(path + ".configuration.intidBits")
        configuration.maximumLPIs = try int(path + ".configuration.maximumLPIs")
        let lpisEnabled = try bool(path + ".lpisEnabled")
        let propbaser = try load(UInt64.self)
        let pendbaser = try load(UInt64.self)
        let pendingTableZero = try bool(path + ".pendingTableZero")
        let lpis = try list(path + ".lpis", minimumElementSize: SnapshotImage.lpiSize) { (reader) throws(SnapshotImageError) in
            VGICSnapshot.LPI(INTID(try reader.load(UInt32.self)),
                             LPIRecord(config: LPIConfig(rawValue: try reader.load(UInt8.self)), mappings: try reader.load(UInt8.self),
                                       epoch: try reader.load(UInt16.self)))
        }
        let pending = try list(path + ".pending", minimumElementSize: SnapshotImage.pendingSize) {
            (reader) throws(SnapshotImageError) in INTID(try reader.load(UInt32.self))
        }
        let invalidateAllCursor = try optional(path + ".invalidateAllCursor", UInt64.self)
        let pendingTableLoadCursor = try optional(path + ".pendingTableLoadCursor", UInt64.self)
        return VGICSnapshot.RedistributorState(
            configuration: configuration, lpisEnabled: lpisEnabled, propbaser: propbaser, pendbaser: pendbaser,
            pendingTableZero: pendingTableZero, lpis: lpis, pending: pending, invalidateAllCursor: invalidateAllCursor,
            pendingTableLoadCursor: pendingTableLoadCursor, counters: try redistributorCounters())
    }

    mutating func redistributorCounters() throws(SnapshotImageError) -> Redistributor.Counters {
        var counters = Redistributor.Counters()
        counters.lpisMadePending = try load(UInt64.self)
        counters.lpisCoalesced = try load(UInt64.self)
        counters.lpisAcknowledged = try load(UInt64.self)
        counters.lpisDroppedDisabled = try load(UInt64.self)
        counters.lpisDroppedOnDisable = try load(UInt64.self)
        counters.intidsOutOfRange = try load(UInt64.self)
        counters.lpisNotMapped = try load(UInt64.self)
        counters.staleMoves = try load(UInt64.self)
        counters.lpiLimitReached = try load(UInt64.self)
        counters.configReadFaults = try load(UInt64.self)
        counters.pendingTableFaults = try load(UInt64.self)
        counters.mmioIgnored = try load(UInt64.self)
        return counters
    }
}

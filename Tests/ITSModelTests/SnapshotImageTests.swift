import Testing
@testable import ITSModel

/// The byte image of a ``VGICSnapshot``: snapshots round trip through it exactly, equal snapshots
/// have identical images, and the layout is the documented one.
@Suite struct SnapshotImageTests {
    /// Random states (as in `SnapshotTests`) with cached translations and pending LPIs, and a MAPD
    /// in progress and INVALL sweeps (odd seeds) or a queue stalled on an ITT outside guest memory
    /// (even seeds): the image
    /// decodes to the snapshot, which encodes back to the same bytes and restores.
    @Test(arguments: [21 as UInt64, 22, 25, 26, 32, 35])
    func randomStatesRoundTrip(seed: UInt64) throws {
        var guest = RandomGuest(seed: seed)
        guest.run(steps: 1200)
        for _ in 0 ..< 50 {
            let (device, event) = guest.someEvent()
            guest.driver.gic.inject(DeviceID(device), EventID(event))
        }
        if seed % 2 == 1 {
            guest.driver.gic.redistributors.workBudget = 2
            for collection in RandomGuest.collections { guest.driver.run(GuestDriver.invall(collection)) }
            if let (key, _) = guest.its.devices.last {
                guest.driver.run(GuestDriver.mapd(UInt32(key), eventBits: 3, itt: RandomGuest.itt(of: UInt32(key))), budget: 1)
            }
        } else {
            guest.driver.run(GuestDriver.mapd(5, itt: GuestAddress(0x4000_0000)))
            guest.driver.run(GuestDriver.mapti(5, 0, intid: 8192, collection: 0))
        }
        let snapshot = guest.driver.gic.snapshot()
        if seed % 2 == 1 {
            #expect(snapshot.its.operation != nil, "a MAPD in progress, seed \(seed)")
            #expect(snapshot.redistributors.contains { $0.invalidateAllCursor != nil }, "an INVALL sweep in progress, seed \(seed)")
        } else {
            #expect(snapshot.its.stalled && snapshot.its.lastStallFault != nil, "a stall fault, seed \(seed)")
        }
        #expect(snapshot.redistributors.contains { !$0.pending.isEmpty }, "pending LPIs, seed \(seed)")
        #expect(!snapshot.its.translations.isEmpty && !snapshot.its.counters.commandErrors.isEmpty, "seed \(seed)")

        let image = snapshot.image()
        let decoded = try VGICSnapshot(image: image)
        #expect(decoded == snapshot, "seed \(seed)")
        #expect(decoded.image() == image, "seed \(seed)")
        let restored = try TestGIC(restoring: decoded, memory: guest.driver.memory, sink: DeliveryLog())
        #expect(restored.snapshot().image() == image, "seed \(seed)")
    }

    /// Every case of every enum and optional, both values of every bool, and a distinct value in
    /// every other field (negative `Int`s included) come back, whether or not a restore would take them.
    @Test(arguments: ImageFixture.variants.indices)
    func everyCaseAndFieldRoundTrips(_ index: Int) throws {
        let (name, vary) = ImageFixture.variants[index]
        var snapshot = try ImageFixture.rich()
        vary(&snapshot)
        let image = snapshot.image()
        let decoded = try VGICSnapshot(image: image)
        #expect(decoded == snapshot, "\(name)")
        #expect(decoded.image() == image, "\(name)")
    }

    /// The image carries every stored property of the snapshot's types: a property added to one of
    /// them changes its count here, and then the codec and ``VGICSnapshot/version`` must follow.
    @Test func everyStoredPropertyIsCounted() throws {
        let snapshot = try ImageFixture.rich()
        let its = snapshot.its
        let redistributor = snapshot.redistributors[0]
        let counts: [(String, Any, Int)] = [
            ("VGICSnapshot", snapshot, 3), ("ITSState", its, 15), ("ITS.Configuration", its.configuration, 7),
            ("GuestMemoryFault", its.lastStallFault!, 3), ("Device", its.devices[0], 2),
            ("DeviceMapping", its.devices[0].mapping, 2), ("Event", its.events[0], 3), ("EventMapping", its.events[0].mapping, 2),
            ("Collection", its.collections[0], 2), ("CachedTranslation", its.translations[0], 3),
            ("Translation", its.translations[0].translation, 2), ("ITS.Counters", its.counters, 14),
            ("RedistributorState", redistributor, 10), ("Redistributor.Configuration", redistributor.configuration, 5),
            ("LPI", redistributor.lpis[0], 2), ("LPIRecord", redistributor.lpis[0].record, 3),
            ("Redistributor.Counters", redistributor.counters, 12),
        ]
        for (name, value, expected) in counts {
            #expect(Mirror(reflecting: value).children.count == expected, "\(name)")
        }
    }

    /// Equal snapshots, however they were reached, have byte-identical images: a restored VM's
    /// snapshot, and error counts inserted in another order into a dictionary of another capacity.
    @Test func equalSnapshotsHaveIdenticalImages() throws {
        let source = try SnapshotFixture.source()
        let snapshot = source.snapshot()
        let restored = try TestGIC(restoring: snapshot, memory: source.memory, sink: DeliveryLog())
        #expect(restored.snapshot().image() == snapshot.image())

        var ascending = snapshot
        var descending = snapshot
        descending.its.counters.commandErrors = [:]
        descending.its.counters.commandErrors.reserveCapacity(500)
        for code: UInt32 in (0 ..< 40).reversed() { descending.its.counters.commandErrors[code * 0x101] = UInt64(code) }
        ascending.its.counters.commandErrors = [:]
        for code: UInt32 in 0 ..< 40 { ascending.its.counters.commandErrors[code * 0x101] = UInt64(code) }
        #expect(ascending == descending)
        #expect(ascending.image() == descending.image())
    }

    /// The header and the first fields of the ITS section at their documented offsets, and the
    /// checksum over everything before it.
    @Test func theLayoutIsTheDocumentedOne() throws {
        let snapshot = try SnapshotFixture.source().snapshot()
        let image = snapshot.image()
        #expect(Array(image[0 ..< 8]) == Array("ITSDSNAP".utf8))
        #expect(ImageFixture.u32(image, at: 8) == UInt32(VGICSnapshot.version))
        #expect(ImageFixture.u64(image, at: 12) == UInt64(image.count))
        #expect(ImageFixture.u64(image, at: 20) == UInt64(snapshot.its.configuration.deviceIDBits))
        #expect(image[ImageFixture.enabledOffset] == 1, "GITS_CTLR.Enabled")
        #expect(ImageFixture.u64(image, at: ImageFixture.enabledOffset + 1) == snapshot.its.cbaser)
        #expect(image[ImageFixture.stalledOffset] == 0 && image[ImageFixture.stalledOffset + 1] == 0, "not stalled, no fault")
        #expect(ImageFixture.u64(image, at: ImageFixture.devicesCountOffset) == 2)
        #expect(ImageFixture.u32(image, at: ImageFixture.devicesCountOffset + 8) == 7, "the first DeviceID")
        let checksum = image.dropLast(4).withUnsafeBytes { CRC32C.checksum($0) }
        #expect(ImageFixture.u32(image, at: image.count - 4) == checksum)
    }

    /// The CRC-32C check value (RFC 3720, B.4 gives the same polynomial).
    @Test func theChecksumIsCRC32C() {
        #expect(Array("123456789".utf8).withUnsafeBytes { CRC32C.checksum($0) } == 0xE306_9283)
        #expect([UInt8]().withUnsafeBytes { CRC32C.checksum($0) } == 0)
        #expect([UInt8](repeating: 0, count: 32).withUnsafeBytes { CRC32C.checksum($0) } == 0x8A91_36AA)
    }

    /// The minimum sizes the decoder bounds counts with are what one element takes.
    @Test func minimumSizesAreWhatOneElementTakes() throws {
        let base = try SnapshotFixture.source().snapshot()
        let size = base.image().count
        func growth(_ add: (inout VGICSnapshot) -> Void) -> Int {
            var snapshot = base
            add(&snapshot)
            return snapshot.image().count - size
        }
        let mapping = ITS.DeviceMapping(ittAddress: GuestAddress(0), eventIDBits: 1)
        #expect(growth { $0.its.devices.append(VGICSnapshot.Device(DeviceID(1), mapping)) } == SnapshotImage.deviceSize)
        let event = ITS.EventMapping(intid: INTID(1), collection: CollectionID(1))
        #expect(growth { $0.its.events.append(VGICSnapshot.Event(DeviceID(1), EventID(1), event)) } == SnapshotImage.eventSize)
        #expect(growth { $0.its.collections.append(VGICSnapshot.Collection(CollectionID(1), VCPUIndex(1))) }
            == SnapshotImage.collectionSize)
        let translation = ITS.Translation(intid: INTID(1), vcpu: VCPUIndex(1))
        #expect(growth { $0.its.translations.append(VGICSnapshot.CachedTranslation(DeviceID(1), EventID(1), translation)) }
            == SnapshotImage.translationSize)
        #expect(growth { $0.its.counters.commandErrors[0xFFFF] = 1 } == SnapshotImage.commandErrorSize)
        let lpi = VGICSnapshot.LPI(INTID(1), LPIRecord(config: .unreadable, mappings: 0))
        #expect(growth { $0.redistributors[0].lpis.append(lpi) } == SnapshotImage.lpiSize)
        #expect(growth { $0.redistributors[0].pending.append(INTID(1)) } == SnapshotImage.pendingSize)
        let minimal = VGICSnapshot.RedistributorState(
            configuration: Redistributor.Configuration(vcpu: VCPUIndex(4), isLast: true), lpisEnabled: false, propbaser: 0,
            pendbaser: 0, pendingTableZero: false, lpis: [], pending: [], invalidateAllCursor: nil,
            pendingTableLoadCursor: nil, counters: Redistributor.Counters())
        #expect(growth { $0.redistributors.append(minimal) } == SnapshotImage.minimumRedistributorSize)
    }
}

/// Snapshots and offsets shared by the image tests.
enum ImageFixture {
    // Offsets in the image of a snapshot with no stall fault, from the documented layout.
    static let enabledOffset = 20 + 7 * 8
    static let stalledOffset = enabledOffset + 1 + 3 * 8
    static let devicesCountOffset = stalledOffset + 1 + 1 + 2 * 8

    static func u32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (0 ..< 4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
    }

    static func u64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        (0 ..< 8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }

    static func put(_ value: UInt64, _ bytes: inout [UInt8], at offset: Int) {
        for index in 0 ..< 8 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index))) }
    }

    /// `bytes` with its length field and checksum made to fit it (at least a header and a
    /// checksum long), so that only its structure can be wrong.
    static func resealed(_ bytes: [UInt8]) -> [UInt8] {
        var bytes = bytes
        put(UInt64(bytes.count), &bytes, at: 12)
        let checksum = bytes.dropLast(4).withUnsafeBytes { CRC32C.checksum($0) }
        for index in 0 ..< 4 { bytes[bytes.count - 4 + index] = UInt8(truncatingIfNeeded: checksum >> (8 * UInt32(index))) }
        return bytes
    }

    /// The error decoding `bytes` throws, or nil when it decodes.
    static func error(decoding bytes: [UInt8]) -> SnapshotImageError? {
        do {
            _ = try VGICSnapshot(image: bytes)
            return nil
        } catch {
            return error
        }
    }

    /// The sample mappings with something in every optional and list, and a distinct value in
    /// every counter; a state no restore would take (an operation on a mapped device), which the
    /// image carries all the same.
    static func rich() throws -> VGICSnapshot {
        var snapshot = try SnapshotFixture.source().snapshot()
        snapshot.its.stalled = true
        snapshot.its.lastStallFault = GuestMemoryFault(.unmapped, address: GuestAddress(0x4000_0000), length: 8)
        snapshot.its.operation = .unmapDevice(DeviceID(0xFFFF_FFFF), itt: GuestAddress(0x1234_5678_9ABC), nextEvent: EventID(77),
                                              then: ITS.DeviceMapping(ittAddress: GuestAddress(0x180_0000), eventIDBits: 9))
        snapshot.its.configuration.maximumDevices = -1
        snapshot.its.configuration.maximumEvents = .max
        snapshot.its.counters = ITS.Counters(
            commandsProcessed: 1, commandErrors: [0x0A01: 4, 2: 2, 1: 3, 0xFFFF_FFFF: .max], unknownCommands: 4, virtualCommands: 5,
            stalls: 6, cwriterIgnored: 7, translationHits: 8, translationMisses: 9, translationsBlocked: 10,
            translaterWritesIgnored: 11, mmioIgnored: 12, cacheInvalidations: 13, mappingLimitReached: 14,
            commandsByNumber: (0 ..< 16).map { UInt64($0) * 1000 + 1 })
        for index in snapshot.redistributors.indices {
            let base = UInt64(index) << 32
            snapshot.redistributors[index].configuration.affinity = 0x0102_0304 + UInt32(index)
            snapshot.redistributors[index].configuration.maximumLPIs = Int.min + index
            let record = LPIRecord(config: LPIConfig(rawValue: 0xFF), mappings: 255, epoch: 0xFFFF)
            snapshot.redistributors[index].lpis.append(VGICSnapshot.LPI(INTID(.max), record))
            snapshot.redistributors[index].invalidateAllCursor = base | 8192
            snapshot.redistributors[index].pendingTableLoadCursor = base | 3
            snapshot.redistributors[index].counters = Redistributor.Counters(
                lpisMadePending: base | 1, lpisCoalesced: base | 2, lpisAcknowledged: base | 3, lpisDroppedDisabled: base | 4,
                lpisDroppedOnDisable: base | 5, intidsOutOfRange: base | 6, lpisNotMapped: base | 7, staleMoves: base | 8,
                lpiLimitReached: base | 9, configReadFaults: base | 10, pendingTableFaults: base | 11, mmioIgnored: base | 12)
        }
        return snapshot
    }

    /// Changes to ``rich()`` that together take every enum case, optional and bool both ways.
    static let variants: [(String, @Sendable (inout VGICSnapshot) -> Void)] = [
        ("as it is", { _ in }),
        ("address overflow, disabled", {
            $0.its.lastStallFault = GuestMemoryFault(.addressOverflow, address: GuestAddress(.max), length: .min)
            $0.its.enabled = false
        }),
        ("no fault, not stalled", { $0.its.lastStallFault = nil; $0.its.stalled = false }),
        ("MAPD then nothing", {
            $0.its.operation = .unmapDevice(DeviceID(1), itt: GuestAddress(0), nextEvent: EventID(0), then: nil)
        }),
        ("MAPC mapping", {
            $0.its.operation = .retargetCollection(CollectionID(3), from: nil, to: VCPUIndex(2), nextDevice: DeviceID(4),
                                                   nextEvent: EventID(5))
        }),
        ("MAPC moving", {
            $0.its.operation = .retargetCollection(CollectionID(.max), from: VCPUIndex(1), to: VCPUIndex(.max), nextDevice: DeviceID(.max),
                                                   nextEvent: EventID(.max))
        }),
        ("MAPC unmapping", {
            $0.its.operation = .retargetCollection(CollectionID(0), from: VCPUIndex(0), to: nil, nextDevice: DeviceID(0),
                                                   nextEvent: EventID(0))
        }),
        ("SYNC", { $0.its.operation = .synchronize(VCPUIndex(3)) }),
        ("no operation, no errors", { $0.its.operation = nil; $0.its.counters.commandErrors = [:] }),
        ("empty lists", {
            $0.its.devices = []; $0.its.events = []; $0.its.collections = []; $0.its.translations = []
            $0.redistributors[1].lpis = []; $0.redistributors[1].pending = []
        }),
        ("redistributor bools flipped, no cursors", {
            for index in $0.redistributors.indices {
                $0.redistributors[index].lpisEnabled.toggle()
                $0.redistributors[index].pendingTableZero.toggle()
                $0.redistributors[index].configuration.isLast.toggle()
                $0.redistributors[index].invalidateAllCursor = nil
                $0.redistributors[index].pendingTableLoadCursor = nil
            }
        }),
        ("no redistributors", { $0.redistributors = [] }),
    ]
}

import Testing
@testable import ITSModel

typealias TestGIC = VirtualGIC<InMemoryGuestMemory, DeliveryLog>

/// A guest driving its ITS with seeded random commands, MSIs, direct LPIs and acknowledges, so that
/// save/restore round trips start from states no one wrote by hand.
struct RandomGuest {
    /// DeviceIDs tried: gaps beyond 2^14 - 1 (a capped DTE "next") and, with a two-level table, a
    /// device whose level-2 page is never provided (MAPD fails for it).
    static let devices: [UInt32] = [0, 1, 2, 63, 700, 8191, 8192, 30000, 45000, 65535]
    static let collections: [UInt16] = [0, 1, 2, 3, 9, 200, 511]
    static let intids: Range<UInt32> = 8192 ..< 8192 + 1500
    static let missingLevel2Page: UInt64 = 5

    var driver: GuestDriver
    var rng: SplitMix64
    let vcpus: Int

    init(seed: UInt64, vcpus: Int = 4, twoLevel: Bool = false) {
        rng = SplitMix64(seed: seed)
        self.vcpus = vcpus
        driver = GuestDriver(vcpus: vcpus, eventIDBits: 20, twoLevelDeviceTable: twoLevel)
        if twoLevel {
            for page in 0 ..< 8 where page != Self.missingLevel2Page { driver.provideLevel2Page(UInt64(page)) }
        }
        for intid in Self.intids {
            driver.configure(intid, priority: UInt8.random(in: 0 ... 255, using: &rng), enabled: Int.random(in: 0 ..< 5, using: &rng) != 0)
        }
    }

    /// Each device gets a 1 MB ITT: room for 2^17 events.
    static func itt(of device: UInt32) -> GuestAddress {
        GuestAddress(0x100_0000 + UInt64(devices.firstIndex(of: device)!) * 0x10_0000)
    }

    var its: ITS { driver.gic.its }

    mutating func pick<T>(_ values: [T]) -> T { values[Int.random(in: 0 ..< values.count, using: &rng)] }
    mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0 ..< 100, using: &rng) < percent }

    /// A mapped event most of the time, otherwise any (device, event).
    mutating func someEvent() -> (UInt32, UInt32) {
        if chance(80), let (key, _) = its.events.first(atOrAfter: UInt64.random(in: 0 ... UInt64(UInt32.max), using: &rng))
            ?? its.events.first()
        {
            let bits = UInt64(its.configuration.eventIDBits)
            return (UInt32(key >> bits), UInt32(key & ((1 << bits) - 1)))
        }
        return (pick(Self.devices), UInt32.random(in: 0 ..< 300, using: &rng))
    }

    /// An EventID the device's ITT holds, if it is mapped.
    mutating func eventFor(_ device: UInt32) -> UInt32 {
        let bits = its.devices.load(UInt64(device))?.eventIDBits ?? 8
        return UInt32.random(in: 0 ..< UInt32(1 << UInt64(bits)), using: &rng)
    }

    mutating func step() {
        let vcpu = UInt16.random(in: 0 ..< UInt16(vcpus), using: &rng)
        switch Int.random(in: 0 ..< 100, using: &rng) {
        case 0 ..< 5:
            let device = pick(Self.devices)
            let bits = chance(20) ? 17 : Int.random(in: 1 ... 10, using: &rng)
            driver.run(GuestDriver.mapd(device, eventBits: bits, itt: Self.itt(of: device)))
        case 5 ..< 6:
            driver.run(GuestDriver.mapd(pick(Self.devices), valid: false))
        case 6 ..< 10:
            // A burst of mappings on one device.
            let device = UInt32(its.devices.first(atOrAfter: UInt64(pick(Self.devices)))?.key ?? 0)
            for _ in 0 ..< 8 {
                driver.run(GuestDriver.mapti(device, eventFor(device), intid: UInt32.random(in: Self.intids, using: &rng),
                                             collection: pick(Self.collections)))
            }
        case 10 ..< 16:
            driver.run(GuestDriver.mapc(pick(Self.collections), vcpu: UInt64(vcpu)))
        case 16 ..< 18:
            driver.run(GuestDriver.mapc(pick(Self.collections), vcpu: 0, valid: false))
        case 18 ..< 40:
            let device = chance(85) ? UInt32(its.devices.first(atOrAfter: UInt64(pick(Self.devices)))?.key ?? 0) : pick(Self.devices)
            driver.run(GuestDriver.mapti(device, eventFor(device), intid: UInt32.random(in: Self.intids, using: &rng),
                                         collection: pick(Self.collections)))
        case 40 ..< 42:
            let device = pick(Self.devices)
            driver.run(GuestDriver.mapi(device, eventFor(device), collection: pick(Self.collections)))
        case 42 ..< 48:
            let (device, event) = someEvent()
            driver.run(GuestDriver.movi(device, event, collection: pick(Self.collections)))
        case 48 ..< 53:
            let (device, event) = someEvent()
            driver.run(GuestDriver.discard(device, event))
        case 53 ..< 68:
            let (device, event) = someEvent()
            driver.run(GuestDriver.int(device, event))
        case 68 ..< 72:
            let (device, event) = someEvent()
            driver.run(GuestDriver.clear(device, event))
        case 72 ..< 74:
            let (device, event) = someEvent()
            driver.run(GuestDriver.inv(device, event))
        case 74:
            driver.run(GuestDriver.invall(pick(Self.collections)))
        case 75:
            driver.run(GuestDriver.movall(from: UInt64(vcpu), to: UInt64.random(in: 0 ..< UInt64(vcpus), using: &rng)))
        case 76:
            driver.run(GuestDriver.sync(vcpu: UInt64(vcpu)))
        case 77 ..< 87:
            let (device, event) = someEvent()
            driver.gic.inject(DeviceID(device), EventID(event))
        case 87 ..< 93:
            _ = driver.gic.acknowledge(VCPUIndex(vcpu))
        case 93 ..< 97:
            driver.gic.writeRedistributor(VCPUIndex(vcpu), Redistributor.Offset.setlpir,
                                          UInt64(UInt32.random(in: Self.intids, using: &rng)))
        default:
            driver.gic.writeRedistributor(VCPUIndex(vcpu), Redistributor.Offset.clrlpir,
                                          UInt64(UInt32.random(in: Self.intids, using: &rng)))
        }
    }

    mutating func run(steps: Int) {
        for _ in 0 ..< steps { step() }
        driver.gic.runPendingWork()
    }
}

/// One key and value of a sparse index, to compare indexes.
struct IndexEntry<Value: Hashable>: Hashable {
    var key: UInt64
    var value: Value
}

func entries<Value: Hashable>(_ index: SparseIndex<Value>) -> [IndexEntry<Value>] {
    index.entries.map { IndexEntry(key: $0.key, value: $0.value) }
}

/// What a table round trip must reproduce: the ITS's mappings and, per vCPU, the LPI records and
/// the pending LPIs.
struct MappingState: Equatable {
    var devices: [IndexEntry<ITS.DeviceMapping>]
    var events: [IndexEntry<ITS.EventMapping>]
    var collections: [IndexEntry<VCPUIndex>]
    var lpis: [[IndexEntry<LPIRecord>]]
    var pending: [[PendingLPI]]

    init(_ gic: TestGIC) {
        devices = entries(gic.its.devices)
        events = entries(gic.its.events)
        collections = entries(gic.its.collections)
        lpis = gic.redistributors.redistributors.map { entries($0.lpis) }
        pending = gic.redistributors.redistributors.map { $0.pendingLPIs(limit: .max).lpis }
    }
}

/// A new VM over `source`'s memory with the registers a VMM restores before the tables: each
/// redistributor's PROPBASER and PENDBASER (without PTZ, so that enabling reads the pending table),
/// then GITS_CBASER and GITS_BASER0/1. EnableLPIs and GITS_CTLR are left to the caller.
func restoreTarget(like source: TestGIC) -> TestGIC {
    var target = TestGIC(source.its.configuration, memory: source.memory, sink: DeliveryLog())
    for redistributor in source.redistributors.redistributors {
        target.writeRedistributor(redistributor.vcpu, Redistributor.Offset.propbaser, redistributor.propbaser)
        target.writeRedistributor(redistributor.vcpu, Redistributor.Offset.pendbaser, redistributor.pendbaser)
    }
    target.writeITS(ITS.Offset.cbaser, source.its.cbaser)
    target.writeITS(ITS.Offset.baser0, source.its.deviceBaser)
    target.writeITS(ITS.Offset.baser0 + 8, source.its.collectionBaser)
    return target
}

func enableLPIs(_ gic: inout TestGIC) {
    for vcpu in 0 ..< gic.its.configuration.vcpuCount {
        gic.writeRedistributor(VCPUIndex(UInt16(vcpu)), Redistributor.Offset.ctlr, 1, width: .word)
    }
}

/// Everything each vCPU acknowledges until spurious.
func drainAll(_ gic: inout TestGIC) -> [[INTID]] {
    (0 ..< gic.its.configuration.vcpuCount).map { vcpu in
        var taken: [INTID] = []
        while case let intid = gic.acknowledge(VCPUIndex(UInt16(vcpu))), intid != .spurious { taken.append(intid) }
        return taken
    }
}

@Suite struct SaveRestoreTests {
    /// Random states saved into guest memory and restored into a new VM over the same memory in
    /// the documented order: the mappings, the LPI records and the pending LPIs of every vCPU come
    /// back, and both VMs then deliver the same LPIs.
    @Test(arguments: [1 as UInt64, 2, 3, 0x5EED, 0xC0FFEE], [false, true])
    func randomStatesRoundTripThroughGuestMemory(seed: UInt64, twoLevel: Bool) {
        var guest = RandomGuest(seed: seed, twoLevel: twoLevel)
        guest.run(steps: 1500)
        var source = guest.driver.gic
        do { try source.saveTables() } catch {
            Issue.record("save: \(error), seed \(seed)")
            return
        }
        let expected = MappingState(source)
        #expect(!expected.events.isEmpty && expected.pending.contains { !$0.isEmpty }, "a state worth saving, seed \(seed)")

        var target = restoreTarget(like: source)
        do { try target.restoreTables() } catch {
            Issue.record("restore: \(error), seed \(seed)")
            return
        }
        enableLPIs(&target)
        target.writeITS(ITS.Offset.ctlr, 1, width: .word)
        #expect(MappingState(target) == expected, "seed \(seed) two-level \(twoLevel)")
        #expect(drainAll(&target) == drainAll(&source), "seed \(seed)")
    }

    /// Pending LPIs come back whether EnableLPIs is set before or after the tables are restored:
    /// the pending table turns into direct LPIs that a restored mapping then adopts, or into
    /// pending state of LPIs the restore mapped.
    @Test(arguments: [false, true])
    func pendingStateReturnsWithEitherEnableOrder(enableFirst: Bool) throws {
        var driver = GuestDriver(vcpus: 4)
        for intid: UInt32 in 8192 ..< 8200 { driver.configure(intid) }
        driver.run(GuestDriver.mapc(0, vcpu: 1))
        driver.run(GuestDriver.mapc(1, vcpu: 2))
        driver.run(GuestDriver.mapd(7))
        driver.run(GuestDriver.mapti(7, 3, intid: 8192, collection: 0))
        driver.run(GuestDriver.mapti(7, 4, intid: 8193, collection: 1))
        driver.run(GuestDriver.int(7, 3))
        driver.run(GuestDriver.int(7, 4))
        driver.gic.writeRedistributor(VCPUIndex(3), Redistributor.Offset.setlpir, 8199)   // a direct LPI
        try driver.gic.saveTables()
        let expected = MappingState(driver.gic)
        #expect(expected.pending.map(\.count) == [0, 1, 1, 1])

        var target = restoreTarget(like: driver.gic)
        if enableFirst { enableLPIs(&target) }
        try target.restoreTables()
        if !enableFirst { enableLPIs(&target) }
        #expect(MappingState(target) == expected)
    }

    /// A second save after LPIs saved as pending were acknowledged, or unmapped, leaves no trace of
    /// them: the pending table is written whole, not only for the LPIs the redistributor still knows.
    @Test func aLaterSaveForgetsLPIsNoLongerPending() throws {
        var driver = GuestDriver(vcpus: 2)
        for intid: UInt32 in 8192 ..< 8200 { driver.configure(intid) }
        driver.run(GuestDriver.mapc(0, vcpu: 1))
        driver.run(GuestDriver.mapd(7))
        driver.run(GuestDriver.mapti(7, 3, intid: 8192, collection: 0))
        driver.run(GuestDriver.int(7, 3))
        driver.gic.writeRedistributor(VCPUIndex(1), Redistributor.Offset.setlpir, 8199)
        try driver.gic.saveTables()
        driver.run(GuestDriver.discard(7, 3))
        #expect(driver.gic.acknowledge(VCPUIndex(1)) == INTID(8199))
        try driver.gic.saveTables()
        #expect(MappingState(driver.gic).pending == [[], []])

        var target = restoreTarget(like: driver.gic)
        try target.restoreTables()
        enableLPIs(&target)
        #expect(MappingState(target) == MappingState(driver.gic))
    }

    /// A DeviceID gap wider than 2^14 - 1 and an EventID gap wider than 2^16 - 1 are saved as
    /// the largest offsets, and the restore scans on from there.
    @Test func longGapsAreCappedAndScannedAcross() throws {
        var driver = GuestDriver(vcpus: 2, eventIDBits: 20)
        driver.configure(8192)
        driver.run(GuestDriver.mapc(4, vcpu: 1))
        driver.run(GuestDriver.mapd(1, eventBits: 17, itt: GuestAddress(0x100_0000)))
        driver.run(GuestDriver.mapd(40000, eventBits: 2, itt: GuestAddress(0x120_0000)))
        driver.run(GuestDriver.mapti(1, 2, intid: 8192, collection: 4))
        driver.run(GuestDriver.mapti(1, 100_000, intid: 8193, collection: 4))
        driver.run(GuestDriver.mapti(40000, 3, intid: 8194, collection: 4))
        try driver.gic.saveTables()
        let memory = driver.memory
        let dte = try memory.readUInt64(at: GuestDriver.deviceTable.adding(8)!)
        #expect(ITS.decodeDTE(dte)?.next == ITS.maximumDeviceOffset)
        let ite = try memory.readUInt64(at: GuestAddress(0x100_0000 + 2 * 8))
        #expect(ITS.decodeITE(ite)?.next == ITS.maximumEventOffset)
        let last = try memory.readUInt64(at: GuestDriver.deviceTable.adding(40000 * 8)!)
        #expect(ITS.decodeDTE(last)?.next == 0)

        let expected = MappingState(driver.gic)
        var target = restoreTarget(like: driver.gic)
        try target.restoreTables()
        enableLPIs(&target)
        #expect(MappingState(target) == expected)
    }

    /// The Collection table is saved compactly in ICID order and ended by an invalid entry, since
    /// a restore stops at the first invalid CTE; unmapped collections leave no hole.
    @Test func collectionTableIsCompactedAndTerminated() throws {
        var driver = GuestDriver(vcpus: 4)
        driver.run(GuestDriver.mapc(9, vcpu: 3))
        driver.run(GuestDriver.mapc(5, vcpu: 1))
        driver.run(GuestDriver.mapc(0, vcpu: 2))
        driver.run(GuestDriver.mapc(0, vcpu: 2, valid: false))
        try driver.gic.saveTables()
        let slots = try (0 ..< 3).map { try driver.memory.readUInt64(at: GuestDriver.collectionTable.adding(UInt64($0) * 8)!) }
        #expect(slots == [ITS.encodeCTE(CollectionID(5), vcpu: VCPUIndex(1)), ITS.encodeCTE(CollectionID(9), vcpu: VCPUIndex(3)), 0])
    }

    /// A restore over an ITS that already has mappings replaces them: their LPIs are unmapped
    /// (losing pending state, as an unmapping does) and the saved ones mapped. Restoring the ITS's
    /// own save gives back the mappings and LPI records it had.
    @Test func restoringOverExistingMappingsReplacesThem() throws {
        var guest = RandomGuest(seed: 77)
        guest.run(steps: 500)
        var gic = guest.driver.gic
        try gic.saveTables()
        gic.writeITS(ITS.Offset.ctlr, 0, width: .word)
        var before = MappingState(gic)
        try gic.restoreTables()
        var after = MappingState(gic)
        #expect(after.pending.joined().count < before.pending.joined().count, "mapped LPIs lost their pending state")
        before.pending = []
        after.pending = []
        #expect(after == before)

        var other = GuestDriver(vcpus: 4)
        other.run(GuestDriver.mapc(3, vcpu: 0))
        other.run(GuestDriver.mapd(9))
        other.run(GuestDriver.mapti(9, 1, intid: 9000, collection: 3))
        try other.gic.saveTables()
        other.run(GuestDriver.mapti(9, 2, intid: 9001, collection: 3))
        #expect(other.gic.redistributor(VCPUIndex(0)).lpis.count == 2)
        other.gic.writeITS(ITS.Offset.ctlr, 0, width: .word)
        try other.gic.restoreTables()
        #expect(entries(other.gic.its.events) == [IndexEntry(key: 9 << 16 | 1, value: ITS.EventMapping(intid: INTID(9000), collection: CollectionID(3)))])
        #expect(entries(other.gic.redistributor(VCPUIndex(0)).lpis).map(\.key) == [9000])
    }

    @Test func anInvalidBaserIsAnEmptyTable() throws {
        var driver = GuestDriver(vcpus: 2, enableITS: false)
        driver.gic.writeITS(ITS.Offset.baser0, 0)
        driver.gic.writeITS(ITS.Offset.baser0 + 8, 0)
        try driver.gic.saveTables()
        try driver.gic.restoreTables()
        #expect(driver.gic.its.devices.isEmpty && driver.gic.its.collections.isEmpty)
    }

    @Test func saveRefusesACommandInProgress() {
        var driver = GuestDriver(vcpus: 2)
        driver.run(GuestDriver.mapc(0, vcpu: 1))
        driver.run(GuestDriver.mapd(3))
        for event: UInt32 in 0 ..< 8 { driver.run(GuestDriver.mapti(3, event, intid: 8192 + event, collection: 0)) }
        driver.run(GuestDriver.mapd(3, valid: false), budget: 2)
        #expect(throws: ITS.TableSaveError.commandInProgress) { try driver.gic.saveTables() }
        driver.gic.runPendingWork()
        #expect(throws: Never.self) { try driver.gic.saveTables() }
    }
}

/// Saved tables corrupted one entry at a time: each restore fails with its own error and changes
/// neither the ITS nor the redistributors.
@Suite struct MalformedTableTests {
    static let itt7 = GuestDriver.itt(of: 7)
    static let itt65000 = GuestAddress(0x180_0000)

    /// Collections 0 -> vCPU 1 and 1 -> vCPU 2; device 7 (8 EventID bits) with events 3 and 9;
    /// device 65000 (the last) with event 0. Saved, then the ITS disabled for the restore.
    static func savedState() throws -> GuestDriver {
        var driver = GuestDriver.withSampleMappings()
        try driver.gic.saveTables()
        driver.gic.writeITS(ITS.Offset.ctlr, 0, width: .word)
        return driver
    }

    static func dte(_ device: UInt64) -> GuestAddress { GuestDriver.deviceTable.adding(device * 8)! }
    static func ite(_ itt: GuestAddress, _ event: UInt64) -> GuestAddress { itt.adding(event * 8)! }
    static func cte(_ slot: UInt64) -> GuestAddress { GuestDriver.collectionTable.adding(slot * 8)! }

    static let corruptions: [(String, @Sendable (InMemoryGuestMemory) throws -> Void, ITS.TableRestoreError)] = [
        ("DTE Size beyond IDbits", { try $0.writeUInt64(1 << 63 | 2 << 49 | (itt7.rawValue >> 8) << 5 | 20, at: dte(7)) },
         .deviceEventIDBitsOutOfRange(DeviceID(7), eventIDBits: 21)),
        ("DTE ITT outside memory", { try $0.writeUInt64(1 << 63 | 1 << 49 | (0x1_0000_0000 >> 8) << 5 | 7, at: dte(7)) },
         .ittFault(DeviceID(7), GuestMemoryFault(.unmapped, address: GuestAddress(0x1_0000_0000), length: 8))),
        ("DTE next beyond the table", { try $0.writeUInt64(1 << 63 | 1000 << 49 | (itt65000.rawValue >> 8) << 5 | 3, at: dte(65000)) },
         .deviceNextBeyondTable(DeviceID(65000), next: 1000)),
        ("ITE pINTID below 8192", { try $0.writeUInt64(6 << 48 | 100 << 16 | 0, at: ite(itt7, 3)) },
         .eventINTIDOutOfRange(DeviceID(7), EventID(3), INTID(100))),
        ("ITE pINTID beyond INTID bits", { try $0.writeUInt64(6 << 48 | 70000 << 16 | 0, at: ite(itt7, 3)) },
         .eventINTIDOutOfRange(DeviceID(7), EventID(3), INTID(70000))),
        ("ITE collection beyond the table", { try $0.writeUInt64(0 << 48 | 8193 << 16 | 600, at: ite(itt7, 9)) },
         .eventCollectionBeyondTable(DeviceID(7), EventID(9), CollectionID(600))),
        ("ITE next beyond the ITT", { try $0.writeUInt64(300 << 48 | 8193 << 16 | 1, at: ite(itt7, 9)) },
         .eventNextBeyondITT(DeviceID(7), EventID(9), next: 300)),
        ("CTE vCPU out of range", { try $0.writeUInt64(1 << 63 | 4 << 16 | 0, at: cte(0)) },
         .collectionTargetOutOfRange(CollectionID(0), rdbase: 4)),
        ("CTE ICID beyond the table", { try $0.writeUInt64(1 << 63 | 1 << 16 | 512, at: cte(1)) },
         .collectionBeyondTable(CollectionID(512))),
        ("CTE twice", { try $0.writeUInt64(1 << 63 | 3 << 16 | 0, at: cte(1)) },
         .duplicateCollection(CollectionID(0))),
    ]

    @Test(arguments: corruptions.indices)
    func corruptedTableIsRejectedWhole(_ index: Int) throws {
        let (name, corrupt, error) = Self.corruptions[index]
        var driver = try Self.savedState()
        let before = MappingState(driver.gic)
        try corrupt(driver.memory)
        #expect(throws: error, "\(name)") { try driver.gic.restoreTables() }
        #expect(MappingState(driver.gic) == before, "\(name): nothing changed")
    }

    /// The uncorrupted save restores (the corruptions above are what fails).
    @Test func uncorruptedSaveRestores() throws {
        var driver = try Self.savedState()
        let before = MappingState(driver.gic)
        try driver.gic.restoreTables()
        #expect(MappingState(driver.gic) == before)
        #expect(before.events.count == 3 && before.collections.count == 2)
    }

    @Test func unreadableLevel1EntryIsADeviceTableFault() throws {
        var driver = GuestDriver(vcpus: 2, twoLevelDeviceTable: true, enableITS: false)
        try driver.memory.writeUInt64(1 << 63 | 0x2000_0000, at: GuestDriver.deviceTable)
        #expect(throws: ITS.TableRestoreError.deviceTableFault(GuestMemoryFault(.unmapped, address: GuestAddress(0x2000_0000), length: 8))) {
            try driver.gic.restoreTables()
        }
    }

    @Test func restoreRefusesAnEnabledITS() throws {
        var driver = GuestDriver(vcpus: 2)
        #expect(throws: ITS.TableRestoreError.itsEnabled) { try driver.gic.restoreTables() }
    }
}

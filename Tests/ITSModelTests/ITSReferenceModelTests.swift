import Testing
@testable import ITSModel

/// The ITS and its redistributors as plain dictionaries: no caches, no sparse indexes, no budgets.
/// Each command takes effect at once, following the choices the model documents (ITS+Commands.swift
/// and docs/SEMANTICS.md):
/// - an LPI routed to a vCPU has a record there with its configuration (read at every mapping,
///   and on INV and INVALL) and a count of the mappings routing it there;
/// - removing a mapping clears the LPI's pending state; a record goes with its last mapping;
/// - MAPD (valid or not) of a mapped device drops its events with their pending state first;
/// - MAPC moves its collection's LPIs with their pending state, or unmaps them with V=0;
/// - MAPTI/MAPI over a mapped event replace it (the old mapping is removed first);
/// - MOVI carries pending state to the new vCPU; DISCARD clears it;
/// - MOVALL makes each pending LPI of the source pending at the target (as a direct LPI when no
///   mapping routes it there: it then lives only while pending).
struct ReferenceGIC {
    struct Record: Equatable {
        var config: UInt8
        var mappings: Int
    }

    struct EventKey: Hashable, Comparable {
        var device: UInt32
        var event: UInt32
        static func < (a: EventKey, b: EventKey) -> Bool { (a.device, a.event) < (b.device, b.event) }
    }

    let vcpus: Int
    let idBits = 16                  // DeviceID, EventID and INTID bits of the ITS and the VM
    let collectionLimit = 512        // one 4K page of 8-byte CTEs (GuestDriver)

    var devices: [UInt32: Int] = [:]                                  // DeviceID -> EventID bits
    var events: [EventKey: (intid: UInt32, collection: UInt16)] = [:]
    var collections: [UInt16: Int] = [:]                              // ICID -> vCPU
    var records: [[UInt32: Record]]                                   // per vCPU, by INTID
    var pending: [Set<UInt32>]                                        // per vCPU
    var configBytes: [UInt32: UInt8] = [:]                            // the guest's configuration table
    var errors: [UInt32: UInt64] = [:]                                // E_ITS_* code -> count

    init(vcpus: Int) {
        self.vcpus = vcpus
        records = Array(repeating: [:], count: vcpus)
        pending = Array(repeating: [], count: vcpus)
    }

    // MARK: Redistributors

    mutating func map(_ intid: UInt32, on vcpu: Int) {
        if var record = records[vcpu][intid] {
            record.mappings += 1
            record.config = configBytes[intid] ?? 0
            records[vcpu][intid] = record
        } else {
            records[vcpu][intid] = Record(config: configBytes[intid] ?? 0, mappings: 1)
        }
    }

    @discardableResult
    mutating func unmap(_ intid: UInt32, on vcpu: Int) -> Bool {
        guard var record = records[vcpu][intid] else { return false }
        let wasPending = pending[vcpu].remove(intid) != nil
        record.mappings -= 1
        records[vcpu][intid] = record.mappings > 0 ? record : nil
        return wasPending
    }

    mutating func move(_ intid: UInt32, from source: Int, to target: Int) {
        guard source != target else { return }
        let wasPending = unmap(intid, on: source)
        map(intid, on: target)
        if wasPending { setPending(intid, on: target) }
    }

    mutating func setPending(_ intid: UInt32, on vcpu: Int) {
        if records[vcpu][intid] != nil { pending[vcpu].insert(intid) }
    }

    mutating func clearPending(_ intid: UInt32, on vcpu: Int) {
        guard let record = records[vcpu][intid] else { return }
        pending[vcpu].remove(intid)
        if record.mappings == 0 { records[vcpu][intid] = nil }
    }

    mutating func invalidate(_ intid: UInt32, on vcpu: Int) {
        records[vcpu][intid]?.config = configBytes[intid] ?? 0
    }

    mutating func invalidateAll(on vcpu: Int) {
        for intid in Array(records[vcpu].keys) { invalidate(intid, on: vcpu) }
    }

    mutating func moveAllPending(from source: Int, to target: Int) {
        guard source != target else { return }
        for intid in pending[source].sorted() {
            clearPending(intid, on: source)
            if records[target][intid] == nil {
                records[target][intid] = Record(config: configBytes[intid] ?? 0, mappings: 0)
            }
            pending[target].insert(intid)
        }
    }

    /// The deliverable LPI with the lowest (priority, INTID) below `mask`.
    func highestPriorityPending(_ vcpu: Int, mask: UInt8 = 0xFF) -> UInt32? {
        pending[vcpu].compactMap { intid -> (UInt8, UInt32)? in
            let config = LPIConfig(rawValue: records[vcpu][intid]!.config)
            return config.isEnabled && config.priority.rawValue < mask ? (config.priority.rawValue, intid) : nil
        }.min { $0 < $1 }?.1
    }

    mutating func acknowledge(_ vcpu: Int, mask: UInt8) -> UInt32 {
        guard let intid = highestPriorityPending(vcpu, mask: mask) else { return 1023 }
        clearPending(intid, on: vcpu)
        return intid
    }

    /// Pending LPIs of `vcpu` in INTID order with their cached configuration.
    func pendingListing(_ vcpu: Int) -> [PendingLPI] {
        pending[vcpu].sorted().map { PendingLPI(intid: INTID($0), config: LPIConfig(rawValue: records[vcpu][$0]!.config)) }
    }

    // MARK: ITS

    mutating func fail(_ opcode: UInt8, _ kind: ITSCommandError.Kind) {
        errors[ITSCommandError(opcode, kind).code, default: 0] += 1
    }

    /// The event's ITE and the vCPU of its collection, or the command error (INV, INT, CLEAR,
    /// DISCARD, MOVI).
    mutating func lookUp(_ opcode: UInt8, _ device: UInt32, _ event: UInt32) -> (intid: UInt32, collection: UInt16, vcpu: Int)? {
        guard let bits = devices[device] else { fail(opcode, .unmappedDevice); return nil }
        guard UInt64(event) >> UInt64(bits) == 0 else { fail(opcode, .eventOutOfRange); return nil }
        guard let ite = events[EventKey(device: device, event: event)] else { fail(opcode, .unmappedInterrupt); return nil }
        guard let vcpu = collections[ite.collection] else { fail(opcode, .unmappedCollection); return nil }
        return (ite.intid, ite.collection, vcpu)
    }

    mutating func execute(_ command: ITSCommand) {
        typealias Op = ITSCommand.Opcode
        switch command {
        case let .mapd(device, _, bits, valid):
            let id = device.rawValue
            guard UInt64(id) >> UInt64(idBits) == 0 else { return fail(Op.mapd, .deviceOrProcessorOutOfRange) }
            guard !valid || bits <= idBits else { return fail(Op.mapd, .sizeOrProcessorOutOfRange) }
            if devices[id] != nil {
                for key in events.keys.filter({ $0.device == id }).sorted() {
                    let ite = events.removeValue(forKey: key)!
                    if let vcpu = collections[ite.collection] { unmap(ite.intid, on: vcpu) }
                }
            }
            devices[id] = valid ? bits : nil
        case let .mapc(collection, rdbase, valid):
            let icid = collection.rawValue
            guard Int(icid) < collectionLimit else { return fail(Op.mapc, .collectionOutOfRange) }
            guard !valid || rdbase < UInt64(vcpus) else { return fail(Op.mapc, .sizeOrProcessorOutOfRange) }
            let old = collections[icid]
            let new = valid ? Int(rdbase) : nil
            collections[icid] = new
            guard old != new else { return }
            for key in events.keys.sorted() where events[key]!.collection == icid {
                let intid = events[key]!.intid
                switch (old, new) {
                case let (source?, target?): move(intid, from: source, to: target)
                case let (nil, target?): map(intid, on: target)
                case let (source?, nil): unmap(intid, on: source)
                case (nil, nil): break
                }
            }
        case let .mapti(device, event, intid, collection):
            mapEvent(Op.mapti, device.rawValue, event.rawValue, intid.rawValue, collection.rawValue)
        case let .mapi(device, event, collection):
            mapEvent(Op.mapi, device.rawValue, event.rawValue, event.rawValue, collection.rawValue)
        case let .movi(device, event, collection):
            guard let found = lookUp(Op.movi, device.rawValue, event.rawValue) else { return }
            guard Int(collection.rawValue) < collectionLimit else { return fail(Op.movi, .collectionOutOfRange) }
            guard let target = collections[collection.rawValue] else { return fail(Op.movi, .unmappedCollection) }
            events[EventKey(device: device.rawValue, event: event.rawValue)] = (found.intid, collection.rawValue)
            move(found.intid, from: found.vcpu, to: target)
        case let .discard(device, event):
            guard let found = lookUp(Op.discard, device.rawValue, event.rawValue) else { return }
            events[EventKey(device: device.rawValue, event: event.rawValue)] = nil
            unmap(found.intid, on: found.vcpu)
        case let .inv(device, event):
            if let found = lookUp(Op.inv, device.rawValue, event.rawValue) { invalidate(found.intid, on: found.vcpu) }
        case let .int(device, event):
            if let found = lookUp(Op.int, device.rawValue, event.rawValue) { setPending(found.intid, on: found.vcpu) }
        case let .clear(device, event):
            if let found = lookUp(Op.clear, device.rawValue, event.rawValue) { clearPending(found.intid, on: found.vcpu) }
        case let .invall(collection):
            guard Int(collection.rawValue) < collectionLimit else { return fail(Op.invall, .collectionOutOfRange) }
            guard let vcpu = collections[collection.rawValue] else { return fail(Op.invall, .unmappedCollection) }
            invalidateAll(on: vcpu)
        case .sync, .virtual, .unknown:
            break
        case let .movall(from, to):
            guard from < UInt64(vcpus), to < UInt64(vcpus) else { return fail(Op.movall, .deviceOrProcessorOutOfRange) }
            moveAllPending(from: Int(from), to: Int(to))
        }
    }

    mutating func mapEvent(_ opcode: UInt8, _ device: UInt32, _ event: UInt32, _ intid: UInt32, _ collection: UInt16) {
        guard let bits = devices[device] else { return fail(opcode, .unmappedDevice) }
        guard UInt64(event) >> UInt64(bits) == 0 else { return fail(opcode, .eventOutOfRange) }
        guard intid >= 8192, UInt64(intid) >> UInt64(idBits) == 0 else { return fail(opcode, .physicalIDOutOfRange) }
        guard Int(collection) < collectionLimit else { return fail(opcode, .collectionOutOfRange) }
        let key = EventKey(device: device, event: event)
        if let old = events[key], let vcpu = collections[old.collection] { unmap(old.intid, on: vcpu) }
        events[key] = (intid, collection)
        if let vcpu = collections[collection] { map(intid, on: vcpu) }
    }

    /// An MSI: its translation, and the LPI made pending.
    mutating func inject(_ device: UInt32, _ event: UInt32) -> Result<ITS.Translation, ITS.TranslationError> {
        guard UInt64(device) >> UInt64(idBits) == 0 else { return .failure(.unmappedDevice) }
        guard UInt64(event) >> UInt64(idBits) == 0 else { return .failure(.unmappedEvent) }
        guard let bits = devices[device] else { return .failure(.unmappedDevice) }
        guard UInt64(event) >> UInt64(bits) == 0, let ite = events[EventKey(device: device, event: event)] else {
            return .failure(.unmappedEvent)
        }
        guard let vcpu = collections[ite.collection] else { return .failure(.unmappedCollection) }
        setPending(ite.intid, on: vcpu)
        return .success(ITS.Translation(intid: INTID(ite.intid), vcpu: VCPUIndex(UInt16(vcpu))))
    }
}

/// Draws the IDs of random commands: mostly from small ranges so that mappings collide, sometimes
/// unmapped or out of range.
struct CommandGenerator {
    var rng: SplitMix64
    let vcpus: Int

    mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0 ..< 100, using: &rng) < percent }
    mutating func pick(_ range: Range<UInt32>) -> UInt32 { UInt32.random(in: range, using: &rng) }

    mutating func device() -> UInt32 { chance(94) ? pick(0 ..< 6) : chance(50) ? pick(6 ..< 8) : pick(1 << 16 ..< 1 << 20) }
    mutating func event() -> UInt32 {
        if chance(88) { return pick(0 ..< 8) }
        return chance(70) ? pick(8 ..< 64) : UInt32.random(in: 0 ... .max, using: &rng)
    }
    mutating func intid() -> UInt32 {
        if chance(88) { return pick(8192 ..< 8192 + 48) }
        return chance(50) ? pick(0 ..< 8192) : pick(1 << 16 ..< 1 << 17)
    }
    mutating func collection() -> UInt16 { UInt16(chance(92) ? pick(0 ..< 6) : pick(509 ..< 515)) }
    mutating func rdbase() -> UInt64 { UInt64(chance(92) ? pick(0 ..< UInt32(vcpus)) : pick(UInt32(vcpus) ..< UInt32(vcpus) + 3)) }

    /// A random command as the four doublewords the guest writes.
    mutating func command() -> (UInt64, UInt64, UInt64, UInt64) {
        switch Int.random(in: 0 ..< 100, using: &rng) {
        case 0 ..< 1:
            let bits = chance(70) ? Int(pick(3 ..< 6)) : chance(50) ? Int(pick(14 ..< 17)) : chance(60) ? Int(pick(1 ..< 3)) : Int(pick(17 ..< 33))
            return GuestDriver.mapd(device(), eventBits: bits, valid: chance(90))
        case 1 ..< 5: return GuestDriver.mapc(collection(), vcpu: rdbase(), valid: chance(80))
        case 5 ..< 30: return GuestDriver.mapti(device(), event(), intid: intid(), collection: collection())
        case 30 ..< 34: return GuestDriver.mapi(device(), chance(60) ? pick(8192 ..< 8192 + 48) : event(), collection: collection())
        case 34 ..< 42: return GuestDriver.movi(device(), event(), collection: collection())
        case 42 ..< 47: return GuestDriver.discard(device(), event())
        case 47 ..< 55: return GuestDriver.inv(device(), event())
        case 55 ..< 59: return GuestDriver.invall(collection())
        case 59 ..< 90: return GuestDriver.int(device(), event())
        case 90 ..< 96: return GuestDriver.clear(device(), event())
        case 96 ..< 98: return GuestDriver.sync(vcpu: rdbase())
        default: return GuestDriver.movall(from: rdbase(), to: rdbase())
        }
    }
}

/// Seeded random sequences of commands, MSIs, acknowledges and configuration changes, compared
/// with ``ReferenceGIC`` after every step: every vCPU's pending LPIs (with their cached
/// configuration), its highest-priority pending LPI, MSI outcomes, acknowledged INTIDs and the
/// command errors counted. Budgeted runs process commands and background work a few units at a time.
@Test(arguments: [(1 as UInt64, false), (2, false), (3, true), (4, true), (0xC0FFEE, false), (0xBADC0DE, true)])
func itsMatchesTheReferenceModel(seed: UInt64, budgeted: Bool) {
    let vcpus = 4
    var driver = GuestDriver(vcpus: vcpus)
    var reference = ReferenceGIC(vcpus: vcpus)
    var random = CommandGenerator(rng: SplitMix64(seed: seed), vcpus: vcpus)
    if budgeted { driver.gic.redistributors.workBudget = 2 }
    for intid in UInt32(8192) ..< 8192 + 48 where random.chance(80) {
        let config = LPIConfig(priority: Priority(UInt8(random.pick(0 ..< 256))), enabled: random.chance(85))
        try! driver.memory.writeUInt8(config.rawValue, at: GuestDriver.configTable.adding(UInt64(intid) - 8192)!)
        reference.configBytes[intid] = config.rawValue
    }
    // Start from a populated VM: the usual devices and collections mapped.
    let prologue = (0 ..< 6).map { GuestDriver.mapd($0, eventBits: 3) } + (0 ..< 4).map { GuestDriver.mapc(UInt16($0), vcpu: UInt64($0)) }
    for words in prologue {
        driver.run(words)
        reference.execute(ITSCommand(words.0, words.1, words.2, words.3))
    }

    for step in 0 ..< 8000 {
        var action = ""
        switch Int.random(in: 0 ..< 100, using: &random.rng) {
        case 0 ..< 50:
            let count = Int.random(in: 1 ... 3, using: &random.rng)
            for _ in 0 ..< count {
                let words = random.command()
                let command = ITSCommand(words.0, words.1, words.2, words.3)
                action += "\(command) "
                driver.enqueue(words)
                reference.execute(command)
            }
            if budgeted {
                driver.flush(budget: Int.random(in: 1 ... 3, using: &random.rng))
                driver.gic.runPendingWork(budget: Int.random(in: 1 ... 5, using: &random.rng))
            } else {
                driver.flush()
                driver.gic.runPendingWork()
            }
        case 50 ..< 80:
            let device = random.device()
            let event = random.event()
            action = "MSI \(device) \(event)"
            let outcome = driver.gic.inject(DeviceID(device), EventID(event))
            let expected = reference.inject(device, event)
            #expect(outcome == expected, "seed \(seed) step \(step): \(action)")
        case 80 ..< 90:
            let vcpu = Int.random(in: 0 ..< vcpus, using: &random.rng)
            let mask = random.chance(70) ? 0xFF : UInt8(random.pick(0 ..< 256))
            action = "acknowledge on \(vcpu) under \(mask)"
            let taken = driver.gic.acknowledge(VCPUIndex(UInt16(vcpu)), priorityMask: Priority(mask))
            #expect(taken.rawValue == reference.acknowledge(vcpu, mask: mask), "seed \(seed) step \(step): \(action)")
        default:
            let intid = random.pick(8192 ..< 8192 + 48)
            let config = LPIConfig(priority: Priority(UInt8(random.pick(0 ..< 256))), enabled: random.chance(75))
            action = "configure \(intid) \(config)"
            try! driver.memory.writeUInt8(config.rawValue, at: GuestDriver.configTable.adding(UInt64(intid) - 8192)!)
            reference.configBytes[intid] = config.rawValue
        }

        #expect(!driver.gic.its.stalled && driver.gic.its.creadr == driver.gic.its.cwriter,
                "seed \(seed) step \(step): the queue did not drain after \(action)")
        #expect(driver.gic.its.counters.commandErrors == reference.errors, "seed \(seed) step \(step): errors after \(action)")
        var agrees = true
        for vcpu in 0 ..< vcpus {
            let redistributor = driver.gic.redistributor(VCPUIndex(UInt16(vcpu)))
            if step % 500 == 0 { redistributor.checkInvariants() }
            let listing = redistributor.pendingLPIs(limit: .max).lpis
            let expected = reference.pendingListing(vcpu)
            let highest = redistributor.highestPriorityPending()?.rawValue
            #expect(listing == expected, "seed \(seed) step \(step): vCPU \(vcpu) pending after \(action)")
            #expect(highest == reference.highestPriorityPending(vcpu),
                    "seed \(seed) step \(step): vCPU \(vcpu) highest priority pending after \(action)")
            agrees = agrees && listing == expected && highest == reference.highestPriorityPending(vcpu)
        }
        guard agrees else { return }
    }
}

/// MAPC moving a mapped collection continues over several budgets, holding the queue meanwhile. An
/// MSI that arrives before the move is complete reaches its LPI at the redistributor the LPI is at
/// — the old one for events not yet moved, the new one for those moved — and is never lost.
@Test func anMSIDuringABudgetedCollectionMoveIsNotLost() {
    var driver = GuestDriver(vcpus: 2)
    driver.run(GuestDriver.mapc(0, vcpu: 0))
    driver.run(GuestDriver.mapd(1, eventBits: 5))
    for event in UInt32(0) ..< 32 {
        driver.configure(8192 + event, priority: 0x40)
        driver.run(GuestDriver.mapti(1, event, intid: 8192 + event, collection: 0))
    }
    // Before any LPI moved.
    driver.run(GuestDriver.mapc(0, vcpu: 1), budget: 1)
    #expect(driver.gic.its.hasPendingWork)
    #expect(driver.gic.inject(DeviceID(1), EventID(31)) == .success(ITS.Translation(intid: INTID(8223), vcpu: VCPUIndex(0))))
    // Part way: events 0 ..< 8 moved, the rest not.
    driver.gic.runPendingWork(budget: 8, rounds: 1)
    #expect(driver.gic.its.hasPendingWork)
    for event in UInt32(0) ..< 31 { _ = driver.gic.inject(DeviceID(1), EventID(event)) }
    driver.gic.runPendingWork()
    #expect(driver.drain(0) == [])
    #expect(driver.drain(1) == Array(8192 ..< 8224), "every MSI sent during the move arrives at the new vCPU")
    // Translations made during the move were not cached stale.
    for event in UInt32(0) ..< 32 {
        #expect(driver.gic.inject(DeviceID(1), EventID(event)) == .success(ITS.Translation(intid: INTID(8192 + event), vcpu: VCPUIndex(1))))
    }
}

/// INVALL reads a leaf's configuration bytes (64 INTIDs) at once; where that read faults because
/// part of the table is not guest memory, the readable bytes are still read one by one and the
/// unreadable keep their cached configuration. Budgets split leaves.
@Test(arguments: [1, 5, 4096])
func invalidateAllRereadsAroundUnreadableBytes(budget: Int) {
    let table = GuestAddress(0x1_0000)
    let memory = InMemoryGuestMemory()
    memory.addRegion(base: table, size: 40)                  // INTIDs 8192 ..< 8232 only
    memory.addRegion(base: table.adding(100)!, size: 300)    // and 8292 ..< 8592
    var sink = DeliveryLog()
    var redistributor = Redistributor(.init(vcpu: VCPUIndex(0), isLast: true, intidBits: 16))
    redistributor.mmioWrite(offset: Redistributor.Offset.propbaser, width: .doubleword, value: table.rawValue | 15,
                            memory: memory, sink: &sink)
    redistributor.mmioWrite(offset: Redistributor.Offset.pendbaser, width: .doubleword, value: 1 << 62, memory: memory, sink: &sink)
    redistributor.mmioWrite(offset: Redistributor.Offset.ctlr, width: .word, value: 1, memory: memory, sink: &sink)
    func configure(_ intid: UInt32, _ priority: UInt8) {
        try? memory.writeUInt8(LPIConfig(priority: Priority(priority), enabled: true).rawValue, at: table.adding(UInt64(intid) - 8192)!)
    }
    let intids = Array(UInt32(8192) ..< 8192 + 400).filter { $0 % 3 != 1 }
    for intid in intids {
        configure(intid, 0x80)
        _ = redistributor.mapLPI(INTID(intid), memory: memory)
        _ = redistributor.setPending(INTID(intid), sink: &sink)
    }
    for intid in intids { configure(intid, 0x40) }
    redistributor.invalidateAll(budget: budget, memory: memory, sink: &sink)
    while redistributor.performPendingWork(budget: budget, memory: memory, sink: &sink) {}
    for intid in intids {
        let readable = intid < 8232 || (8292 ..< 8592).contains(intid)
        let expected = readable ? LPIConfig(priority: Priority(0x40), enabled: true) : LPIConfig.unreadable
        #expect(redistributor.lpis.load(UInt64(intid))?.config == expected, "INTID \(intid)")
    }
    // The pending LPIs moved to their new level: the enabled ones come out at 0x40, in INTID order.
    let readableCount = intids.filter { $0 < 8232 || (8292 ..< 8592).contains($0) }.count
    var taken: [UInt32] = []
    while case let intid = redistributor.acknowledge(), intid != .spurious { taken.append(intid.rawValue) }
    #expect(taken.count == readableCount && taken == taken.sorted())
}

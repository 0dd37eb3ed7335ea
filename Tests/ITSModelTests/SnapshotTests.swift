import Testing
@testable import ITSModel

/// A restored snapshot is the same VM: equal snapshots, and the same outcomes afterwards.
@Suite struct SnapshotTests {
    /// Random states, some caught in the middle of a MAPD unmapping (a command in progress) and of
    /// INVALL sweeps (redistributor cursors), snapshot -> restore -> snapshot, then the same MSIs,
    /// acknowledges and background work on the original and the restored VM.
    @Test(arguments: [11 as UInt64, 12, 13, 0xD00D, 0xFACADE])
    func randomStatesRoundTripExactly(seed: UInt64) {
        var guest = RandomGuest(seed: seed)
        guest.run(steps: 1200)
        if seed % 2 == 1 {
            guest.driver.gic.redistributors.workBudget = 2
            for collection in RandomGuest.collections { guest.driver.run(GuestDriver.invall(collection)) }
            if let (key, _) = guest.its.devices.last {
                guest.driver.run(GuestDriver.mapd(UInt32(key), eventBits: 3, itt: RandomGuest.itt(of: UInt32(key))), budget: 1)
            }
        }
        var original = guest.driver.gic
        let snapshot = original.snapshot()
        #expect(snapshot.version == VGICSnapshot.version)
        if seed % 2 == 1 {
            #expect(snapshot.its.operation != nil, "a MAPD in progress, seed \(seed)")
            #expect(snapshot.redistributors.contains { $0.invalidateAllCursor != nil }, "an INVALL sweep in progress, seed \(seed)")
        }
        var restored: TestGIC
        do { restored = try TestGIC(restoring: snapshot, memory: original.memory, sink: DeliveryLog()) } catch {
            Issue.record("restore: \(error), seed \(seed)")
            return
        }
        #expect(restored.snapshot() == snapshot, "seed \(seed)")
        #expect(restored.sink.notified == restored.redistributors.redistributors.filter { $0.deliverableCount > 0 }.map(\.vcpu))

        for step in 0 ..< 300 {
            switch Int.random(in: 0 ..< 3, using: &guest.rng) {
            case 0, 1:
                let (device, event) = guest.someEvent()
                #expect(original.inject(DeviceID(device), EventID(event)) == restored.inject(DeviceID(device), EventID(event)),
                        "seed \(seed) step \(step)")
            default:
                let vcpu = VCPUIndex(UInt16.random(in: 0 ..< UInt16(guest.vcpus), using: &guest.rng))
                #expect(original.acknowledge(vcpu) == restored.acknowledge(vcpu), "seed \(seed) step \(step)")
            }
        }
        // Background work writes the same guest memory twice (the ITEs MAPD zeroes) and reads
        // configuration bytes neither VM changes, so running it on both is deterministic.
        original.runPendingWork()
        restored.runPendingWork()
        #expect(restored.snapshot() == original.snapshot(), "seed \(seed)")
        #expect(drainAll(&restored) == drainAll(&original), "seed \(seed)")
    }

    /// ``VirtualGIC/restore(_:)`` replaces the state of a VM of the same configuration.
    @Test func restoreReplacesAnExistingVM() throws {
        let source = try SnapshotFixture.source()
        var target = SnapshotFixture.target()
        try target.gic.restore(source.snapshot())
        #expect(target.gic.snapshot() == source.snapshot())
        #expect(target.gic.sink.notified.suffix(3) == [VCPUIndex(1), VCPUIndex(2), VCPUIndex(3)], "vCPUs with deliverable LPIs")
        #expect(drainAll(&target.gic) == [[], [INTID(8192)], [INTID(8193)], [INTID(8199)]])
    }

    /// Snapshots with one inconsistency each: ``VirtualGIC/restore(_:)`` rejects them with their
    /// own error and leaves the VM as it was.
    @Test(arguments: SnapshotFixture.corruptions.indices)
    func inconsistentSnapshotIsRejectedWhole(_ index: Int) throws {
        let (name, corrupt, error) = SnapshotFixture.corruptions[index]
        var snapshot = try SnapshotFixture.source().snapshot()
        corrupt(&snapshot)
        var target = SnapshotFixture.target()
        let before = target.gic.snapshot()
        #expect(throws: error, "\(name)") { try target.gic.restore(snapshot) }
        #expect(target.gic.snapshot() == before, "\(name): nothing changed")
        #expect(throws: error, "\(name)") { try TestGIC(restoring: snapshot, memory: target.memory, sink: DeliveryLog()) }
    }

    /// Configuration checks: ``VirtualGIC/restore(_:)`` wants the VM's own configuration; building
    /// a VM from a snapshot wants the parts to fit each other.
    @Test func configurationIsChecked() throws {
        let snapshot = try SnapshotFixture.source().snapshot()
        let memory = InMemoryGuestMemory(base: GuestAddress(0), size: 4096)
        var other = TestGIC(ITS.Configuration(vcpuCount: 2), memory: memory, sink: DeliveryLog())
        #expect(throws: VGICSnapshot.RestoreError.configurationMismatch) { try other.restore(snapshot) }

        var fewer = snapshot
        fewer.redistributors.removeLast()
        #expect(throws: VGICSnapshot.RestoreError.redistributorCount(3)) {
            try TestGIC(restoring: fewer, memory: memory, sink: DeliveryLog())
        }
        var misplaced = snapshot
        misplaced.redistributors.swapAt(1, 2)
        #expect(throws: VGICSnapshot.RestoreError.redistributorConfiguration(VCPUIndex(1))) {
            try TestGIC(restoring: misplaced, memory: memory, sink: DeliveryLog())
        }
        var wide = snapshot
        wide.its.configuration.deviceIDBits = 33
        #expect(throws: VGICSnapshot.RestoreError.invalidConfiguration) {
            try TestGIC(restoring: wide, memory: memory, sink: DeliveryLog())
        }
    }
}

enum SnapshotFixture {
    /// Collections 0 -> vCPU 1 and 1 -> vCPU 2; device 7 with events 3 (8192) and 9 (8193), both
    /// translated once (cached) and pending; device 65000 with event 0 (8194); a direct LPI 8199
    /// pending at vCPU 3.
    static func source() throws -> TestGIC {
        var driver = GuestDriver.withSampleMappings()
        driver.gic.inject(DeviceID(7), EventID(3))
        driver.gic.inject(DeviceID(7), EventID(9))
        driver.gic.writeRedistributor(VCPUIndex(3), Redistributor.Offset.setlpir, 8199)
        return driver.gic
    }

    /// A VM of the same configuration with a state of its own.
    static func target() -> GuestDriver {
        var driver = GuestDriver(vcpus: 4)
        driver.configure(9000)
        driver.run(GuestDriver.mapc(5, vcpu: 0))
        driver.run(GuestDriver.mapd(2))
        driver.run(GuestDriver.mapti(2, 1, intid: 9000, collection: 5))
        driver.gic.inject(DeviceID(2), EventID(1))
        return driver
    }

    typealias Error = VGICSnapshot.RestoreError

    static let corruptions: [(String, @Sendable (inout VGICSnapshot) -> Void, Error)] = [
        ("another version", { $0.version = VGICSnapshot.version + 1 }, .unsupportedVersion(VGICSnapshot.version + 1)),
        ("CBASER reserved bit", { $0.its.cbaser |= 1 << 8 }, .invalidRegister("GITS_CBASER")),
        ("BASER0 type", { $0.its.deviceBaser ^= 1 << 57 }, .invalidRegister("GITS_BASER0")),
        ("CREADR beyond the queue", { $0.its.creadr = 8192 }, .invalidRegister("GITS_CREADR")),
        ("CWRITER unaligned", { $0.its.cwriter += 8 }, .invalidRegister("GITS_CWRITER")),
        ("devices out of order", { $0.its.devices.reverse() }, .notStrictlyAscending("devices")),
        ("device EventID bits", { $0.its.devices[0].mapping.eventIDBits = 17 }, .deviceOutOfRange(DeviceID(7))),
        ("event of an unmapped device", {
            $0.its.events.insert(VGICSnapshot.Event(DeviceID(8), EventID(0), ITS.EventMapping(intid: INTID(8195), collection: CollectionID(0))), at: 2)
        }, .eventOutOfRange(DeviceID(8), EventID(0))),
        ("event beyond its ITT", { $0.its.events[1].event = EventID(300) }, .eventOutOfRange(DeviceID(7), EventID(300))),
        ("event pINTID", { $0.its.events[0].mapping.intid = INTID(100) }, .eventOutOfRange(DeviceID(7), EventID(3))),
        ("events duplicated", { $0.its.events.insert($0.its.events[0], at: 0) }, .notStrictlyAscending("events")),
        ("collection vCPU", { $0.its.collections[1].vcpu = VCPUIndex(4) }, .collectionOutOfRange(CollectionID(1))),
        ("stale translation", { $0.its.translations[0].translation.vcpu = VCPUIndex(3) }, .staleTranslation(DeviceID(7), EventID(3))),
        ("MAPD in progress on a mapped device", {
            $0.its.operation = .unmapDevice(DeviceID(7), itt: GuestAddress(0), nextEvent: EventID(0), then: nil)
        }, .inconsistentOperation),
        ("MAPC in progress to where the collection is not", {
            $0.its.operation = .retargetCollection(CollectionID(0), from: VCPUIndex(1), to: VCPUIndex(2), nextDevice: DeviceID(0), nextEvent: EventID(0))
        }, .inconsistentOperation),
        ("PROPBASER reserved bits", { $0.redistributors[2].propbaser |= 1 << 5 }, .invalidRedistributorRegister(VCPUIndex(2), "GICR_PROPBASER")),
        ("LPI beyond INTID bits", { $0.redistributors[0].lpis.append(VGICSnapshot.LPI(INTID(70000), LPIRecord(config: .unreadable, mappings: 1))) },
         .lpiOutOfRange(VCPUIndex(0), INTID(70000))),
        ("pending without an LPI", { $0.redistributors[1].pending.append(INTID(8198)) }, .pendingWithoutRecord(VCPUIndex(1), INTID(8198))),
        ("direct LPI not pending", { $0.redistributors[3].pending = [] }, .directLPINotPending(VCPUIndex(3), INTID(8199))),
        ("pending while LPIs are disabled", { $0.redistributors[1].lpisEnabled = false }, .pendingWhileLPIsDisabled(VCPUIndex(1))),
        ("pending out of order", { $0.redistributors[1].pending = [INTID(8192), INTID(8192)] },
         .notStrictlyAscending("redistributors[1].pending")),
    ]
}

import Testing
@testable import ITSModel

/// LPI state at a redistributor: configuration, pending tables, enable transitions (IHI 0069, 5.1).
@Suite struct RedistributorLPITests {
    typealias Offset = Redistributor.Offset

    // IHI 0069 5.1.1: the configuration byte is read when the LPI is mapped and cached until an INV.
    @Test func configurationIsReadAtMapAndCachedUntilInvalidated() {
        var fixture = RedistributorFixture()
        fixture.map(8192, priority: 0xA3)
        #expect(fixture.redistributor.lpis.load(8192)?.config.priority == Priority(0xA0), "priority is byte & 0xFC")
        fixture.configure(8192, priority: 0x20, enabled: false)
        #expect(fixture.redistributor.lpis.load(8192)?.config.isEnabled == true, "cached until invalidated")
        fixture.redistributor.invalidate(INTID(8192), memory: fixture.memory, sink: &fixture.sink)
        #expect(fixture.redistributor.lpis.load(8192)?.config == LPIConfig(priority: Priority(0x20), enabled: false))
    }

    @Test func unreadableConfigurationMapsDisabledAndIsCounted() {
        var fixture = RedistributorFixture()
        fixture.write(Offset.ctlr, 0)
        fixture.write(Offset.propbaser, 0x4000_0000 | 15)   // nothing registered there
        fixture.write(Offset.ctlr, 1)
        let outcome = fixture.redistributor.mapLPI(INTID(8192), memory: fixture.memory)
        #expect(outcome == .mappedConfigUnreadable(GuestMemoryFault(.unmapped, address: GuestAddress(0x4000_0000), length: 1)))
        #expect(fixture.pend(8192) == .madePending)
        #expect(fixture.redistributor.highestPriorityPending() == nil)
        #expect(fixture.redistributor.counters.configReadFaults == 1)
    }

    // GICR_PROPBASER.IDbits: INTIDs at or beyond 2^(IDbits+1) are not LPIs of this redistributor.
    @Test func intidsBeyondIDbitsAreIgnored() {
        var fixture = RedistributorFixture(idBits: 16)
        fixture.write(Offset.ctlr, 0)
        fixture.write(Offset.propbaser, RedistributorFixture.configTable.rawValue | 13)  // 14 bits: 8192 ..< 16384
        fixture.write(Offset.ctlr, 1)
        #expect(fixture.redistributor.mapLPI(INTID(16384), memory: fixture.memory) == .outOfRange)
        #expect(fixture.redistributor.mapLPI(INTID(8191), memory: fixture.memory) == .outOfRange)
        fixture.map(16383)
        #expect(fixture.pend(16383) == .madePending)
        fixture.write(Offset.setlpir, 16384)
        #expect(fixture.redistributor.pendingCount == 1)
        #expect(fixture.redistributor.counters.intidsOutOfRange == 3)
        // Fewer than 14 bits: no LPIs at all. A VM limit below PROPBASER caps it too.
        fixture.write(Offset.ctlr, 0)
        fixture.write(Offset.propbaser, RedistributorFixture.configTable.rawValue | 12)
        #expect(!fixture.redistributor.accepts(INTID(8192)))
        fixture.write(Offset.propbaser, RedistributorFixture.configTable.rawValue | 31)
        #expect(fixture.redistributor.effectiveIDBits == 16)
    }

    // IHI 0069 5.1.2 and GICR_PENDBASER.PTZ: enabling LPIs reads the pending table unless PTZ.
    @Test func enablingLoadsThePendingTableAndConsumesIt() {
        var fixture = RedistributorFixture(enable: false, pendingTableZero: false)
        fixture.map(8300, priority: 0x60)
        fixture.configure(40_000, priority: 0x20)            // not mapped: a direct LPI
        fixture.setPendingTableBit(8300)
        fixture.setPendingTableBit(40_000)
        fixture.write(Offset.ctlr, 1)
        #expect(fixture.redistributor.isPending(INTID(8300)))
        #expect(fixture.redistributor.isPending(INTID(40_000)))
        #expect(fixture.sink.notified == [VCPUIndex(0)], "one edge for both LPIs")
        #expect(!fixture.pendingTableBit(8300) && !fixture.pendingTableBit(40_000), "loaded bits are consumed")
        #expect(fixture.drain() == [40_000, 8300])
        // Disabling then enabling again does not resurrect what was delivered.
        fixture.write(Offset.ctlr, 0)
        fixture.write(Offset.ctlr, 1)
        #expect(fixture.redistributor.pendingCount == 0)
    }

    @Test func ptzSkipsThePendingTable() {
        var fixture = RedistributorFixture(enable: false, pendingTableZero: true)
        fixture.map(8300)
        fixture.setPendingTableBit(8300)
        fixture.write(Offset.ctlr, 1)
        #expect(fixture.redistributor.pendingCount == 0)
        #expect(fixture.pendingTableBit(8300), "the table was not touched")
    }

    @Test func pendingTableLoadIsBudgetedAndFaultsAreCounted() {
        var fixture = RedistributorFixture(idBits: 20, enable: false, pendingTableZero: false)
        fixture.map(1_000_000)
        fixture.setPendingTableBit(1_000_000)
        fixture.redistributor.mmioWrite(offset: Offset.ctlr, width: .word, value: 1, memory: fixture.memory,
                                        sink: &fixture.sink, workBudget: 1000)
        #expect(fixture.redistributor.hasPendingWork, "2^20 bits is 16384 words")
        #expect(fixture.read(Offset.syncr, width: .word) == 1)
        while fixture.redistributor.performPendingWork(budget: 1000, memory: fixture.memory, sink: &fixture.sink) {}
        #expect(fixture.redistributor.isPending(INTID(1_000_000)))
        // A pending table outside guest memory: the load stops at the first word and is counted.
        fixture.write(Offset.ctlr, 0)
        fixture.write(Offset.pendbaser, 0x7000_0000)
        fixture.write(Offset.ctlr, 1)
        #expect(!fixture.redistributor.hasPendingWork)
        #expect(fixture.redistributor.counters.pendingTableFaults == 1)
    }

    // KVM's choice, written in docs/SEMANTICS.md: clearing EnableLPIs drops the vCPU's pending LPIs.
    @Test func disablingDropsPendingLPIsAndLaterSignals() {
        var fixture = RedistributorFixture()
        fixture.map(8192)
        fixture.configure(8193, priority: 0)
        fixture.pend(8192)
        fixture.write(Offset.setlpir, 8193)
        fixture.write(Offset.ctlr, 0)
        #expect(fixture.redistributor.pendingCount == 0 && fixture.redistributor.deliverableCount == 0)
        #expect(fixture.redistributor.counters.lpisDroppedOnDisable == 2)
        #expect(fixture.redistributor.lpis.load(8192) != nil, "mappings stay")
        #expect(fixture.redistributor.lpis.load(8193) == nil, "a direct LPI goes with its pending state")
        #expect(fixture.pend(8192) == .droppedLPIsDisabled)
        #expect(fixture.redistributor.counters.lpisDroppedDisabled == 1)
        fixture.write(Offset.ctlr, 1)
        #expect(fixture.redistributor.acknowledge() == .spurious)
    }

    // Saving writes the model's pending state into the whole guest table (KVM's SAVE_PENDING_TABLES).
    @Test func savingWritesThePendingTable() {
        var fixture = RedistributorFixture()
        for intid: UInt32 in [8192, 8193, 8255, 8256, 20_000] { fixture.map(intid) }
        fixture.setPendingTableBit(8193)       // stale bits, of a known LPI and of an unknown INTID: cleared
        fixture.setPendingTableBit(30_000)
        fixture.pend(8192)
        fixture.pend(8256)
        fixture.pend(20_000)
        #expect(fixture.redistributor.savePendingTable(to: fixture.memory) == nil)
        #expect(fixture.pendingTableBit(8192) && fixture.pendingTableBit(8256) && fixture.pendingTableBit(20_000))
        #expect(!fixture.pendingTableBit(8193) && !fixture.pendingTableBit(8255))
        #expect(!fixture.pendingTableBit(30_000))
        // Restoring: a fresh redistributor enabled over the saved table has the same pending LPIs.
        var restored = RedistributorFixture(enable: false, pendingTableZero: false)
        restored.memory = fixture.memory
        for intid: UInt32 in [8192, 8193, 8255, 8256, 20_000] { restored.map(intid) }
        restored.write(Offset.ctlr, 1)
        #expect(restored.redistributor.pendingLPIs(limit: 10).lpis.map(\.intid.rawValue) == [8192, 8256, 20_000])
    }

    @Test func savingToMissingMemoryReportsTheFault() {
        var fixture = RedistributorFixture()
        fixture.map(8192)
        fixture.write(Offset.ctlr, 0)
        fixture.write(Offset.pendbaser, 0x7000_0000)
        let fault = fixture.redistributor.savePendingTable(to: fixture.memory)
        #expect(fault == GuestMemoryFault(.unmapped, address: GuestAddress(0x7000_0000 + 8192 / 8), length: 8))
    }

    // An LPI unmapped while pending never delivers; a new mapping of its INTID starts clean.
    @Test func unmappedWhilePendingNeverDeliversAndRemapStartsClean() {
        var fixture = RedistributorFixture()
        fixture.map(9000, priority: 0x10)
        fixture.pend(9000)
        #expect(fixture.redistributor.unmapLPI(INTID(9000)) == true)
        #expect(fixture.redistributor.acknowledge() == .spurious)
        #expect(fixture.pend(9000) == .notMapped)
        fixture.map(9000, priority: 0x30, enabled: false)
        #expect(!fixture.redistributor.isPending(INTID(9000)))
        #expect(fixture.redistributor.lpis.load(9000) == LPIRecord(config: LPIConfig(priority: Priority(0x30), enabled: false), mappings: 1))
    }

    @Test func aSecondMappingKeepsTheLPIUntilBothAreGone() {
        var fixture = RedistributorFixture()
        fixture.map(9000)
        #expect(fixture.redistributor.mapLPI(INTID(9000), memory: fixture.memory) == .alreadyMapped)
        fixture.redistributor.unmapLPI(INTID(9000))
        #expect(fixture.pend(9000) == .madePending)
        fixture.redistributor.unmapLPI(INTID(9000))
        #expect(fixture.redistributor.lpis.isEmpty && fixture.redistributor.pendingCount == 0)
    }

    // A mapping of an INTID the redistributor already knows (here a direct LPI) reads its
    // configuration byte again, as a fresh mapping does.
    @Test func mappingAKnownLPIRereadsItsConfiguration() {
        var fixture = RedistributorFixture()
        fixture.configure(8200, priority: 0x40, enabled: false)
        fixture.write(Offset.setlpir, 8200)
        #expect(fixture.sink.notified.isEmpty)
        fixture.configure(8200, priority: 0x40, enabled: true)
        #expect(fixture.redistributor.mapLPI(INTID(8200), memory: fixture.memory, sink: &fixture.sink) == .mapped)
        #expect(fixture.redistributor.lpis.load(8200)?.config.isEnabled == true)
        #expect(fixture.sink.notified == [VCPUIndex(0)], "the pending LPI became deliverable")
        #expect(fixture.drain() == [8200])
    }

    // The guest decides how many LPIs exist; their records are capped per redistributor.
    @Test func lpiRecordsAreCapped() {
        var fixture = RedistributorFixture(idBits: 16, enable: false, pendingTableZero: false, maximumLPIs: 3)
        fixture.map(8192)
        fixture.map(8193)
        #expect(fixture.redistributor.mapLPI(INTID(8193), memory: fixture.memory) == .alreadyMapped, "no new record")
        fixture.write(Offset.ctlr, 1)
        fixture.write(Offset.setlpir, 9000)
        #expect(fixture.redistributor.mapLPI(INTID(8194), memory: fixture.memory) == .limitReached)
        fixture.write(Offset.setlpir, 9001)
        #expect(fixture.redistributor.setPendingDirect(INTID(9002), memory: fixture.memory, sink: &fixture.sink) == .limitReached)
        #expect(fixture.redistributor.lpis.count == 3)
        #expect(fixture.redistributor.counters.lpiLimitReached == 3)
        // A pending table full of ones cannot make more records either.
        var flooded = RedistributorFixture(idBits: 16, enable: false, pendingTableZero: false, maximumLPIs: 100)
        for intid: UInt32 in 8192 ..< 65536 { flooded.setPendingTableBit(intid) }
        flooded.write(Offset.ctlr, 1)
        while flooded.redistributor.performPendingWork(budget: 4096, memory: flooded.memory, sink: &flooded.sink) {}
        #expect(flooded.redistributor.lpis.count == 100)
        #expect(flooded.redistributor.counters.lpiLimitReached == 65536 - 8192 - 100)
    }
}

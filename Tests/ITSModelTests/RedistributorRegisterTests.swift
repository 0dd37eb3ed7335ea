import Testing
@testable import ITSModel

/// The LPI registers of RD_base (IHI 0069, 12.11).
@Suite struct RedistributorRegisterTests {
    typealias Offset = Redistributor.Offset

    // IHI 0069 12.11.37 GICR_TYPER: PLPIS, DirectLPI, Last, Processor_Number, Affinity_Value.
    @Test func typerDescribesTheVCPU() {
        var first = Redistributor(.init(vcpu: VCPUIndex(0), isLast: false))
        var last = Redistributor(.init(vcpu: VCPUIndex(17), isLast: true))
        let typer0 = try! first.mmioRead(offset: Offset.typer, width: .doubleword).get()
        let typer17 = try! last.mmioRead(offset: Offset.typer, width: .doubleword).get()
        #expect(typer0 & 1 == 1, "PLPIS")
        #expect(typer0 & 0b10 == 0, "VLPIS")
        #expect(typer0 & 0b1000 != 0, "DirectLPI")
        #expect(typer0 & 0b1_0000 == 0 && typer17 & 0b1_0000 != 0, "Last")
        #expect((typer17 >> 8) & 0xFFFF == 17, "Processor_Number")
        #expect((typer0 >> 24) & 0b11 == 0, "CommonLPIAff: one shared configuration table")
        // vCPU 17 is Aff1 = 1, Aff0 = 1 with 16 vCPUs per cluster.
        #expect(typer17 >> 32 == 0x0101, "Affinity_Value")
        // 32-bit accesses read either half.
        #expect(try! last.mmioRead(offset: Offset.typer + 4, width: .word).get() == typer17 >> 32)
        #expect(try! last.mmioRead(offset: Offset.typer, width: .word).get() == typer17 & 0xFFFF_FFFF)
        // Read-only: writes are ignored and counted.
        var fixture = RedistributorFixture()
        #expect(fixture.write(Offset.typer, 0) == .readOnly)
        #expect(fixture.redistributor.counters.mmioIgnored == 1)
    }

    // IHI 0069 12.11.2 GICR_CTLR: EnableLPIs RW, CES and IR read 1, RWP reads 0.
    @Test func ctlrEnablesLPIsAndReportsCapabilities() {
        var fixture = RedistributorFixture(enable: false)
        #expect(fixture.read(Offset.ctlr, width: .word) == 0b110)
        fixture.write(Offset.ctlr, 0xFFFF_FFFF)
        #expect(fixture.redistributor.lpisEnabled)
        #expect(fixture.read(Offset.ctlr, width: .word) == 0b111, "only EnableLPIs is writable; RWP reads 0")
        fixture.write(Offset.ctlr, 0)
        #expect(!fixture.redistributor.lpisEnabled)
        #expect(fixture.write(Offset.ctlr, 1, width: .doubleword) == nil, "CTLR writes go through as words")
        #expect(fixture.redistributor.mmioWrite(offset: Offset.ctlr, width: .doubleword, value: 1,
                                                memory: fixture.memory, sink: &fixture.sink) == .unsupportedWidth)
    }

    // IHI 0069 12.11.26 GICR_PROPBASER and 12.11.22 GICR_PENDBASER.
    @Test func baseRegistersKeepTheirFieldsAndIgnoreWritesWhileEnabled() {
        var fixture = RedistributorFixture(enable: false)
        fixture.write(Offset.propbaser, 0xFFFF_FFFF_FFFF_FFFF)
        #expect(fixture.read(Offset.propbaser) == Redistributor.propbaserMask)
        fixture.write(Offset.pendbaser, 0xFFFF_FFFF_FFFF_FFFF)
        #expect(fixture.read(Offset.pendbaser) == Redistributor.pendbaserMask, "PTZ reads as 0")
        #expect(fixture.redistributor.pendingTableZero)
        // A 32-bit write to the upper half keeps the lower half.
        fixture.write(Offset.propbaser, 0x12345_000 | 15)
        fixture.write(Offset.propbaser + 4, 0x1, width: .word)
        #expect(fixture.read(Offset.propbaser) == 0x1_1234_5000 | 15)
        fixture.write(Offset.ctlr, 1)
        #expect(fixture.write(Offset.propbaser, 0x9000) == .lockedInCurrentState)
        #expect(fixture.write(Offset.pendbaser, 0x9_0000) == .lockedInCurrentState)
        #expect(fixture.read(Offset.propbaser) == 0x1_1234_5000 | 15)
        #expect(fixture.redistributor.counters.mmioIgnored == 2)
    }

    // Accesses outside the table, of the wrong width or misaligned are RAZ/WI and counted.
    @Test func badAccessesAreIgnoredAndCounted() {
        var fixture = RedistributorFixture()
        #expect(fixture.redistributor.mmioRead(offset: 0x0010, width: .word) == .failure(.unimplementedOffset))
        #expect(fixture.redistributor.mmioRead(offset: Offset.typer, width: .byte) == .failure(.unsupportedWidth))
        #expect(fixture.redistributor.mmioRead(offset: Offset.typer + 2, width: .word) == .failure(.misaligned))
        #expect(fixture.redistributor.mmioRead(offset: Offset.setlpir, width: .doubleword) == .failure(.writeOnly))
        #expect(fixture.redistributor.mmioRead(offset: Offset.syncr + 4, width: .word) == .failure(.unimplementedOffset))
        #expect(fixture.redistributor.mmioRead(offset: 0xFFFF_0000, width: .word) == .failure(.unimplementedOffset))
        #expect(fixture.write(Offset.syncr, 1, width: .word) == .readOnly)
        #expect(fixture.redistributor.counters.mmioIgnored == 7)
        #expect(fixture.read(Offset.pidr2, width: .word) == 0x3B, "PIDR2.ArchRev = 3")
        #expect(fixture.read(Offset.iidr, width: .word) == Redistributor.iidr)
    }

    // IHI 0069 12.11.32 GICR_SETLPIR and 12.11.3 GICR_CLRLPIR (DirectLPI).
    @Test func setAndClearLPIRegistersChangePendingState() {
        var fixture = RedistributorFixture()
        fixture.configure(8200, priority: 0x40)
        fixture.write(Offset.setlpir, 8200)
        #expect(fixture.redistributor.isPending(INTID(8200)))
        #expect(fixture.sink.notified == [VCPUIndex(0)])
        #expect(fixture.redistributor.highestPriorityPending() == INTID(8200))
        fixture.write(Offset.clrlpir, 8200, width: .word)
        #expect(!fixture.redistributor.isPending(INTID(8200)))
        #expect(fixture.redistributor.lpis.load(8200) == nil, "a direct LPI lives only while pending")
        // A 32-bit write to the upper half names INTID 0, which is no LPI.
        fixture.write(Offset.setlpir + 4, 8200, width: .word)
        #expect(fixture.redistributor.pendingCount == 0)
        #expect(fixture.redistributor.counters.intidsOutOfRange == 1)
    }

    // IHI 0069 12.11.17 GICR_INVLPIR, 12.11.16 GICR_INVALLR, 12.11.36 GICR_SYNCR.
    @Test func invalidationRereadsConfigurationAndSyncrShowsProgress() {
        var fixture = RedistributorFixture()
        for n in 0 ..< 10_000 as Range<UInt32> { fixture.map(8192 + n, priority: 0x80, enabled: false) }
        for n in 0 ..< 10_000 as Range<UInt32> { fixture.pend(8192 + n) }
        #expect(fixture.redistributor.highestPriorityPending() == nil, "disabled LPIs are pending, not deliverable")
        for n in 0 ..< 10_000 as Range<UInt32> { fixture.configure(8192 + n, priority: n == 5000 ? 0x10 : 0x80) }
        fixture.write(Offset.invlpir, 9000)
        #expect(fixture.redistributor.highestPriorityPending() == INTID(9000))
        #expect(fixture.sink.notified.count == 1)
        // INVALLR with a budget smaller than the LPIs: Busy until background work finishes.
        fixture.redistributor.mmioWrite(offset: Offset.invallr, width: .doubleword, value: 0, memory: fixture.memory,
                                        sink: &fixture.sink, workBudget: 3000)
        #expect(fixture.read(Offset.syncr, width: .word) == 1)
        var rounds = 0
        while fixture.redistributor.performPendingWork(budget: 3000, memory: fixture.memory, sink: &fixture.sink) {
            rounds += 1
        }
        #expect(rounds == 2)
        #expect(fixture.read(Offset.syncr, width: .word) == 0)
        #expect(fixture.redistributor.deliverableCount == 10_000)
        #expect(fixture.redistributor.highestPriorityPending() == INTID(8192 + 5000))
        // The virtual forms are not implemented.
        #expect(fixture.write(Offset.invlpir, 1 << 63 | 8192) == .unsupportedRequest)
        #expect(fixture.write(Offset.invallr, 1 << 63) == .unsupportedRequest)
    }
}

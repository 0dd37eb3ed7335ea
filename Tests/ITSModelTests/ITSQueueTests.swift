import Testing
@testable import ITSModel

/// The command queue: wraparound, stalls, budgets, CWRITER checks (IHI 0069, 12.19).
@Suite struct ITSQueueTests {
    @Test func theQueueWrapsAround() {
        var driver = GuestDriver(queuePages: 1)     // 128 commands
        driver.run(GuestDriver.mapc(0, vcpu: 0))
        driver.run(GuestDriver.mapd(1))
        for intid: UInt32 in 8192 ..< 8192 + 256 { driver.configure(intid) }
        // 300 commands through a 128-entry ring, in batches that straddle the end.
        for round in 0 ..< 3 {
            for event in 0 ..< 100 {
                driver.enqueue(GuestDriver.mapti(1, UInt32(event), intid: 8192 + UInt32(round * 100 + event) % 256, collection: 0))
            }
            driver.flush()
            #expect(driver.gic.its.creadr == driver.gic.its.cwriter)
        }
        #expect(driver.gic.its.counters.commandsProcessed == 302)
        #expect(driver.gic.its.creadr == (302 * 32) % 4096)
        #expect(driver.gic.its.events.count == 100)
        #expect(driver.gic.its.events.load(driver.gic.its.eventKey(DeviceID(1), EventID(99)))?.intid == INTID(8192 + 299 % 256))
    }

    // A guest-memory fault stalls the queue with CREADR.Stalled until CWRITER is written with Retry.
    @Test func aMemoryFaultStallsUntilRetry() {
        var driver = GuestDriver()
        driver.run(GuestDriver.mapc(0, vcpu: 0))
        let unbacked = GuestAddress(0x4000_0000)
        driver.run(GuestDriver.mapd(2, itt: unbacked))
        driver.configure(8192)
        driver.enqueue(GuestDriver.mapti(2, 0, intid: 8192, collection: 0))
        driver.enqueue(GuestDriver.int(2, 0))
        driver.flush()
        let stalledAt = driver.gic.its.creadr
        #expect(driver.gic.its.stalled)
        let creadr = try! driver.gic.readITS(ITS.Offset.creadr).get()
        #expect(creadr == stalledAt | 1, "CREADR.Stalled reads 1")
        #expect(driver.gic.its.lastStallFault?.address == unbacked)
        #expect(driver.gic.its.counters.stalls == 1)
        // Writing CWRITER without Retry does not restart; backing the ITT and retrying does.
        driver.flush()
        #expect(driver.gic.its.stalled && driver.gic.its.creadr == stalledAt)
        driver.memory.addRegion(base: unbacked, size: 0x1_0000)
        driver.flush(retry: true)
        #expect(!driver.gic.its.stalled && driver.gic.its.creadr == driver.gic.its.cwriter)
        #expect(driver.drain(0) == [8192])
    }

    @Test func aQueueOutsideGuestMemoryStalls() {
        var driver = GuestDriver(enableITS: false)
        driver.gic.writeITS(ITS.Offset.cbaser, 1 << 63 | 0x7000_0000)
        driver.gic.writeITS(ITS.Offset.ctlr, 1, width: .word)
        driver.gic.writeITS(ITS.Offset.cwriter, 64)
        #expect(driver.gic.its.stalled && driver.gic.its.creadr == 0)
    }

    // CWRITER offsets beyond the queue are ignored (KVM).
    @Test func cwriterBeyondTheQueueIsIgnored() {
        var driver = GuestDriver(queuePages: 1)
        #expect(driver.gic.writeITS(ITS.Offset.cwriter, 4096) == .unsupportedRequest)
        #expect(driver.gic.its.cwriter == 0 && driver.gic.its.counters.cwriterIgnored == 1)
        #expect(driver.gic.writeITS(ITS.Offset.cwriter, 4064) == nil)
    }

    // Work is budgeted: unmapping a device with many events takes several calls and holds CREADR.
    @Test func longCommandsAreBudgeted() {
        var driver = GuestDriver()
        driver.run(GuestDriver.mapc(0, vcpu: 0))
        driver.run(GuestDriver.mapd(3, eventBits: 16))
        for event in 0 ..< 5000 as Range<UInt32> {
            driver.enqueue(GuestDriver.mapti(3, event, intid: 8192 + event, collection: 0))
            if event % 100 == 99 { driver.flush() }
        }
        #expect(driver.gic.its.events.count == 5000)
        driver.run(GuestDriver.mapd(3, valid: false), budget: 1000)
        let before = driver.gic.its.creadr
        #expect(driver.gic.its.hasPendingWork)
        #expect(before != driver.gic.its.cwriter, "CREADR waits for the command to finish")
        var rounds = 0
        while driver.gic.runPendingWork(budget: 1000, rounds: 1) { rounds += 1 }
        #expect(rounds >= 3)
        #expect(driver.gic.its.creadr == driver.gic.its.cwriter)
        #expect(driver.gic.its.events.isEmpty && driver.gic.redistributor(VCPUIndex(0)).lpis.isEmpty)
    }

    // A hostile queue full of commands is processed a budget at a time.
    @Test func aFullQueueIsProcessedABudgetAtATime() {
        var driver = GuestDriver(queuePages: 16)   // 2048 commands
        for _ in 0 ..< 2047 { driver.enqueue(GuestDriver.sync(vcpu: 0)) }
        driver.flush(budget: 500)
        #expect(driver.gic.its.counters.commandsProcessed == 500)
        let moreAfterTwoRounds = driver.gic.runPendingWork(budget: 500, rounds: 2)
        #expect(moreAfterTwoRounds)
        let moreAfterFour = driver.gic.runPendingWork(budget: 500, rounds: 2)
        #expect(!moreAfterFour)
        #expect(driver.gic.its.counters.commandsProcessed == 2047)
    }

    // With GITS_CTLR.Enabled 0 nothing is processed and TRANSLATER writes are ignored.
    @Test func aDisabledITSProcessesNothing() {
        var driver = GuestDriver()
        driver.run(GuestDriver.mapc(0, vcpu: 0))
        driver.run(GuestDriver.mapd(1))
        driver.configure(8192)
        driver.run(GuestDriver.mapti(1, 0, intid: 8192, collection: 0))
        driver.gic.inject(DeviceID(1), EventID(0))
        #expect(driver.drain(0) == [8192] && !driver.gic.its.translationCache.isEmpty)
        driver.gic.writeITS(ITS.Offset.ctlr, 0, width: .word)
        #expect(driver.gic.its.translationCache.isEmpty, "disabling invalidates the cache")
        driver.run(GuestDriver.int(1, 0))
        #expect(driver.gic.its.creadr != driver.gic.its.cwriter)
        driver.gic.writeITS(ITS.Offset.translater, 0, width: .word, deviceID: DeviceID(1))
        #expect(driver.drain(0) == [])
        #expect(driver.gic.its.counters.translaterWritesIgnored == 1)
        // Enabling processes what was queued.
        driver.gic.writeITS(ITS.Offset.ctlr, 1, width: .word)
        #expect(driver.drain(0) == [8192])
    }

    // Two-level (Indirect) Device tables: a DeviceID whose level-1 entry is invalid is out of range.
    @Test func twoLevelDeviceTables() throws {
        var driver = GuestDriver(deviceIDBits: 20, twoLevelDeviceTable: true)
        driver.run(GuestDriver.mapc(0, vcpu: 0))
        driver.configure(8192)
        let perPage: UInt32 = 65536 / 8
        driver.run(GuestDriver.mapd(3 * perPage + 5))
        #expect(driver.errors(0x01_0801) == 1, "no level-2 page yet")
        driver.provideLevel2Page(3)
        driver.run(GuestDriver.mapd(3 * perPage + 5, itt: GuestDriver.itt(of: 1)))
        driver.run(GuestDriver.mapti(3 * perPage + 5, 0, intid: 8192, collection: 0))
        #expect(driver.gic.inject(DeviceID(3 * perPage + 5), EventID(0)) == .success(ITS.Translation(intid: INTID(8192), vcpu: VCPUIndex(0))))
        let page = GuestDriver.level2Pages.adding(3 * 0x1_0000)!
        #expect(ITS.decodeDTE(try driver.memory.readUInt64(at: page.adding(5 * 8)!)) != nil)
        // A level-1 entry pointing outside guest memory stalls the MAPD.
        try driver.memory.writeUInt64(1 << 63 | 0x7000_0000, at: GuestDriver.deviceTable.adding(4 * 8)!)
        driver.run(GuestDriver.mapd(4 * perPage))
        #expect(driver.gic.its.stalled)
    }

    // DeviceIDs and EventIDs of 32 bits.
    @Test func thirtyTwoBitDeviceAndEventIDs() {
        var driver = GuestDriver(deviceIDBits: 32, eventIDBits: 32, twoLevelDeviceTable: true)
        driver.run(GuestDriver.mapc(0, vcpu: 1))
        driver.configure(8192)
        let device: UInt32 = 0xFFFF_FFF0
        // Level-1 index for this DeviceID exceeds the single level-1 page (8192 entries): out of range.
        driver.run(GuestDriver.mapd(device, eventBits: 32))
        #expect(driver.errors(0x01_0801) == 1)
        var wide = GuestDriver(deviceIDBits: 32, eventIDBits: 32)
        wide.run(GuestDriver.mapc(0, vcpu: 1))
        wide.configure(8192)
        wide.run(GuestDriver.mapd(60_000, eventBits: 32, itt: GuestAddress(0)))
        wide.run(GuestDriver.mapti(60_000, 0xFFFF_FFF0 >> 16, intid: 8192, collection: 0))
        #expect(wide.gic.inject(DeviceID(60_000), EventID(0xFFFF_FFF0 >> 16)) == .success(ITS.Translation(intid: INTID(8192), vcpu: VCPUIndex(1))))
        #expect(wide.gic.its.typer >> 8 & 0x1F == 31 && wide.gic.its.typer >> 13 & 0x1F == 31)
    }

    // IHI 0069 5.3.15: SYNC makes earlier commands' effects visible, so it waits for an INVALL's
    // re-reading, which runs as the redistributor's background work.
    @Test func syncWaitsForInvallToFinish() {
        var driver = GuestDriver(queuePages: 128)
        let count: UInt32 = 5000
        for index in 0 ..< count { driver.configure(8192 + index, enabled: false) }
        driver.run(GuestDriver.mapc(0, vcpu: 0))
        driver.run(GuestDriver.mapd(5, eventBits: 13))
        for index in 0 ..< count { driver.enqueue(GuestDriver.mapti(5, index, intid: 8192 + index, collection: 0)) }
        for index in 0 ..< count { driver.enqueue(GuestDriver.int(5, index)) }
        driver.flush(budget: .max)
        for index in 0 ..< count { driver.configure(8192 + index, enabled: true) }
        // A stream of INVALLs costs one unit each; the SYNC behind them holds CREADR.
        for _ in 0 ..< 100 { driver.enqueue(GuestDriver.invall(0)) }
        driver.enqueue(GuestDriver.sync(vcpu: 0))
        driver.flush(budget: 1000)
        #expect(driver.gic.its.counters.commandsProcessed == UInt64(2 + 2 * count + 100), "INVALLs done, SYNC waiting")
        #expect(driver.gic.its.creadr != driver.gic.its.cwriter)
        #expect(driver.gic.readRedistributor(VCPUIndex(0), Redistributor.Offset.syncr, width: .word) == .success(1))
        driver.gic.runPendingWork(budget: 1000)
        #expect(driver.gic.its.creadr == driver.gic.its.cwriter, "SYNC completed after the sweep")
        #expect(driver.drain(0).count == Int(count))
    }

    // MOVALL is charged one unit per LPI it moves, so a queue of MOVALLs cannot hold the caller.
    @Test func movallIsChargedPerLPIMoved() {
        var driver = GuestDriver(vcpus: 2, queuePages: 16)
        for index: UInt32 in 0 ..< 3000 {
            driver.configure(8192 + index)
            driver.gic.writeRedistributor(VCPUIndex(0), Redistributor.Offset.setlpir, UInt64(8192 + index))
        }
        for round in 0 ..< 10 { driver.enqueue(GuestDriver.movall(from: UInt64(round % 2), to: UInt64(1 - round % 2))) }
        driver.flush(budget: 4000)
        #expect(driver.gic.its.counters.commandsProcessed == 2, "3000 + 3000 units: the budget ends after two")
        driver.gic.runPendingWork(budget: 4000)
        #expect(driver.gic.its.counters.commandsProcessed == 10)
        #expect(driver.drain(0).count == 3000 && driver.drain(1).isEmpty)
    }
}

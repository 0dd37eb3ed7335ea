import Testing
@testable import ITSModel

/// Every ITS command with its normal and error cases (IHI 0069, 5.3 and 6.2).
@Suite struct ITSCommandTests {
    /// A driver with collection 0 -> vCPU 0, collection 1 -> vCPU 1, device 5 (256 events) and
    /// event 5/1 -> LPI 8200 in collection 0.
    func mapped() -> GuestDriver {
        var driver = GuestDriver()
        for intid: UInt32 in 8192 ..< 8300 { driver.configure(intid) }
        driver.run(GuestDriver.mapc(0, vcpu: 0))
        driver.run(GuestDriver.mapc(1, vcpu: 1))
        driver.run(GuestDriver.mapd(5))
        driver.run(GuestDriver.mapti(5, 1, intid: 8200, collection: 0))
        #expect(driver.gic.its.counters.totalCommandErrors == 0)
        return driver
    }

    // 5.3.9 MAPD: writes the DTE; errors E_ITS_MAPD_DEVICE_OOR, E_ITS_MAPD_ITTSIZE_OOR.
    @Test func mapdWritesTheDeviceTableAndChecksItsParameters() throws {
        var driver = GuestDriver(deviceIDBits: 20, eventIDBits: 10)
        driver.run(GuestDriver.mapd(9, eventBits: 10))
        let dte = try driver.memory.readUInt64(at: GuestDriver.deviceTable.adding(9 * 8)!)
        #expect(ITS.decodeDTE(dte)?.0 == ITS.DeviceMapping(ittAddress: GuestDriver.itt(of: 9), eventIDBits: 10))
        driver.run(GuestDriver.mapd(9, eventBits: 11))                 // beyond GITS_TYPER.IDbits
        #expect(driver.errors(0x01_0802) == 1)
        driver.run(GuestDriver.mapd(1 << 20))                          // beyond GITS_TYPER.Devbits
        driver.run(GuestDriver.mapd(65536))                            // beyond the 8 x 64K flat table
        #expect(driver.errors(0x01_0801) == 2)
        driver.run(GuestDriver.mapd(9, valid: false))
        #expect(try driver.memory.readUInt64(at: GuestDriver.deviceTable.adding(9 * 8)!) == 0)
        #expect(driver.gic.its.devices.isEmpty)
    }

    // MAPD V=0 drops every event of the device and its pending LPIs: no ghost delivery, no stale ITE.
    @Test func unmappingADeviceDropsItsEventsAndPendingLPIs() throws {
        var driver = mapped()
        driver.run(GuestDriver.mapti(5, 2, intid: 8201, collection: 1))
        driver.run(GuestDriver.int(5, 1))
        driver.run(GuestDriver.int(5, 2))
        #expect(driver.gic.redistributor(VCPUIndex(0)).isPending(INTID(8200)))
        driver.run(GuestDriver.mapd(5, valid: false))
        #expect(driver.drain(0) == [] && driver.drain(1) == [])
        #expect(driver.gic.its.events.isEmpty)
        #expect(driver.gic.redistributor(VCPUIndex(0)).lpis.isEmpty && driver.gic.redistributor(VCPUIndex(1)).lpis.isEmpty)
        #expect(try driver.memory.readUInt64(at: GuestDriver.itt(of: 5).adding(8)!) == 0, "the ITE is zeroed")
        #expect(driver.gic.inject(DeviceID(5), EventID(1)) == .failure(.unmappedDevice))
    }

    // A second MAPD V=1 replaces the mapping: the old events go, the new ITT applies.
    @Test func remappingADeviceReplacesIt() {
        var driver = mapped()
        driver.run(GuestDriver.mapd(5, eventBits: 4, itt: GuestDriver.itt(of: 40)))
        #expect(driver.gic.inject(DeviceID(5), EventID(1)) == .failure(.unmappedEvent))
        #expect(driver.gic.its.devices.load(5) == ITS.DeviceMapping(ittAddress: GuestDriver.itt(of: 40), eventIDBits: 4))
        driver.run(GuestDriver.mapti(5, 16, intid: 8210, collection: 0))
        #expect(driver.errors(0x01_0A05) == 1, "EventID 16 >= 2^(Size+1) = 16: E_ITS_MAPTI_ID_OOR")
    }

    // 5.3.10 MAPC: errors E_ITS_MAPC_PROCNUM_OOR, E_ITS_MAPC_COLLECTION_OOR; the CTE is written.
    @Test func mapcChecksTargetAndTableAndWritesTheCollectionTable() throws {
        var driver = GuestDriver(vcpus: 2)
        driver.run(GuestDriver.mapc(3, vcpu: 2))
        #expect(driver.errors(0x01_0902) == 1)
        driver.run(GuestDriver.mapc(512, vcpu: 0))                      // one 4K page holds 512 CTEs
        #expect(driver.errors(0x01_0903) == 1)
        driver.run(GuestDriver.mapc(3, vcpu: 1))
        let cte = try driver.memory.readUInt64(at: GuestDriver.collectionTable.adding(3 * 8)!)
        #expect(ITS.decodeCTE(cte)?.rdbase == 1)
    }

    // MAPC retargeting a collection moves its LPIs with their pending state (KVM); V=0 unmaps them.
    @Test func mapcMovesAndUnmapsACollectionsLPIs() {
        var driver = mapped()
        driver.run(GuestDriver.int(5, 1))
        driver.run(GuestDriver.mapc(0, vcpu: 2))
        #expect(driver.drain(0) == [])
        #expect(driver.drain(2) == [8200])
        #expect(driver.gic.inject(DeviceID(5), EventID(1)) == .success(ITS.Translation(intid: INTID(8200), vcpu: VCPUIndex(2))))
        driver.run(GuestDriver.mapc(0, vcpu: 0, valid: false))
        #expect(driver.drain(2) == [], "unmapping the collection drops its pending LPIs")
        #expect(driver.gic.inject(DeviceID(5), EventID(1)) == .failure(.unmappedCollection))
        // MAPTI into an unmapped collection is allowed; mapping the collection later routes it.
        driver.run(GuestDriver.mapti(5, 9, intid: 8209, collection: 7))
        driver.run(GuestDriver.mapc(7, vcpu: 3))
        driver.run(GuestDriver.int(5, 9))
        #expect(driver.drain(3) == [8209])
    }

    // 5.3.11 MAPTI and 5.3.12 MAPI: errors for unmapped device, EventID, pINTID and ICID range.
    @Test func maptiAndMapiCheckEveryParameter() throws {
        var driver = mapped()
        driver.run(GuestDriver.mapti(6, 0, intid: 8192, collection: 0))
        #expect(driver.errors(0x01_0A04) == 1, "E_ITS_MAPTI_UNMAPPED_DEVICE")
        driver.run(GuestDriver.mapti(5, 256, intid: 8192, collection: 0))
        #expect(driver.errors(0x01_0A05) == 1, "E_ITS_MAPTI_ID_OOR")
        driver.run(GuestDriver.mapti(5, 0, intid: 8191, collection: 0))
        driver.run(GuestDriver.mapti(5, 0, intid: 65536, collection: 0))
        #expect(driver.errors(0x01_0A06) == 2, "E_ITS_MAPTI_PHYSICALID_OOR")
        driver.run(GuestDriver.mapti(5, 0, intid: 8192, collection: 600))
        #expect(driver.errors(0x01_0A03) == 1, "ICID beyond the Collection table")
        driver.run(GuestDriver.mapi(5, 8250, collection: 1))
        #expect(driver.errors(0x01_0B05) == 1, "MAPI's EventID is its pINTID and must fit the ITT")
        driver.run(GuestDriver.mapd(8, eventBits: 16))
        driver.run(GuestDriver.mapi(8, 8250, collection: 1))
        driver.run(GuestDriver.int(8, 8250))
        #expect(driver.drain(1) == [8250])
        let ite = try driver.memory.readUInt64(at: GuestDriver.itt(of: 8).adding(8250 * 8)!)
        #expect(ITS.decodeITE(ite)?.0 == ITS.EventMapping(intid: INTID(8250), collection: CollectionID(1)))
    }

    @Test func maptiOverAMappedEventReplacesItsLPI() {
        var driver = mapped()
        driver.run(GuestDriver.int(5, 1))
        driver.run(GuestDriver.mapti(5, 1, intid: 8201, collection: 1))
        #expect(driver.drain(0) == [], "the old LPI's pending state goes with its mapping")
        driver.run(GuestDriver.int(5, 1))
        #expect(driver.drain(1) == [8201])
    }

    // 5.3.13 MOVI: the pending LPI moves to the new target; errors for unmapped event or collection.
    @Test func moviMovesPendingStateAndChecksCollections() {
        var driver = mapped()
        driver.run(GuestDriver.int(5, 1))
        driver.run(GuestDriver.movi(5, 1, collection: 1))
        #expect(driver.drain(0) == [])
        #expect(driver.drain(1) == [8200])
        #expect(driver.gic.inject(DeviceID(5), EventID(1)) == .success(ITS.Translation(intid: INTID(8200), vcpu: VCPUIndex(1))))
        driver.run(GuestDriver.movi(5, 2, collection: 1))
        #expect(driver.errors(0x01_0107) == 1, "E_ITS_MOVI_UNMAPPED_INTERRUPT")
        driver.run(GuestDriver.movi(5, 1, collection: 9))
        #expect(driver.errors(0x01_0109) == 1, "E_ITS_MOVI_UNMAPPED_COLLECTION")
    }

    // 5.3.4 DISCARD: clears pending and the mapping; error E_ITS_DISCARD_UNMAPPED_INTERRUPT.
    @Test func discardClearsPendingAndTheITE() throws {
        var driver = mapped()
        driver.run(GuestDriver.int(5, 1))
        driver.run(GuestDriver.discard(5, 1))
        #expect(driver.drain(0) == [])
        #expect(try driver.memory.readUInt64(at: GuestDriver.itt(of: 5).adding(8)!) == 0)
        #expect(driver.gic.inject(DeviceID(5), EventID(1)) == .failure(.unmappedEvent))
        driver.run(GuestDriver.discard(5, 1))
        #expect(driver.errors(0x01_0F07) == 1)
    }

    // 5.3.5 INT and 5.3.3 CLEAR, with their unmapped-interrupt errors; INT that finds nothing is blocked.
    @Test func intAndClear() {
        var driver = mapped()
        driver.run(GuestDriver.int(5, 1))
        driver.run(GuestDriver.clear(5, 1))
        #expect(driver.drain(0) == [])
        driver.run(GuestDriver.int(5, 77))
        #expect(driver.errors(0x01_0307) == 1)
        #expect(driver.gic.its.counters.translationsBlocked == 1)
        driver.run(GuestDriver.clear(5, 77))
        #expect(driver.errors(0x01_0507) == 1)
        driver.run(GuestDriver.int(5, 300))
        #expect(driver.errors(0x01_0305) == 1, "EventID beyond the ITT")
    }

    // 5.3.6 INV and 5.3.7 INVALL re-read configuration; errors for unmapped event or collection.
    @Test func invAndInvallRereadConfiguration() {
        var driver = mapped()
        driver.configure(8200, priority: 0x10, enabled: false)
        driver.run(GuestDriver.int(5, 1))
        #expect(driver.drain(0) == [8200], "cached configuration until INV")
        driver.run(GuestDriver.inv(5, 1))
        driver.run(GuestDriver.int(5, 1))
        #expect(driver.drain(0) == [])
        driver.configure(8200, priority: 0x10, enabled: true)
        driver.run(GuestDriver.invall(0))
        driver.gic.runPendingWork()
        #expect(driver.drain(0) == [8200])
        driver.run(GuestDriver.inv(5, 2))
        #expect(driver.errors(0x01_0C07) == 1)
        driver.run(GuestDriver.invall(9))
        #expect(driver.errors(0x01_0D09) == 1)
        driver.run(GuestDriver.invall(600))
        #expect(driver.errors(0x01_0D03) == 1)
    }

    // 5.3.8 MOVALL: pending LPIs move between redistributors; error E_ITS_MOVALL_PROCNUM_OOR.
    @Test func movallMovesPendingLPIs() {
        var driver = mapped()
        driver.run(GuestDriver.int(5, 1))
        driver.run(GuestDriver.mapc(0, vcpu: 0))
        driver.run(GuestDriver.movall(from: 0, to: 3))
        #expect(driver.drain(0) == [])
        #expect(driver.drain(3) == [8200])
        driver.run(GuestDriver.movall(from: 0, to: 4))
        #expect(driver.errors(0x01_0E01) == 1)
    }

    // 5.3.15 SYNC completes at once; GICv4 and unknown command numbers are skipped and counted.
    @Test func syncVirtualAndUnknownCommands() {
        var driver = mapped()
        driver.run(GuestDriver.sync(vcpu: 0))
        driver.send(0x2A)           // VMAPTI
        driver.send(0x22)           // VMOVP
        driver.send(0x07)
        driver.send(0xFF)
        #expect(driver.gic.its.counters.virtualCommands == 2)
        #expect(driver.gic.its.counters.unknownCommands == 2)
        #expect(driver.gic.its.creadr == driver.gic.its.cwriter)
    }

    // The guest decides how many devices and events it maps; both are capped (host memory).
    @Test func mappingsAreCapped() {
        var driver = GuestDriver(maximumDevices: 2, maximumEvents: 3)
        driver.run(GuestDriver.mapc(0, vcpu: 0))
        driver.run(GuestDriver.mapd(1))
        driver.run(GuestDriver.mapd(2))
        driver.run(GuestDriver.mapd(3))
        #expect(driver.gic.its.devices.count == 2)
        driver.run(GuestDriver.mapd(2, eventBits: 4))                   // remapping a mapped device is fine
        for event: UInt32 in 0 ..< 4 { driver.run(GuestDriver.mapti(1, event, intid: 8192 + event, collection: 0)) }
        #expect(driver.gic.its.events.count == 3)
        driver.run(GuestDriver.mapti(1, 2, intid: 8300, collection: 0))  // replacing a mapped event is fine
        #expect(driver.gic.its.events.load(driver.gic.its.eventKey(DeviceID(1), EventID(2)))?.intid == INTID(8300))
        #expect(driver.gic.its.counters.mappingLimitReached == 2)
        #expect(driver.gic.its.creadr == driver.gic.its.cwriter)
    }
}

import Testing
@testable import ITSModel

/// The ITS register frame (IHI 0069, 12.19).
@Suite struct ITSRegisterTests {
    typealias Offset = ITS.Offset

    // 12.19.15 GITS_TYPER.
    @Test func typerDescribesTheITS() {
        var driver = GuestDriver(deviceIDBits: 20, eventIDBits: 12, enableITS: false)
        let typer = try! driver.gic.readITS(Offset.typer).get()
        #expect(typer & 1 == 1, "Physical")
        #expect(typer & 2 == 0, "Virtual")
        #expect((typer >> 4) & 0xF == 7, "ITT_entry_size: 8 bytes")
        #expect((typer >> 8) & 0x1F == 11, "IDbits: EventID bits - 1")
        #expect((typer >> 13) & 0x1F == 19, "Devbits: DeviceID bits - 1")
        #expect((typer >> 19) & 1 == 0, "PTA = 0: RDbase is a processor number")
        #expect((typer >> 24) & 0xFF == 0, "HCC")
        #expect((typer >> 32) & 0xF == 15 && (typer >> 36) & 1 == 1, "CIDbits 15 with CIL: 16-bit ICIDs")
        let high = try! driver.gic.readITS(Offset.typer + 4, width: .word).get()
        #expect(high == typer >> 32)
        #expect(driver.gic.writeITS(Offset.typer, 0) == .readOnly)
    }

    // 12.19.6 GITS_CTLR: Enabled, Quiescent; enabling needs Valid CBASER and tables (KVM).
    @Test func ctlrEnablesOnlyWithValidTablesAndReportsQuiescence() {
        var driver = GuestDriver(enableITS: false)
        #expect(try! driver.gic.readITS(Offset.ctlr, width: .word).get() == 1 << 31, "disabled and quiescent")
        driver.gic.writeITS(Offset.baser0 + 8, 0)
        #expect(driver.gic.writeITS(Offset.ctlr, 1, width: .word) == .lockedInCurrentState)
        #expect(!driver.gic.its.enabled)
        driver.gic.writeITS(Offset.baser0 + 8, 1 << 63 | GuestDriver.collectionTable.rawValue)
        #expect(driver.gic.writeITS(Offset.ctlr, 1, width: .word) == nil)
        #expect(try! driver.gic.readITS(Offset.ctlr, width: .word).get() == 1, "enabled: not quiescent")
    }

    // 12.19.2 GITS_CBASER: writing it resets CREADR; ignored while enabled.
    @Test func cbaserResetsTheQueueAndIsLockedWhileEnabled() {
        var driver = GuestDriver()
        driver.run(GuestDriver.sync(vcpu: 0))
        #expect(driver.gic.its.creadr == 32)
        #expect(driver.gic.writeITS(Offset.cbaser, 1 << 63 | 0x10_0000) == .lockedInCurrentState)
        driver.gic.writeITS(Offset.ctlr, 0, width: .word)
        driver.gic.writeITS(Offset.cbaser, 1 << 63 | GuestDriver.commandQueue.rawValue | 3 | 0xFFF << 52 & ~(0x7 << 56))
        #expect(driver.gic.its.creadr == 0 && driver.gic.its.cwriter == 0)
        let cbaser = try! driver.gic.readITS(Offset.cbaser).get()
        #expect(cbaser & ITS.cbaserWritable == cbaser, "reserved bits read as zero")
        #expect(cbaser & 0xFF == 3)
    }

    // 12.19.1 GITS_BASER<n>: Type and Entry_Size are read-only; BASER2..7 are RAZ/WI.
    @Test func basersKeepReadOnlyFields() {
        var driver = GuestDriver(enableITS: false)
        driver.gic.writeITS(Offset.baser0, 0xFFFF_FFFF_FFFF_FFFF)
        let device = try! driver.gic.readITS(Offset.baser0).get()
        #expect((device >> 56) & 7 == 1 && (device >> 48) & 0x1F == 7, "Type Device, Entry_Size 8")
        #expect(device >> 62 & 1 == 1, "the Device table may be two-level")
        driver.gic.writeITS(Offset.baser0 + 8, 0xFFFF_FFFF_FFFF_FFFF)
        let collection = try! driver.gic.readITS(Offset.baser0 + 8).get()
        #expect((collection >> 56) & 7 == 4 && collection >> 62 & 1 == 0, "Type Collection, flat only")
        for n in 2 ..< 8 {
            driver.gic.writeITS(Offset.baser0 + UInt64(n) * 8, 0xFFFF_FFFF_FFFF_FFFF)
            #expect(try! driver.gic.readITS(Offset.baser0 + UInt64(n) * 8).get() == 0)
        }
        // 64K pages keep PA[51:48] in bits [15:12].
        let geometry = ITS.geometry(of: 1 << 63 | 2 << 8 | 0x0000_1234_5670_0000 | 0xA << 12 | 3)
        #expect(geometry?.base == GuestAddress(0x000A_1234_5670_0000) && geometry?.bytes == 4 * 65536)
        driver.gic.writeITS(Offset.baser0 + 8, 1 << 63 | GuestDriver.collectionTable.rawValue)
        driver.gic.writeITS(Offset.baser0, 1 << 63 | GuestDriver.deviceTable.rawValue)
        driver.gic.writeITS(Offset.ctlr, 1, width: .word)
        #expect(driver.gic.writeITS(Offset.baser0, 0) == .lockedInCurrentState)
    }

    // 12.19.5 GITS_CREADR is read-only; 12.19.3 CWRITER reads back its offset.
    @Test func creadrIsReadOnlyAndCwriterReadsBack() {
        var driver = GuestDriver()
        #expect(driver.gic.writeITS(Offset.creadr, 64) == .readOnly)
        driver.gic.writeITS(Offset.cwriter, 0)
        driver.send(0x05)
        #expect(try! driver.gic.readITS(Offset.cwriter).get() == 32)
        #expect(try! driver.gic.readITS(Offset.creadr).get() == 32)
    }

    // 12.19.18 GITS_TRANSLATER in the second 64K frame: 16- and 32-bit writes, a DeviceID required.
    @Test func translaterTakesTheCallersDeviceID() {
        var driver = GuestDriver()
        driver.configure(8192)
        driver.run(GuestDriver.mapc(0, vcpu: 2))
        driver.run(GuestDriver.mapd(4))
        driver.run(GuestDriver.mapti(4, 6, intid: 8192, collection: 0))
        #expect(driver.gic.writeITS(Offset.translater, 6, width: .word) == .unsupportedRequest, "no DeviceID")
        #expect(driver.gic.writeITS(Offset.translater, 6, width: .halfword, deviceID: DeviceID(4)) == nil)
        #expect(driver.drain(2) == [8192])
        #expect(driver.gic.writeITS(Offset.translater, 6, width: .doubleword, deviceID: DeviceID(4)) == .unsupportedWidth)
        #expect(driver.gic.readITS(Offset.translater, width: .word) == .failure(.writeOnly))
        #expect(try! driver.gic.readITS(Offset.pidr2, width: .word).get() == 0x3B)
        #expect(driver.gic.readITS(0x1_0000, width: .word) == .failure(.unimplementedOffset))
    }

    // EnableLPIs 1 -> 0 at a redistributor invalidates the ITS's translations.
    @Test func disablingLPIsInvalidatesTranslations() {
        var driver = GuestDriver()
        driver.configure(8192)
        driver.run(GuestDriver.mapc(0, vcpu: 0))
        driver.run(GuestDriver.mapd(4))
        driver.run(GuestDriver.mapti(4, 6, intid: 8192, collection: 0))
        driver.gic.inject(DeviceID(4), EventID(6))
        #expect(driver.gic.its.translationCache.count == 1)
        driver.gic.writeRedistributor(VCPUIndex(0), Redistributor.Offset.ctlr, 0, width: .word)
        #expect(driver.gic.its.translationCache.isEmpty)
        driver.gic.inject(DeviceID(4), EventID(6))
        #expect(driver.gic.redistributor(VCPUIndex(0)).counters.lpisDroppedDisabled == 1)
    }
}

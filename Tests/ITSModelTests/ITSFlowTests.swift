import Testing
@testable import ITSModel

/// The guest-driver flow of the issue, end to end through guest memory and MMIO.
@Test func guestDriverFlowMapInvInvallUnmapRemap() {
    var driver = GuestDriver()
    driver.configure(8192, priority: 0xA0)
    driver.run(GuestDriver.mapc(0, vcpu: 1))
    driver.run(GuestDriver.mapd(7))
    driver.run(GuestDriver.mapti(7, 3, intid: 8192, collection: 0))
    driver.run(GuestDriver.sync(vcpu: 1))
    #expect(driver.gic.its.creadr == driver.gic.its.cwriter)
    #expect(driver.gic.its.counters.totalCommandErrors == 0)

    // INT delivers.
    driver.run(GuestDriver.int(7, 3))
    #expect(driver.drain(1) == [8192])

    // Disable in the configuration table and INV: INT delivers nothing.
    driver.configure(8192, priority: 0xA0, enabled: false)
    driver.run(GuestDriver.inv(7, 3))
    driver.run(GuestDriver.int(7, 3))
    #expect(driver.drain(1) == [])

    // Enable and INVALL: the pending LPI arrives.
    driver.configure(8192, priority: 0xA0, enabled: true)
    driver.run(GuestDriver.invall(0))
    driver.gic.runPendingWork()
    #expect(driver.drain(1) == [8192])

    // An MSI through GITS_TRANSLATER with the DeviceID the VMM supplies.
    driver.gic.writeITS(ITS.Offset.translater, 3, width: .word, deviceID: DeviceID(7))
    #expect(driver.drain(1) == [8192])

    // MAPD V=0: INT and MSIs deliver nothing.
    driver.run(GuestDriver.mapd(7, valid: false))
    driver.run(GuestDriver.int(7, 3))
    #expect(driver.gic.inject(DeviceID(7), EventID(3)) == .failure(.unmappedDevice))
    #expect(driver.drain(1) == [])
    #expect(driver.errors(0x01_0304) == 1, "INT to an unmapped device: E_ITS_INT_UNMAPPED_DEVICE")

    // Map again: it works.
    driver.run(GuestDriver.mapd(7))
    driver.run(GuestDriver.mapti(7, 3, intid: 8192, collection: 0))
    #expect(driver.gic.inject(DeviceID(7), EventID(3)) == .success(ITS.Translation(intid: INTID(8192), vcpu: VCPUIndex(1))))
    #expect(driver.drain(1) == [8192])
    #expect(driver.gic.its.counters.translationsBlocked == 2)
}

/// A batch of MSIs: the translated ones become pending, the others are blocked and counted.
@Test func injectBatchTranslatesThenSetsPending() {
    var driver = GuestDriver()
    for intid: UInt32 in 8192 ..< 8196 { driver.configure(intid) }
    driver.run(GuestDriver.mapc(0, vcpu: 2))
    driver.run(GuestDriver.mapd(3))
    for event: UInt32 in 0 ..< 4 { driver.run(GuestDriver.mapti(3, event, intid: 8192 + event, collection: 0)) }
    let devices = [DeviceID(3), DeviceID(3), DeviceID(4), DeviceID(3), DeviceID(3)]
    let events = [EventID(0), EventID(2), EventID(0), EventID(9), EventID(2)]
    var scratch: [ITS.Translation] = []
    let translated = devices.withUnsafeBufferPointer { d in
        events.withUnsafeBufferPointer { e in driver.gic.injectBatch(devices: d, events: e, translations: &scratch) }
    }
    #expect(translated == 3)
    #expect(driver.gic.its.counters.translationsBlocked == 2)
    #expect(driver.gic.redistributor(VCPUIndex(2)).counters.lpisCoalesced == 1)
    #expect(driver.drain(2) == [8192, 8194])
}

/// The batch translation gives, pair for pair, what translating one pair at a time gives: the same
/// translations in order, the same counters and the same cache, over random pairs that hit, miss,
/// fill a small cache, name unmapped or out-of-range devices and events, and with the ITS disabled.
@Test(arguments: [UInt64(1), 2, 3, 0xBA7C4])
func batchTranslationMatchesPairByPair(seed: UInt64) {
    var rng = SplitMix64(seed: seed)
    var driver = GuestDriver.translationFixture()
    #expect(driver.gic.its.counters.totalCommandErrors == 0)
    for round in 0 ..< 40 {
        if round == 30 { driver.gic.writeITS(ITS.Offset.ctlr, 0, width: .word) }
        let count = Int.random(in: 0 ... 200, using: &rng)   // across the 64-pair chunks of translateEach
        let devices = (0 ..< count).map { _ in DeviceID(UInt32.random(in: 0 ..< 8, using: &rng) == 0 ? 300 : UInt32.random(in: 0 ..< 8, using: &rng)) }
        let events = (0 ..< count).map { _ in EventID(UInt32.random(in: 0 ..< 10, using: &rng) == 0 ? 260 : UInt32.random(in: 0 ..< 34, using: &rng)) }
        var single = driver.gic.its
        var expected: [ITS.Translation] = []
        for index in 0 ..< count {
            if case .success(let translation) = single.translate(devices[index], events[index]) { expected.append(translation) }
        }
        var batch = [ITS.Translation](repeating: ITS.Translation(intid: .spurious, vcpu: VCPUIndex(0)), count: count + 2)
        let written = devices.withUnsafeBufferPointer { d in
            events.withUnsafeBufferPointer { e in batch.withUnsafeMutableBufferPointer { driver.gic.its.translate(d, e, into: $0) } }
        }
        #expect(Array(batch.prefix(written)) == expected, "seed \(seed) round \(round)")
        #expect(batch.dropFirst(written).allSatisfy { $0.intid == .spurious }, "seed \(seed) round \(round): wrote past the count")
        #expect(driver.gic.its.counters == single.counters, "seed \(seed) round \(round)")
        #expect(driver.gic.its.translationCache.entries.map(\.key) == single.translationCache.entries.map(\.key),
                "seed \(seed) round \(round)")
    }
    #expect(driver.gic.its.counters.translationHits > 0 && driver.gic.its.counters.translationMisses > 0)
    #expect(driver.gic.its.counters.translationsBlocked > 0 && driver.gic.its.counters.translaterWritesIgnored > 0)
}

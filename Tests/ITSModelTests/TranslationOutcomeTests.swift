import Testing
@testable import ITSModel

/// ``ITS/translateEach(_:_:into:)`` gives, pair for pair, what ``ITS/translate(_:_:)`` gives one at
/// a time: which pairs translate, their translations in order, the same counters and the same
/// cache, over random pairs that hit, miss, fill a small cache, name unmapped or out-of-range
/// devices and events, and with the ITS disabled.
@Test(arguments: [UInt64(1), 2, 3, 0x0DD5])
func translateEachMatchesPairByPair(seed: UInt64) {
    var rng = SplitMix64(seed: seed)
    var driver = GuestDriver.translationFixture()
    #expect(driver.gic.its.counters.totalCommandErrors == 0)
    for round in 0 ..< 60 {
        if round == 45 { driver.gic.writeITS(ITS.Offset.ctlr, 0, width: .word) }
        let count = round == 0 ? 64 : Int.random(in: 0 ... 64, using: &rng)
        // Runs of one device, as a queue's completions come, among random ones.
        var devices: [DeviceID] = []
        while devices.count < count {
            let device = DeviceID(UInt32.random(in: 0 ..< 8, using: &rng) == 0 ? 300 : UInt32.random(in: 0 ..< 8, using: &rng))
            devices += Array(repeating: device, count: min(count - devices.count, Int.random(in: 1 ... 5, using: &rng)))
        }
        let events = (0 ..< count).map { _ in
            EventID(UInt32.random(in: 0 ..< 10, using: &rng) == 0 ? 260 : UInt32.random(in: 0 ..< 34, using: &rng))
        }
        var single = driver.gic.its
        var expectedOutcomes: UInt64 = 0
        var expected: [ITS.Translation] = []
        for index in 0 ..< count {
            if case .success(let translation) = single.translate(devices[index], events[index]) {
                expected.append(translation)
                expectedOutcomes |= 1 << UInt64(index)
            }
        }
        let unwritten = ITS.Translation(intid: .spurious, vcpu: VCPUIndex(0))
        var batch = [ITS.Translation](repeating: unwritten, count: 64)
        let outcomes = devices.withUnsafeBufferPointer { d in
            events.withUnsafeBufferPointer { e in batch.withUnsafeMutableBufferPointer { driver.gic.its.translateEach(d, e, into: $0) } }
        }
        #expect(outcomes == expectedOutcomes, "seed \(seed) round \(round)")
        #expect(Array(batch.prefix(expected.count)) == expected, "seed \(seed) round \(round)")
        #expect(batch.dropFirst(expected.count).allSatisfy { $0 == unwritten }, "seed \(seed) round \(round): wrote past the count")
        #expect(driver.gic.its.counters == single.counters, "seed \(seed) round \(round)")
        #expect(driver.gic.its.translationCache.entries.map(\.key) == single.translationCache.entries.map(\.key),
                "seed \(seed) round \(round)")
    }
    #expect(driver.gic.its.counters.translationHits > 0 && driver.gic.its.counters.translationMisses > 0)
    #expect(driver.gic.its.counters.translationsBlocked > 0 && driver.gic.its.counters.translaterWritesIgnored > 0)
}

/// The largest IDs the ITS's widths allow translate, one beyond them are blocked (the range checks
/// are masks in translateEach, shifts in translate).
@Test func translateEachRangeEdges() {
    var driver = GuestDriver(deviceIDBits: 8, eventIDBits: 8, cacheLimit: 24)
    driver.run(GuestDriver.mapc(0, vcpu: 0))
    driver.run(GuestDriver.mapd(255, eventBits: 8))
    driver.run(GuestDriver.mapti(255, 255, intid: 8300, collection: 0))
    let devices = [DeviceID(255), DeviceID(256), DeviceID(255), DeviceID(1 << 31)]
    let events = [EventID(255), EventID(255), EventID(256), EventID(255)]
    var batch = [ITS.Translation](repeating: ITS.Translation(intid: .spurious, vcpu: VCPUIndex(0)), count: 4)
    let outcomes = devices.withUnsafeBufferPointer { d in
        events.withUnsafeBufferPointer { e in batch.withUnsafeMutableBufferPointer { driver.gic.its.translateEach(d, e, into: $0) } }
    }
    #expect(outcomes == 0b0001)
    #expect(batch[0] == ITS.Translation(intid: INTID(8300), vcpu: VCPUIndex(0)))
    #expect(driver.gic.its.counters.translationsBlocked == 3)
}

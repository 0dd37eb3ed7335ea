import Testing
@testable import ITSModel

/// ``LocalRedistributors/setPending(_:)`` against ``LocalRedistributors/setPending(_:on:)`` one
/// translation at a time, from the same state: the same pending and deliverable LPIs, counters and
/// edges in the same order, over random batches longer and shorter than a run of
/// ``Redistributor/pendingBatchLimit`` that repeat LPIs within a run, name unmapped and
/// out-of-range INTIDs, LPIs that are disabled or at other priorities, and a redistributor with
/// EnableLPIs 0; the batch works on a copy, so its first write to each vCPU copies the LPI index.
@Test(arguments: [UInt64(1), 2, 3, 0x5E7B])
func batchedSetPendingMatchesOneAtATime(seed: UInt64) {
    var rng = SplitMix64(seed: seed)
    var driver = GuestDriver(vcpus: 4)
    for collection: UInt16 in 0 ..< 4 { driver.run(GuestDriver.mapc(collection, vcpu: UInt64(collection))) }
    for device: UInt32 in 0 ..< 3 { driver.run(GuestDriver.mapd(device, eventBits: 8)) }
    for n: UInt32 in 0 ..< 600 {
        driver.configure(8192 + n, priority: UInt8(truncatingIfNeeded: n * 36), enabled: n % 5 != 0)
        driver.run(GuestDriver.mapti(n / 200, n % 200, intid: 8192 + n, collection: UInt16(n % 4)))
    }
    driver.gic.writeRedistributor(VCPUIndex(3), Redistributor.Offset.ctlr, 0, width: .word)
    #expect(driver.gic.its.counters.totalCommandErrors == 0)
    var pendingSeen = 0
    for round in 0 ..< 30 {
        let count = [0, 1, 63, 64, 65, 200, 500][Int.random(in: 0 ..< 7, using: &rng)]
        let translations = (0 ..< count).map { _ -> ITS.Translation in
            let vcpu = VCPUIndex(UInt16.random(in: 0 ..< 4, using: &rng))
            switch UInt32.random(in: 0 ..< 20, using: &rng) {
            case 0: return ITS.Translation(intid: INTID(100), vcpu: vcpu)                        // not an LPI
            case 1: return ITS.Translation(intid: INTID(1 << 17), vcpu: vcpu)                    // beyond IDbits
            case 2: return ITS.Translation(intid: INTID(8192 + 600 + UInt32.random(in: 0 ..< 50, using: &rng)), vcpu: vcpu)
            default:                                                                             // mapped, or at another vCPU
                let n = UInt32.random(in: 0 ..< 600, using: &rng)
                return ITS.Translation(intid: INTID(8192 + n), vcpu: Bool.random(using: &rng) ? VCPUIndex(UInt16(n % 4)) : vcpu)
            }
        }
        var single = driver.gic.redistributors
        single.sink.removeAll()
        for translation in translations { single.setPending(translation.intid, on: translation.vcpu) }
        driver.gic.sink.removeAll()
        translations.withUnsafeBufferPointer { driver.gic.redistributors.setPending($0) }
        #expect(driver.gic.sink.notified == single.sink.notified, "seed \(seed) round \(round): edges")
        for vcpu in 0 ..< 4 {
            let batched = driver.gic.redistributors.redistributors[vcpu]
            let expected = single.redistributors[vcpu]
            batched.checkInvariants()
            #expect(batched.snapshot() == expected.snapshot(), "seed \(seed) round \(round) vCPU \(vcpu)")
            #expect(batched.deliverableCount == expected.deliverableCount
                        && batched.highestPriorityPending() == expected.highestPriorityPending(),
                    "seed \(seed) round \(round) vCPU \(vcpu)")
            pendingSeen += batched.pendingCount
        }
        // Acknowledge some of it so that later rounds start from pending and empty vCPUs alike.
        if round % 3 == 2 {
            for vcpu: UInt16 in 0 ..< 4 { _ = driver.drain(vcpu) }
        }
    }
    let counters = driver.gic.redistributors.redistributors.map(\.counters)
    #expect(pendingSeen > 0 && counters.contains { $0.lpisCoalesced > 0 } && counters.contains { $0.lpisNotMapped > 0 })
    #expect(counters.contains { $0.intidsOutOfRange > 0 } && counters[3].lpisDroppedDisabled > 0)
}

import Testing
@testable import ITSModel

/// Highest-priority pending LPI, acknowledge, notification edges and pending listings.
@Suite struct AcknowledgeTests {
    // Priority is numerically lower = higher; ties go to the lowest INTID (IHI 0069, 4.8).
    @Test func acknowledgeTakesPriorityOrderThenLowestINTID() {
        var fixture = RedistributorFixture()
        let lpis: [(UInt32, UInt8)] = [(9000, 0xA0), (8192, 0xA0), (12_000, 0x20), (8500, 0xF0), (8300, 0x20), (8193, 0xA1)]
        for (intid, priority) in lpis { fixture.map(intid, priority: priority) }
        for (intid, _) in lpis { fixture.pend(intid) }
        // 0xA1 masks to 0xA0, so 8193 ties with 8192 and 9000.
        #expect(fixture.drain() == [8300, 12_000, 8192, 8193, 9000, 8500])
        #expect(fixture.redistributor.acknowledge() == .spurious)
        #expect(fixture.redistributor.counters.lpisAcknowledged == 6)
    }

    // The priority mask admits priorities strictly higher (numerically lower) than itself.
    @Test func priorityMaskIsStrict() {
        var fixture = RedistributorFixture()
        fixture.map(8192, priority: 0x80)
        fixture.map(8193, priority: 0x7C)
        fixture.pend(8192)
        fixture.pend(8193)
        #expect(fixture.redistributor.highestPriorityPending(priorityMask: Priority(0x7C)) == nil)
        #expect(fixture.redistributor.highestPriorityPending(priorityMask: Priority(0x7D)) == INTID(8193))
        #expect(fixture.redistributor.acknowledge(priorityMask: Priority(0x80)) == INTID(8193))
        #expect(fixture.redistributor.acknowledge(priorityMask: Priority(0x80)) == .spurious)
        #expect(fixture.redistributor.isPending(INTID(8192)), "a masked LPI stays pending")
        #expect(fixture.redistributor.acknowledge(priorityMask: Priority(0x81)) == INTID(8192))
        #expect(fixture.redistributor.highestPriorityPending(priorityMask: .highest) == nil)
    }

    // The owner hears of a vCPU only when it goes from nothing deliverable to something.
    @Test func notificationsAreEdges() {
        var fixture = RedistributorFixture(vcpu: 3)
        for intid: UInt32 in 8192 ..< 8200 { fixture.map(intid) }
        fixture.map(8200, enabled: false)
        fixture.pend(8200)
        #expect(fixture.sink.notified.isEmpty, "a disabled LPI is not deliverable")
        fixture.pend(8192)
        fixture.pend(8193)
        #expect(fixture.pend(8193) == .alreadyPending)
        #expect(fixture.sink.notified == [VCPUIndex(3)])
        #expect(fixture.redistributor.counters.lpisCoalesced == 1)
        _ = fixture.drain()
        fixture.pend(8194)
        #expect(fixture.sink.notified == [VCPUIndex(3), VCPUIndex(3)])
        // Enabling a pending LPI by INV is an edge too.
        _ = fixture.drain()
        fixture.configure(8200, priority: 0x40)
        fixture.redistributor.invalidate(INTID(8200), memory: fixture.memory, sink: &fixture.sink)
        #expect(fixture.sink.notified.count == 3)
    }

    @Test func disablingAPendingLPIHidesItWithoutLosingIt() {
        var fixture = RedistributorFixture()
        fixture.map(8192)
        fixture.pend(8192)
        fixture.configure(8192, priority: 0xA0, enabled: false)
        fixture.redistributor.invalidate(INTID(8192), memory: fixture.memory, sink: &fixture.sink)
        #expect(fixture.redistributor.acknowledge() == .spurious)
        #expect(fixture.redistributor.isPending(INTID(8192)))
        fixture.configure(8192, priority: 0xA0, enabled: true)
        fixture.write(Redistributor.Offset.invallr, 0)
        #expect(fixture.redistributor.acknowledge() == INTID(8192))
    }

    @Test func pendingListingPagesInINTIDOrder() {
        var fixture = RedistributorFixture()
        let intids: [UInt32] = (0 ..< 50).map { 8192 + $0 * 397 }
        for intid in intids { fixture.map(intid, priority: UInt8(intid % 7) << 4, enabled: intid % 3 != 0) }
        for intid in intids.reversed() { fixture.pend(intid) }
        var listed: [UInt32] = []
        var cursor = INTID.firstLPI
        var pages = 0
        while true {
            let page = fixture.redistributor.pendingLPIs(from: cursor, limit: 7)
            pages += 1
            #expect(page.lpis.count <= 7)
            listed += page.lpis.map(\.intid.rawValue)
            for lpi in page.lpis {
                #expect(lpi.config == LPIConfig(priority: Priority(UInt8(lpi.intid.rawValue % 7) << 4), enabled: lpi.intid.rawValue % 3 != 0))
            }
            guard let next = page.next else { break }
            cursor = next
        }
        #expect(listed == intids, "every pending LPI, enabled or not, once, in order")
        #expect(pages == 8)
        #expect(fixture.redistributor.pendingLPIs(from: INTID(intids[10] + 1), limit: 1).lpis.first?.intid.rawValue == intids[11])
    }
}

/// Random operations on one redistributor against a reference model of pending LPIs.
@Test(arguments: [5 as UInt64, 6, 0xBEEF])
func pendingStateMatchesTheReferenceModel(seed: UInt64) {
    var rng = SplitMix64(seed: seed)
    var fixture = RedistributorFixture()
    var configs: [UInt32: LPIConfig] = [:]     // mapped LPIs and their cached configuration
    var pending: Set<UInt32> = []
    let universe: [UInt32] = (0 ..< 600).map { 8192 + UInt32($0) * 89 }
    for step in 0 ..< 100_000 {
        let intid = universe[Int.random(in: 0 ..< universe.count, using: &rng)]
        switch Int.random(in: 0 ..< 10, using: &rng) {
        case 0:
            guard configs[intid] == nil else { continue }
            let priority = UInt8.random(in: 0 ... 255, using: &rng)
            let enabled = Bool.random(using: &rng)
            fixture.map(intid, priority: priority, enabled: enabled)
            configs[intid] = LPIConfig(priority: Priority(priority), enabled: enabled)
        case 1:
            fixture.redistributor.unmapLPI(INTID(intid))
            configs[intid] = nil
            pending.remove(intid)
        case 2 ..< 5:
            let outcome = fixture.pend(intid)
            if configs[intid] == nil {
                #expect(outcome == .notMapped, "seed \(seed) step \(step)")
            } else {
                #expect(outcome == (pending.insert(intid).inserted ? .madePending : .alreadyPending), "seed \(seed) step \(step)")
            }
        case 5:
            #expect(fixture.redistributor.clearPending(INTID(intid)) == (pending.remove(intid) != nil), "seed \(seed) step \(step)")
        case 6:
            let priority = UInt8.random(in: 0 ... 255, using: &rng)
            let enabled = Bool.random(using: &rng)
            fixture.configure(intid, priority: priority, enabled: enabled)
            fixture.redistributor.invalidate(INTID(intid), memory: fixture.memory, sink: &fixture.sink)
            if configs[intid] != nil { configs[intid] = LPIConfig(priority: Priority(priority), enabled: enabled) }
        default:
            let mask = Priority(UInt8.random(in: 0 ... 255, using: &rng))
            let expected = pending.filter { configs[$0]!.isEnabled && configs[$0]!.priority < mask }
                .min { (configs[$0]!.priority, $0) < (configs[$1]!.priority, $1) }
            let taken = fixture.redistributor.acknowledge(priorityMask: mask)
            #expect(taken == (expected.map { INTID($0) } ?? .spurious), "seed \(seed) step \(step)")
            if let expected { pending.remove(expected) }
        }
        let deliverable = pending.filter { configs[$0]!.isEnabled }.count
        #expect(fixture.redistributor.deliverableCount == deliverable, "seed \(seed) step \(step)")
        if step % 1000 == 0 { fixture.redistributor.checkInvariants() }
        #expect(fixture.redistributor.pendingCount == pending.count, "seed \(seed) step \(step)")
    }
}

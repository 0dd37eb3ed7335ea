import Testing
@testable import ITSModel

/// 1,000,000 LPIs at scattered INTIDs over 64 vCPUs: every one set pending, every one acknowledged
/// exactly once, each vCPU taking them in priority order (ties by INTID).
@Test func aMillionLPIsOverSixtyFourVCPUsAreEachAcknowledgedOnceInPriorityOrder() {
    let seed: UInt64 = 0x1_000_000
    let lpiCount = 1_000_000
    let vcpuCount = 64
    let configTable = GuestAddress(0x100_0000)
    let memory = InMemoryGuestMemory()
    memory.addRegion(base: configTable, size: 1 << 24)
    var redistributors = (0 ..< vcpuCount).map { index in
        Redistributor(.init(vcpu: VCPUIndex(UInt16(index)), isLast: index == vcpuCount - 1, intidBits: 24))
    }
    var sink = DeliveryLog()
    for index in redistributors.indices {
        redistributors[index].mmioWrite(offset: Redistributor.Offset.propbaser, width: .doubleword,
                                        value: configTable.rawValue | 23, memory: memory, sink: &sink)
        redistributors[index].mmioWrite(offset: Redistributor.Offset.pendbaser, width: .doubleword,
                                        value: 1 << 62, memory: memory, sink: &sink)
        redistributors[index].mmioWrite(offset: Redistributor.Offset.ctlr, width: .word, value: 1,
                                        memory: memory, sink: &sink)
    }

    // INTID i lies in its own 15-wide slot: scattered over 8192 ..< 8192 + 15,000,000.
    var rng = SplitMix64(seed: seed)
    var targets = [UInt8](repeating: 0, count: lpiCount)
    var intids = [UInt32](repeating: 0, count: lpiCount)
    for i in 0 ..< lpiCount {
        intids[i] = 8192 + UInt32(i) * 15 + UInt32.random(in: 0 ..< 15, using: &rng)
        targets[i] = UInt8.random(in: 0 ..< UInt8(vcpuCount), using: &rng)
        let config = LPIConfig(priority: Priority(UInt8.random(in: 0 ... 255, using: &rng)), enabled: true)
        try! memory.writeUInt8(config.rawValue, at: configTable.adding(UInt64(intids[i] - 8192))!)
    }
    for i in 0 ..< lpiCount {
        let outcome = redistributors[Int(targets[i])].mapLPI(INTID(intids[i]), memory: memory)
        if outcome != .mapped { Issue.record("map \(intids[i]): \(outcome), seed \(seed)"); return }
    }
    for i in 0 ..< lpiCount {
        let outcome = redistributors[Int(targets[i])].setPending(INTID(intids[i]), sink: &sink)
        if outcome != .madePending { Issue.record("pend \(intids[i]): \(outcome), seed \(seed)"); return }
    }
    #expect(sink.notified.count == vcpuCount, "one notification per vCPU, not per LPI")

    var taken = [Bool](repeating: false, count: lpiCount)
    var acknowledged = 0
    for index in redistributors.indices {
        var previous: (Priority, UInt32)? = nil
        while true {
            let intid = redistributors[index].acknowledge()
            if intid == .spurious { break }
            let slot = Int(intid.rawValue - 8192) / 15
            let priority = redistributors[index].lpis.load(UInt64(intid.rawValue))!.config.priority
            guard intids[slot] == intid.rawValue, Int(targets[slot]) == index, !taken[slot] else {
                Issue.record("vCPU \(index) acknowledged \(intid) wrongly or twice, seed \(seed)")
                return
            }
            if let (lastPriority, lastINTID) = previous, (priority, intid.rawValue) <= (lastPriority, lastINTID) {
                Issue.record("vCPU \(index): \(intid) at \(priority) after \(lastINTID) at \(lastPriority), seed \(seed)")
                return
            }
            previous = (priority, intid.rawValue)
            taken[slot] = true
            acknowledged += 1
        }
        #expect(redistributors[index].pendingCount == 0 && redistributors[index].deliverableCount == 0)
    }
    #expect(acknowledged == lpiCount)
    #expect(!taken.contains(false))
}

import Testing
@testable import ITSModel

/// A naive reference: a Dictionary plus its keys kept sorted.
private struct ReferenceMap {
    var values: [UInt64: UInt32] = [:]
    var sortedKeys: [UInt64] = []

    func lowerBound(_ key: UInt64) -> Int {
        var low = 0, high = sortedKeys.count
        while low < high {
            let mid = (low + high) / 2
            if sortedKeys[mid] < key { low = mid + 1 } else { high = mid }
        }
        return low
    }

    mutating func store(_ value: UInt32, at key: UInt64) -> UInt32? {
        let old = values.updateValue(value, forKey: key)
        if old == nil { sortedKeys.insert(key, at: lowerBound(key)) }
        return old
    }

    mutating func erase(_ key: UInt64) -> UInt32? {
        guard let old = values.removeValue(forKey: key) else { return nil }
        sortedKeys.remove(at: lowerBound(key))
        return old
    }

    func first(atOrAfter key: UInt64) -> (UInt64, UInt32)? {
        let index = lowerBound(key)
        return index < sortedKeys.count ? (sortedKeys[index], values[sortedKeys[index]]!) : nil
    }
}

/// Draws keys from one of several shapes so that every height and node boundary gets exercised.
private func randomKey(_ rng: inout SplitMix64, shape: UInt64) -> UInt64 {
    switch shape % 5 {
    case 0: return UInt64.random(in: 0 ..< 200, using: &rng)                     // dense, a single leaf or two
    case 1: return UInt64.random(in: 8192 ..< 8192 + 4096, using: &rng)          // LPIs of a small guest
    case 2: return UInt64.random(in: 8192 ..< (1 << 24), using: &rng) & ~0x3F0   // scattered INTIDs
    case 3: return 1 << UInt64.random(in: 0 ..< 64, using: &rng)                 // every height up to 11
    default: return rng.next()                                                   // full 64-bit keys
    }
}

@Test(arguments: [1 as UInt64, 2, 3, 0xC0FFEE])
func randomOperationsMatchTheReferenceModel(seed: UInt64) {
    var rng = SplitMix64(seed: seed)
    var index = SparseIndex<UInt32>()
    var reference = ReferenceMap()
    let operations = 120_000
    for step in 0 ..< operations {
        // Phases bias towards growth or shrinkage so the tree fills and empties repeatedly.
        let growing = (step / 10_000) % 2 == 0
        let key: UInt64
        if !growing, !reference.sortedKeys.isEmpty, Bool.random(using: &rng) {
            key = reference.sortedKeys[Int.random(in: 0 ..< reference.sortedKeys.count, using: &rng)]
        } else {
            key = randomKey(&rng, shape: rng.next())
        }
        let value = UInt32.random(in: 0 ... .max, using: &rng)
        switch Int.random(in: 0 ..< 10, using: &rng) {
        case 0 ..< 4 where growing, 0 ..< 2:
            let expected = reference.store(value, at: key)
            let got = index.store(value, at: key)
            #expect(got == expected, "store \(key) seed \(seed) step \(step)")
        case 0 ..< 7:
            let expected = reference.erase(key)
            let got = index.erase(key)
            #expect(got == expected, "erase \(key) seed \(seed) step \(step)")
        case 7:
            // update: increment an existing value, or insert, or erase when the value is odd.
            let expectedOld = reference.values[key]
            let got: UInt32? = index.update(key) { slot in
                let old = slot
                if let current = slot, current & 1 == 1 { slot = nil } else { slot = (slot ?? 0) &+ 2 }
                return old
            }
            #expect(got == expectedOld, "update \(key) seed \(seed) step \(step)")
            if let current = expectedOld, current & 1 == 1 {
                _ = reference.erase(key)
            } else {
                _ = reference.store((expectedOld ?? 0) &+ 2, at: key)
            }
        case 8:
            let got = index.first(atOrAfter: key)
            let expected = reference.first(atOrAfter: key)
            #expect(got?.key == expected?.0 && got?.value == expected?.1, "first(atOrAfter: \(key)) seed \(seed) step \(step)")
            let smallest = reference.first(atOrAfter: 0)
            #expect(index.first?.key == smallest?.0 && index.first?.value == smallest?.1, "first seed \(seed) step \(step)")
        default:
            #expect(index.load(key) == reference.values[key], "load \(key) seed \(seed) step \(step)")
        }
        #expect(index.count == reference.values.count, "count seed \(seed) step \(step)")
        if step % 5_000 == 0 {
            index.checkInvariants()
            var visited: [UInt64] = []
            index.forEach { key, value in
                visited.append(key)
                return reference.values[key] == value
            }
            #expect(visited == reference.sortedKeys, "ordered iteration seed \(seed) step \(step)")
        }
    }
    index.checkInvariants()
    #expect(index.entries.map(\.key) == reference.sortedKeys, "seed \(seed)")
}

@Test func heightFollowsTheLargestKey() {
    var index = SparseIndex<UInt8>()
    #expect(index.height == 0)
    index.store(1, at: 8192)             // 2^13 needs 3 levels of 6 bits
    #expect(index.height == 3)
    index.store(2, at: 1 << 24)          // 25 bits need 5 levels
    #expect(index.height == 5)
    index.store(3, at: UInt64.max)       // 64 bits need 11 levels
    #expect(index.height == 11)
    index.erase(UInt64.max)
    #expect(index.height == 5)
    index.erase(1 << 24)
    #expect(index.height == 3)
    index.store(4, at: 5)
    index.erase(8192)
    #expect(index.height == 1)
    index.erase(5)
    #expect(index.height == 0 && index.isEmpty)
    index.checkInvariants()
}

@Test func erasingFreesEmptySubtrees() {
    var index = SparseIndex<UInt64>()
    let empty = index.bytesUsed
    var rng = SplitMix64(seed: 7)
    var keys: [UInt64] = []
    for _ in 0 ..< 5000 {
        let key = UInt64.random(in: 8192 ..< (1 << 22), using: &rng)
        keys.append(key)
        index.store(key, at: key)
    }
    #expect(index.bytesUsed > empty + 5000 * 8)
    for key in keys { index.erase(key) }
    index.checkInvariants()
    #expect(index.storage.interiorNodes == 0 && index.storage.leafNodes == 0)
    #expect(index.bytesUsed == empty)
}

@Test func copiesAreIndependentValues() {
    var original = SparseIndex<UInt32>()
    for key in stride(from: UInt64(8192), to: 9000, by: 3) { original.store(UInt32(key), at: key) }
    var copy = original
    copy.store(1, at: 8192)
    copy.erase(8195)
    copy.store(9, at: 1 << 40)
    #expect(original.load(8192) == 8192)
    #expect(original.load(8195) == 8195)
    #expect(original.load(1 << 40) == nil)
    #expect(copy.load(8192) == 1 && copy.load(8195) == nil && copy.load(1 << 40) == 9)
    original.checkInvariants()
    copy.checkInvariants()
}

@Test func rangeIterationAndCursors() {
    var index = SparseIndex<UInt32>()
    for key: UInt64 in [3, 64, 65, 4095, 4096, 8192, 262_143, 262_144] { index.store(UInt32(key), at: key) }
    var seen: [UInt64] = []
    index.forEach(in: 65 ... 8192) { key, _ in seen.append(key); return true }
    #expect(seen == [65, 4095, 4096, 8192])
    seen = []
    index.forEach(in: 0 ... .max) { key, _ in seen.append(key); return seen.count < 3 }
    #expect(seen == [3, 64, 65])
    #expect(index.first(atOrAfter: 4)?.key == 64)
    #expect(index.first(atOrAfter: 8193)?.key == 262_143)
    #expect(index.first(atOrAfter: 262_145) == nil)
    #expect(index.first(atOrAfter: 1 << 50) == nil)
    #expect(index.last?.key == 262_144)
}

@Test func bytesPerEntryOfAQuarterFilledINTIDRange() {
    // 4-byte values, a quarter of 8192 ..< 8192 + 4 * 65536 populated: the shape of the benchmark.
    var index = SparseIndex<UInt32>()
    var rng = SplitMix64(seed: 11)
    var stored = 0
    for key in UInt64(8192) ..< 8192 + 4 * 65536 where rng.next() % 4 == 0 {
        index.store(1, at: key)
        stored += 1
    }
    let perEntry = Double(index.bytesUsed) / Double(stored)
    #expect(perEntry < 20, "bytes per entry \(perEntry)")
}

import Testing
@testable import ITSModel

/// Marks against a naive reference, a Dictionary and a Set of marked keys, over random stores,
/// erases, marks, unmarks, whole-index unmarks and copies (copy on write): a key is stored unmarked,
/// keeps its mark when its value is replaced, loses it when erased; ``SparseIndex/markedCount``,
/// ``SparseIndex/markWord(_:)``, ``SparseIndex/firstMarked(atOrAfter:)`` and
/// ``SparseIndex/forEachMarked(in:_:)`` agree with the reference throughout.
@Test(arguments: [1 as UInt64, 2, 3, 0x3A4C5])
func marksMatchTheReferenceModel(seed: UInt64) {
    var rng = SplitMix64(seed: seed)
    var index = SparseIndex<UInt32>()
    var values: [UInt64: UInt32] = [:]
    var marked: Set<UInt64> = []
    var copies: [(SparseIndex<UInt32>, [UInt64: UInt32], Set<UInt64>)] = []
    // Keys in three shapes: one leaf, LPIs of a small guest, and scattered over a 2^40 range.
    func randomKey() -> UInt64 {
        switch UInt64.random(in: 0 ..< 3, using: &rng) {
        case 0: UInt64.random(in: 0 ..< 64, using: &rng)
        case 1: UInt64.random(in: 8192 ..< 8192 + 2048, using: &rng)
        default: UInt64.random(in: 0 ..< 1 << 40, using: &rng) & ~0xFC0
        }
    }
    for step in 0 ..< 30_000 {
        let known = values.isEmpty || Bool.random(using: &rng) ? randomKey() : values.keys.randomElement(using: &rng)!
        switch UInt64.random(in: 0 ..< 100, using: &rng) {
        case 0 ..< 35:
            let value = UInt32(truncatingIfNeeded: rng.next())
            #expect(index.store(value, at: known) == values.updateValue(value, forKey: known), "seed \(seed) step \(step)")
        case 35 ..< 50:
            #expect(index.erase(known) == values.removeValue(forKey: known), "seed \(seed) step \(step)")
            marked.remove(known)
        case 50 ..< 80:
            let result = index.mark(known)
            if let value = values[known] {
                #expect(result?.value == value && result?.newlyMarked == marked.insert(known).inserted, "seed \(seed) step \(step)")
            } else {
                #expect(result == nil, "seed \(seed) step \(step): marked a key that is not stored")
            }
        case 80 ..< 95:
            #expect(index.unmark(known) == (marked.remove(known) != nil), "seed \(seed) step \(step)")
        case 95 ..< 97:
            copies.append((index, values, marked))
        case 97:
            index.unmarkAll()
            marked.removeAll()
        default:
            let probe = randomKey()
            let expected = marked.filter { $0 >= probe }.min()
            let found = index.firstMarked(atOrAfter: probe)
            #expect(found?.key == expected && found?.value == expected.flatMap { values[$0] }, "seed \(seed) step \(step)")
            #expect(index.markWord(probe >> 6) == (0 ..< 64).reduce(UInt64(0)) {
                marked.contains(probe & ~63 | UInt64($1)) ? $0 | 1 << UInt64($1) : $0
            }, "seed \(seed) step \(step)")
            let high = probe &+ UInt64.random(in: 0 ..< 1 << 36, using: &rng)
            var visited: [UInt64] = []
            index.forEachMarked(in: probe ... max(probe, high)) { key, value in
                #expect(values[key] == value)
                visited.append(key)
                return true
            }
            #expect(visited == marked.filter { (probe ... max(probe, high)).contains($0) }.sorted(), "seed \(seed) step \(step)")
        }
        #expect(index.markedCount == marked.count && index.isMarked(known) == marked.contains(known), "seed \(seed) step \(step)")
        if step % 997 == 0 { index.checkInvariants() }
    }
    index.checkInvariants()
    #expect(copies.count > 50, "seed \(seed): too few copies taken")
    for (copy, copyValues, copyMarked) in copies {
        copy.checkInvariants()
        var seen: Set<UInt64> = []
        copy.forEachMarked { key, value in
            seen.insert(key)
            return copyValues[key] == value
        }
        #expect(seen == copyMarked && copy.markedCount == copyMarked.count, "seed \(seed): a copy changed")
    }
}

/// A mark belongs to its key: marking twice reports the second as not new, replacing the value
/// keeps the mark, erasing the key drops it, and the key stored again starts unmarked.
@Test func erasingAMarkedKeyDropsItsMark() {
    var index = SparseIndex<UInt32>()
    index.store(7, at: 8200)
    #expect(index.mark(8200)! == (7, true))
    #expect(index.mark(8200)! == (7, false))
    index.store(8, at: 8200)
    #expect(index.isMarked(8200) && index.markedCount == 1, "replacing a value keeps its mark")
    index.store(9, at: 8201)
    index.erase(8200)
    #expect(index.markedCount == 0 && !index.isMarked(8200))
    index.store(10, at: 8200)
    #expect(!index.isMarked(8200) && index.markWord(8200 >> 6) == 0)
    index.checkInvariants()
}

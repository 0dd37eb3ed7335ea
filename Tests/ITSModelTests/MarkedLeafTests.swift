import Testing
@testable import ITSModel

/// The leaf ``SparseIndex/mark(_:)`` remembers (``SparseIndex/Storage/markedLeaf``) never outlives
/// the tree shape it was found in: freed by an erase, shared by a copy, moved under a taller root.
/// Debug builds also check each remembered leaf against a walk.
@Suite struct MarkedLeafTests {
    @Test func eraseFreesTheRememberedLeaf() {
        var index = SparseIndex<UInt32>()
        for key: UInt64 in 8192 ..< 8200 { index.store(UInt32(key), at: key) }
        #expect(index.mark(8192)! == (8192, true))
        for key: UInt64 in 8192 ..< 8200 { index.erase(key) }
        #expect(index.isEmpty)
        // New leaves, possibly at the freed one's address, for the same keys and others.
        index.store(70, at: 70)
        index.store(8195, at: 8195)
        #expect(index.mark(8192) == nil, "erased: nothing to mark")
        #expect(index.mark(8195)! == (8195, true))
        #expect(index.mark(8195)! == (8195, false))
        #expect(index.mark(70)! == (70, true))
        #expect(index.markedCount == 2 && index.isMarked(8195) && !index.isMarked(8192))
        index.checkInvariants()
    }

    @Test func aCopyDoesNotShareTheRememberedLeaf() {
        var original = SparseIndex<UInt32>()
        for key: UInt64 in 8192 ..< 8196 { original.store(UInt32(key), at: key) }
        #expect(original.mark(8192)! == (8192, true))
        var copy = original
        #expect(copy.mark(8193)! == (8193, true))
        #expect(original.mark(8194)! == (8194, true))
        #expect(!original.isMarked(8193) && !copy.isMarked(8194))
        #expect(original.markedCount == 2 && copy.markedCount == 2)
        original.checkInvariants()
        copy.checkInvariants()
    }

    @Test func growingTheHeightKeepsTheRememberedLeaf() {
        var index = SparseIndex<UInt32>()
        index.store(5, at: 5)
        #expect(index.mark(5)! == (5, true))
        #expect(index.height == 1)
        index.store(1 << 30, at: 1 << 30)
        index.store(6, at: 6)
        #expect(index.height > 1)
        #expect(index.mark(6)! == (6, true))
        #expect(index.mark(1 << 30)! == (1 << 30, true))
        #expect(index.mark(7) == nil)
        // Lowering the height (an erase) forgets the leaf; marks still land where a walk finds them.
        index.erase(1 << 30)
        #expect(index.height == 1)
        index.store(7, at: 7)
        #expect(index.mark(7)! == (7, true))
        #expect(index.markedCount == 3)
        index.checkInvariants()
    }
}

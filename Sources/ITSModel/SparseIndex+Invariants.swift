extension SparseIndex {
    /// Up to this many entries, debug builds check the whole tree after every mutation; above it they
    /// check the path the mutation touched.
    public static var fullCheckLimit: Int { 32 }

    /// Checks the structure of the whole tree, stopping the process when it is broken:
    /// - every node's bitmap is non-zero (no empty node is left behind) and, for interior nodes, its
    ///   bits are exactly the non-nil child slots;
    /// - the height is minimal: a root above the leaves has a child beyond slot 0;
    /// - every leaf's marks are a subset of its bitmap;
    /// - the stored count, marked count and node counts match the tree;
    /// - the lookup bounds derived from the height match it.
    /// O(nodes).
    public func checkInvariants() {
        checkDerivedBounds()
        guard let root = storage.root else {
            precondition(storage.height == 0 && storage.count == 0 && storage.markedCount == 0,
                         "empty index with height, count or marks")
            precondition(storage.interiorNodes == 0 && storage.leafNodes == 0, "empty index with nodes")
            return
        }
        precondition((1 ... SparseNode.maxHeight).contains(storage.height), "height out of range")
        if storage.height > 1 {
            precondition(SparseNode.bitmap(root) & ~1 != 0, "height is not minimal: the root has only slot 0")
        }
        var entries = 0
        var marked = 0
        var interior = 0
        var leaves = 0
        Self.checkSubtree(root, level: storage.height - 1, entries: &entries, marked: &marked, interior: &interior,
                          leaves: &leaves)
        precondition(entries == storage.count, "count \(storage.count) but \(entries) entries in the tree")
        precondition(marked == storage.markedCount, "marked count \(storage.markedCount) but \(marked) marks in the tree")
        precondition(interior == storage.interiorNodes && leaves == storage.leafNodes, "node counts disagree")
    }

    static func checkSubtree(_ node: UnsafeMutableRawPointer, level: Int, entries: inout Int, marked: inout Int,
                             interior: inout Int, leaves: inout Int)
    {
        let bits = SparseNode.bitmap(node)
        precondition(bits != 0, "an empty node was left in the tree")
        if level == 0 {
            let marks = SparseNode.marks(node)
            precondition(marks & ~bits == 0, "a leaf marks a slot that holds no value")
            leaves += 1
            entries += bits.nonzeroBitCount
            marked += marks.nonzeroBitCount
            return
        }
        interior += 1
        for slot in 0 ..< SparseNode.fanout {
            let child = SparseNode.child(node, slot)
            precondition((child != nil) == (bits & (1 << UInt64(slot)) != 0), "bitmap disagrees with slot \(slot)")
            if let child {
                checkSubtree(child, level: level - 1, entries: &entries, marked: &marked, interior: &interior, leaves: &leaves)
            }
        }
    }

    /// Checks the nodes on the path to `key`: none is empty, the path's slot agrees with its bitmap
    /// bit, and the height is minimal. O(h), so that debug builds can afford it after every mutation.
    func checkPath(to key: UInt64) {
        guard var node = storage.root else {
            precondition(storage.count == 0 && storage.height == 0, "empty tree with count or height")
            return
        }
        if storage.height > 1 {
            precondition(SparseNode.bitmap(node) & ~1 != 0, "height is not minimal: the root has only slot 0")
        }
        var level = storage.height - 1
        while true {
            let bits = SparseNode.bitmap(node)
            precondition(bits != 0, "an empty node was left on the path to \(key)")
            if level == 0 {
                precondition(SparseNode.marks(node) & ~bits == 0, "a leaf on the path to \(key) marks a slot that holds no value")
                return
            }
            let slot = SparseNode.slot(key, level: level)
            let child = SparseNode.child(node, slot)
            precondition((child != nil) == (bits & (1 << UInt64(slot)) != 0), "bitmap disagrees with slot \(slot)")
            guard let child else { return }
            node = child
            level -= 1
        }
    }

    /// Checks ``Storage/rootShift`` and ``Storage/largestCoveredKey`` against the height. O(1).
    func checkDerivedBounds() {
        let height = storage.height
        precondition(storage.rootShift == max(0, height - 1) * SparseNode.bitsPerLevel, "root shift disagrees with height")
        let largest: UInt64 = height >= SparseNode.maxHeight ? .max : (1 << UInt64(height * SparseNode.bitsPerLevel)) - 1
        precondition(storage.largestCoveredKey == largest, "largest covered key disagrees with height")
    }

    /// The debug-build check after a mutation at `key`; nothing in release builds.
    @inlinable func debugCheckAfterMutation(_ key: UInt64) {
        #if DEBUG
        debugCheck(key)
        #endif
    }

    @usableFromInline func debugCheck(_ key: UInt64) {
        precondition(storage.count == storage.leafPopulation,
                     "count \(storage.count) but the leaf bitmaps hold \(storage.leafPopulation) entries")
        if count <= Self.fullCheckLimit {
            checkInvariants()
        } else {
            checkDerivedBounds()
            checkPath(to: key)
        }
    }
}

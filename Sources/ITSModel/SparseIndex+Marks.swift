/// Marks: one bit per stored key, kept in its leaf in a word beside the occupancy bitmap. A key is
/// stored unmarked, keeps its mark when its value is replaced, and loses it when it is erased, so the
/// marks of a leaf are always a subset of its bitmap. The LPI index marks the pending LPIs: marking
/// is the walk that finds the record and one store, and 64 consecutive keys' marks are one word, as
/// in the LPI Pending table.
///
/// Finding or visiting marked keys skips leaves without marks but, as interior nodes do not record
/// which subtrees hold marks, visits every leaf in the range: O(h + leaves in the range).
extension SparseIndex {
    /// The number of marked keys. O(1).
    @inlinable public var markedCount: Int { storage.markedCount }

    /// Whether `key` is stored and marked. O(h).
    /// - Context: any thread that may read this value.
    @inlinable public func isMarked(_ key: UInt64) -> Bool {
        guard let leaf = leaf(containing: key) else { return false }
        return SparseNode.marks(leaf) & (1 &<< (key & UInt64(SparseNode.slotMask))) != 0
    }

    /// Marks `key` if it is stored. Returns its value and whether the mark is new (false when it was
    /// marked already), or nil, changing nothing, when `key` is not stored. One walk of the tree.
    ///
    /// ``locate(_:)`` and ``mark(_:located:)`` in one body, so that a caller marking one key at a
    /// time (a lane making an MSI's LPI pending) makes no call per key besides the uniqueness check;
    /// a key in the leaf the previous mark found skips the walk (``Storage/markedLeaf``).
    /// - Context: the owner of this value (a single writer).
    @inlinable @inline(__always) public mutating func mark(_ key: UInt64) -> (value: Value, newlyMarked: Bool)? {
        makeUnique()
        let leafIndex = key &>> UInt64(SparseNode.bitsPerLevel)
        let leaf: UnsafeMutableRawPointer
        if let cached = storage.markedLeaf, storage.markedLeafIndex == leafIndex {
            #if DEBUG
            precondition(self.leaf(containing: key) == cached, "key \(key): the leaf of the last mark is stale")
            #endif
            leaf = cached
        } else {
            guard let found = self.leaf(containing: key) else { return nil }
            storage.markedLeaf = found
            storage.markedLeafIndex = leafIndex
            leaf = found
        }
        let slot = Int(truncatingIfNeeded: key) & SparseNode.slotMask
        let bit: UInt64 = 1 &<< UInt64(slot)
        guard SparseNode.bitmap(leaf) & bit != 0 else { return nil }
        let value = Self.value(in: leaf, slot: slot)
        let marks = SparseNode.marks(leaf)
        guard marks & bit == 0 else { return (value, false) }
        SparseNode.setMarks(leaf, marks | bit)
        storage.markedCount &+= 1
        return (value, true)
    }

    /// A stored key found ahead of marking it: its leaf and its value. A caller that marks many keys
    /// locates a run of them first and then marks each with ``mark(_:located:)``, so that the cache
    /// misses of the walks overlap instead of each waiting behind the work of marking the one before.
    /// Valid until the index is next changed other than by marking.
    @usableFromInline struct Located {
        @usableFromInline let leaf: UnsafeMutableRawPointer
        @usableFromInline let value: Value

        @inlinable init(leaf: UnsafeMutableRawPointer, value: Value) {
            self.leaf = leaf
            self.value = value
        }
    }

    /// `key`'s leaf and value, or nil when `key` is not stored. Makes the storage unique first, so
    /// that marks can be set through the result. One walk of the tree; reads the leaf's bitmap and
    /// the value, which brings both into the cache.
    /// - Context: the owner of this value (a single writer).
    @inlinable mutating func locate(_ key: UInt64) -> Located? {
        makeUnique()
        guard let leaf = leaf(containing: key) else { return nil }
        let slot = Int(truncatingIfNeeded: key) & SparseNode.slotMask
        guard SparseNode.bitmap(leaf) & (1 &<< UInt64(slot)) != 0 else { return nil }
        return Located(leaf: leaf, value: Self.value(in: leaf, slot: slot))
    }

    /// ``mark(_:)`` for `key` as ``locate(_:)`` found it (nil: not stored), with no walk.
    /// - Context: the owner of this value (a single writer), with nothing but marks changed since
    ///   `located` was found.
    @inlinable mutating func mark(_ key: UInt64, located: Located?) -> (value: Value, newlyMarked: Bool)? {
        guard let located else { return nil }
        #if DEBUG
        precondition(leaf(containing: key) == located.leaf && isKnownUniquelyReferenced(&storage),
                     "key \(key) marked through a stale location")
        #endif
        let bit: UInt64 = 1 &<< (key & UInt64(SparseNode.slotMask))
        let marks = SparseNode.marks(located.leaf)
        guard marks & bit == 0 else { return (located.value, false) }
        SparseNode.setMarks(located.leaf, marks | bit)
        storage.markedCount &+= 1
        return (located.value, true)
    }

    /// Clears the mark of `key`; returns whether it was marked. One walk of the tree.
    /// - Context: the owner of this value (a single writer).
    @discardableResult
    @inlinable public mutating func unmark(_ key: UInt64) -> Bool {
        makeUnique()
        guard let leaf = leaf(containing: key) else { return false }
        let bit: UInt64 = 1 &<< (key & UInt64(SparseNode.slotMask))
        let marks = SparseNode.marks(leaf)
        guard marks & bit != 0 else { return false }
        SparseNode.setMarks(leaf, marks & ~bit)
        storage.markedCount &-= 1
        return true
    }

    /// The marks of the keys `index` x 64 ..< `index` x 64 + 64 (one leaf) as a word: bit n is the
    /// mark of key `index` x 64 + n. 0 when none of them is stored. O(h).
    /// - Context: any thread that may read this value.
    public func markWord(_ index: UInt64) -> UInt64 {
        guard index <= UInt64.max >> UInt64(SparseNode.bitsPerLevel),
              let leaf = leaf(containing: index << UInt64(SparseNode.bitsPerLevel))
        else { return 0 }
        return SparseNode.marks(leaf)
    }

    /// The marked entry with the smallest key at or after `key`, or nil. O(h + leaves passed over).
    /// - Context: any thread that may read this value.
    public func firstMarked(atOrAfter key: UInt64 = 0) -> (key: UInt64, value: Value)? {
        guard let root = storage.root, key <= storage.largestCoveredKey else { return nil }
        return Self.firstMarked(atOrAfter: key, in: root, level: storage.height - 1, prefix: 0)
    }

    /// Calls `body` with every marked entry whose key lies in `range`, in ascending key order, until
    /// `body` returns false. O(h + marked entries + leaves in the range).
    /// - Context: any thread that may read this value; `body` must not mutate this index.
    public func forEachMarked(in range: ClosedRange<UInt64> = 0 ... .max, _ body: (UInt64, Value) throws -> Bool) rethrows {
        guard let root = storage.root else { return }
        _ = try Self.visit(root, level: storage.height - 1, prefix: 0, range: range, onlyMarked: true, body)
    }

    /// Clears every mark. O(leaves).
    /// - Context: the owner of this value (a single writer).
    public mutating func unmarkAll() {
        guard storage.markedCount > 0 else { return }
        makeUnique()
        guard let root = storage.root else { return }
        Self.unmarkSubtree(root, level: storage.height - 1)
        storage.markedCount = 0
    }

    static func firstMarked(atOrAfter key: UInt64, in node: UnsafeMutableRawPointer, level: Int, prefix: UInt64)
        -> (key: UInt64, value: Value)?
    {
        let slot = SparseNode.slot(key, level: level)
        if level == 0 {
            let candidates = SparseNode.marks(node) & (~0 << UInt64(slot))
            guard candidates != 0 else { return nil }
            let found = candidates.trailingZeroBitCount
            return (prefix | UInt64(found), value(in: node, slot: found))
        }
        // Unlike first(atOrAfter:), a subtree may hold entries but no mark: every later child may
        // have to be tried.
        let shift = UInt64(level * SparseNode.bitsPerLevel)
        var later = SparseNode.bitmap(node) & (~0 << UInt64(slot))
        while later != 0 {
            let next = later.trailingZeroBitCount
            later &= later - 1
            if let found = firstMarked(atOrAfter: next == slot ? key : 0, in: SparseNode.child(node, next)!,
                                       level: level - 1, prefix: prefix | UInt64(next) << shift)
            {
                return found
            }
        }
        return nil
    }

    static func unmarkSubtree(_ node: UnsafeMutableRawPointer, level: Int) {
        if level == 0 {
            SparseNode.setMarks(node, 0)
            return
        }
        var bits = SparseNode.bitmap(node)
        while bits != 0 {
            let slot = bits.trailingZeroBitCount
            bits &= bits - 1
            unmarkSubtree(SparseNode.child(node, slot)!, level: level - 1)
        }
    }
}

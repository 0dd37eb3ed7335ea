extension SparseIndex {
    /// Stores `value` at `key` and returns the value it replaces, if any. O(h).
    /// - Context: the owner of this value (a single writer).
    @discardableResult
    @inlinable public mutating func store(_ value: Value, at key: UInt64) -> Value? {
        makeUnique()
        let leaf = storage.leafCreatingPath(for: key)
        let slot = Int(truncatingIfNeeded: key) & SparseNode.slotMask
        let bit: UInt64 = 1 &<< UInt64(slot)
        let bits = SparseNode.bitmap(leaf)
        var previous: Value?
        if bits & bit != 0 {
            previous = Self.value(in: leaf, slot: slot)
        } else {
            Self.setLeafBitmap(leaf, bits | bit, storage: storage)
            storage.count &+= 1
        }
        Self.setValue(value, in: leaf, slot: slot)
        debugCheckAfterMutation(key)
        return previous
    }

    /// Removes `key` (and its mark) and returns its value, or nil when it was not stored. Frees every node the
    /// removal empties and lowers the height when the largest remaining key allows. O(h).
    /// - Context: the owner of this value (a single writer).
    @discardableResult
    public mutating func erase(_ key: UInt64) -> Value? {
        guard let root = storage.root, SparseNode.covers(key, height: storage.height) else { return nil }
        if !isKnownUniquelyReferenced(&storage) {
            guard contains(key) else { return nil }
            storage = storage.copy()
            return erase(key)
        }
        guard let removed = Self.erase(key, from: root, level: storage.height - 1, storage: storage) else {
            return nil
        }
        storage.markedLeaf = nil
        storage.count -= 1
        storage.trimRoot()
        debugCheckAfterMutation(key)
        return removed
    }

    /// Reads the value at `key` (nil when absent) into `body`, which may change it; a nil left by
    /// `body` erases the key. The common case — the key exists and stays — walks the tree once.
    /// - Context: the owner of this value (a single writer).
    @inlinable public mutating func update<R>(_ key: UInt64, _ body: (inout Value?) throws -> R) rethrows -> R {
        makeUnique()
        if let leaf = leaf(containing: key) {
            let slot = Int(truncatingIfNeeded: key) & SparseNode.slotMask
            if SparseNode.bitmap(leaf) & (1 &<< UInt64(slot)) != 0 {
                var value: Value? = Self.value(in: leaf, slot: slot)
                let result = try body(&value)
                if let value {
                    Self.setValue(value, in: leaf, slot: slot)
                } else {
                    erase(key)
                }
                return result
            }
        }
        var value: Value?
        let result = try body(&value)
        if let value { store(value, at: key) }
        return result
    }

    /// Removes every key and frees every node (of this copy).
    public mutating func removeAll() {
        storage = Storage()
    }

    @inlinable mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    /// Changes a leaf's occupancy bitmap. Debug builds also keep ``Storage/leafPopulation``, the
    /// number of occupied slots derived from the bitmaps themselves, which the check after every
    /// mutation compares with the count the operations keep.
    @inlinable static func setLeafBitmap(_ leaf: UnsafeMutableRawPointer, _ bits: UInt64, storage: Storage) {
        #if DEBUG
        storage.leafPopulation += bits.nonzeroBitCount - SparseNode.bitmap(leaf).nonzeroBitCount
        #endif
        SparseNode.setBitmap(leaf, bits)
    }

    /// Removes `key` below `node` (at `level`), freeing each child the removal empties.
    static func erase(_ key: UInt64, from node: UnsafeMutableRawPointer, level: Int, storage: Storage) -> Value? {
        let slot = SparseNode.slot(key, level: level)
        let bit: UInt64 = 1 << UInt64(slot)
        let bits = SparseNode.bitmap(node)
        if level == 0 {
            guard bits & bit != 0 else { return nil }
            setLeafBitmap(node, bits & ~bit, storage: storage)
            let marks = SparseNode.marks(node)
            if marks & bit != 0 {
                SparseNode.setMarks(node, marks & ~bit)
                storage.markedCount -= 1
            }
            return value(in: node, slot: slot)
        }
        guard let child = SparseNode.child(node, slot),
              let removed = erase(key, from: child, level: level - 1, storage: storage)
        else { return nil }
        if SparseNode.bitmap(child) == 0 {
            child.deallocate()
            if level == 1 { storage.leafNodes -= 1 } else { storage.interiorNodes -= 1 }
            SparseNode.setChild(node, slot, nil)
            SparseNode.setBitmap(node, bits & ~bit)
        }
        return removed
    }
}

extension SparseIndex.Storage {
    /// The leaf for `key`, creating it, the nodes above it and any new root levels as needed.
    @usableFromInline func leafCreatingPath(for key: UInt64) -> UnsafeMutableRawPointer {
        if root == nil {
            height = SparseNode.minimumHeight(for: key)
            root = allocate(level: height - 1)
        }
        while !SparseNode.covers(key, height: height) {
            // Every key stored lies below 64^height, so the old root becomes slot 0 of the new one.
            let newRoot = allocate(level: height)
            SparseNode.setChild(newRoot, 0, root)
            SparseNode.setBitmap(newRoot, 1)
            root = newRoot
            height += 1
        }
        var node = root!
        var level = height - 1
        while level > 0 {
            let slot = SparseNode.slot(key, level: level)
            if let child = SparseNode.child(node, slot) {
                node = child
            } else {
                let child = allocate(level: level - 1)
                SparseNode.setChild(node, slot, child)
                SparseNode.setBitmap(node, SparseNode.bitmap(node) | (1 << UInt64(slot)))
                node = child
            }
            level -= 1
        }
        return node
    }

    func allocate(level: Int) -> UnsafeMutableRawPointer {
        if level == 0 {
            leafNodes += 1
            return SparseIndex.allocateLeaf()
        }
        interiorNodes += 1
        return SparseNode.allocateInterior()
    }

    /// Frees an empty root, and removes root levels whose only child is slot 0, so that the height
    /// is again the smallest that covers the largest key.
    func trimRoot() {
        guard let current = root else { return }
        if SparseNode.bitmap(current) == 0 {
            current.deallocate()
            if height == 1 { leafNodes -= 1 } else { interiorNodes -= 1 }
            root = nil
            height = 0
            return
        }
        while height > 1, let top = root, SparseNode.bitmap(top) == 1 {
            root = SparseNode.child(top, 0)
            top.deallocate()
            interiorNodes -= 1
            height -= 1
        }
    }
}

extension SparseIndex {
    /// Calls `body` with the value at `key` to change in place and returns its result, or returns
    /// nil without calling `body` when `key` is not stored. One walk of the tree; the structure is
    /// unchanged, so no invariant can break.
    /// - Context: the owner of this value (a single writer).
    @inlinable public mutating func modify<R>(_ key: UInt64, _ body: (inout Value) throws -> R) rethrows -> R? {
        makeUnique()
        guard let leaf = leaf(containing: key) else { return nil }
        let slot = Int(truncatingIfNeeded: key) & SparseNode.slotMask
        guard SparseNode.bitmap(leaf) & (1 &<< UInt64(slot)) != 0 else { return nil }
        var value = Self.value(in: leaf, slot: slot)
        let result = try body(&value)
        Self.setValue(value, in: leaf, slot: slot)
        return result
    }

    /// Sets `bits` in the word at `key` (0 when absent), creating the key and the path to it when
    /// needed; returns false, changing nothing, when every bit was set already. One walk.
    /// - Context: the owner of this value (a single writer).
    @inlinable mutating func insertBits(_ bits: UInt64, at key: UInt64) -> Bool where Value == UInt64 {
        makeUnique()
        if let leaf = leaf(containing: key) {
            let slot = Int(truncatingIfNeeded: key) & SparseNode.slotMask
            let occupied = SparseNode.bitmap(leaf)
            if occupied & (1 &<< UInt64(slot)) != 0 {
                let old = Self.value(in: leaf, slot: slot)
                guard old & bits != bits else { return false }
                Self.setValue(old | bits, in: leaf, slot: slot)
                return true
            }
            Self.setLeafBitmap(leaf, occupied | 1 &<< UInt64(slot), storage: storage)
            Self.setValue(bits, in: leaf, slot: slot)
            storage.count &+= 1
            debugCheckAfterMutation(key)
            return true
        }
        store(bits, at: key)
        return true
    }

    /// One leaf of an index, reached for reading and changing its values in place: 64 slots for the
    /// keys `base ..< base + 64`, of which those with a bit in ``occupied`` hold values.
    ///
    /// A leaf is valid until its index is next mutated other than through a leaf, copied while
    /// holding it, or destroyed; hold one only within the mutating method that obtained it.
    @usableFromInline struct Leaf {
        @usableFromInline let node: UnsafeMutableRawPointer
        /// The key of slot 0.
        @usableFromInline let base: UInt64

        @inlinable init(node: UnsafeMutableRawPointer, base: UInt64) {
            self.node = node
            self.base = base
        }

        /// The occupancy bitmap: bit n is set when slot n holds a value.
        @inlinable var occupied: UInt64 { SparseNode.bitmap(node) }

        /// The marks: bit n is set when slot n holds a marked key.
        @inlinable var marked: UInt64 { SparseNode.marks(node) }

        /// The value in an occupied `slot` (0 ..< 64).
        @inlinable subscript(slot: Int) -> Value {
            get { SparseIndex.value(in: node, slot: slot & SparseNode.slotMask) }
            nonmutating set { SparseIndex.setValue(newValue, in: node, slot: slot & SparseNode.slotMask) }
        }
    }

    /// The first leaf holding a key at or after `key`, made unique first so that its values may be
    /// changed in place; nil when no key at or after `key` is stored. O(h).
    /// - Context: the owner of this value (a single writer).
    mutating func leafForUpdate(atOrAfter key: UInt64) -> Leaf? {
        makeUnique()
        guard let root = storage.root, SparseNode.covers(key, height: storage.height) else { return nil }
        return Self.firstLeaf(atOrAfter: key, in: root, level: storage.height - 1, prefix: 0)
    }

    static func firstLeaf(atOrAfter key: UInt64, in node: UnsafeMutableRawPointer, level: Int, prefix: UInt64) -> Leaf? {
        let slot = SparseNode.slot(key, level: level)
        let bits = SparseNode.bitmap(node)
        if level == 0 {
            return bits & (~0 << UInt64(slot)) != 0 ? Leaf(node: node, base: prefix) : nil
        }
        let shift = UInt64(level * SparseNode.bitsPerLevel)
        if bits & (1 << UInt64(slot)) != 0,
           let found = firstLeaf(atOrAfter: key, in: SparseNode.child(node, slot)!, level: level - 1,
                                 prefix: prefix | UInt64(slot) << shift)
        {
            return found
        }
        let later = slot == 63 ? 0 : bits & (~0 << UInt64(slot + 1))
        guard later != 0 else { return nil }
        let next = later.trailingZeroBitCount
        return firstLeaf(atOrAfter: 0, in: SparseNode.child(node, next)!, level: level - 1, prefix: prefix | UInt64(next) << shift)
    }
}

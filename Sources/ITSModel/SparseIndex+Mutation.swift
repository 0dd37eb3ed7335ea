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
            SparseNode.setBitmap(leaf, bits | bit)
            storage.count &+= 1
        }
        Self.setValue(value, in: leaf, slot: slot)
        debugCheckAfterMutation(key)
        return previous
    }

    /// Removes `key` and returns its value, or nil when it was not stored. Frees every node the
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
        _ = root
        guard let removed = Self.erase(key, from: storage.root!, level: storage.height - 1, storage: storage) else {
            return nil
        }
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

    /// Removes `key` below `node` (at `level`), freeing each child the removal empties.
    static func erase(_ key: UInt64, from node: UnsafeMutableRawPointer, level: Int, storage: Storage) -> Value? {
        let slot = SparseNode.slot(key, level: level)
        let bit: UInt64 = 1 << UInt64(slot)
        let bits = SparseNode.bitmap(node)
        if level == 0 {
            guard bits & bit != 0 else { return nil }
            SparseNode.setBitmap(node, bits & ~bit)
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

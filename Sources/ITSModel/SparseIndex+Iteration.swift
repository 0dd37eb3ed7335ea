extension SparseIndex {
    /// The entry with the smallest key at or after `key`, or nil. O(h): the bitmaps locate the next
    /// occupied slot of each node without scanning. Use it as a resumable cursor for paged listings.
    /// - Context: any thread that may read this value.
    public func first(atOrAfter key: UInt64 = 0) -> (key: UInt64, value: Value)? {
        guard let root = storage.root else { return nil }
        let height = storage.height
        guard SparseNode.covers(key, height: height) else { return nil }
        return Self.first(atOrAfter: key, in: root, level: height - 1, prefix: 0)
    }

    /// The entry with the smallest key, or nil. O(h) with no search: the lowest bit of each node's
    /// bitmap names the child to take, since no node is left empty. What ``first(atOrAfter:)``
    /// finds from key 0, without its recursion.
    /// - Context: any thread that may read this value.
    public var first: (key: UInt64, value: Value)? {
        guard var node = storage.root else { return nil }
        var key: UInt64 = 0
        var shift = storage.rootShift
        while shift > 0 {
            let slot = SparseNode.bitmap(node).trailingZeroBitCount
            key |= UInt64(slot) << UInt64(shift)
            guard let child = SparseNode.child(node, slot) else { preconditionFailure("an empty interior node") }
            node = child
            shift -= SparseNode.bitsPerLevel
        }
        let slot = SparseNode.bitmap(node).trailingZeroBitCount
        return (key | UInt64(slot), Self.value(in: node, slot: slot))
    }

    /// The entry with the largest key, or nil. O(h).
    public var last: (key: UInt64, value: Value)? {
        guard var node = storage.root else { return nil }
        var key: UInt64 = 0
        var level = storage.height - 1
        while true {
            let slot = 63 - SparseNode.bitmap(node).leadingZeroBitCount
            key |= UInt64(slot) << UInt64(level * SparseNode.bitsPerLevel)
            if level == 0 { return (key, Self.value(in: node, slot: slot)) }
            node = SparseNode.child(node, slot)!
            level -= 1
        }
    }

    /// Calls `body` with every entry whose key lies in `range`, in ascending key order, until `body`
    /// returns false. O(k + nodes visited).
    /// - Context: any thread that may read this value; `body` must not mutate this index.
    public func forEach(in range: ClosedRange<UInt64> = 0 ... .max, _ body: (UInt64, Value) throws -> Bool) rethrows {
        guard let root = storage.root else { return }
        _ = try Self.visit(root, level: storage.height - 1, prefix: 0, range: range, onlyMarked: false, body)
    }

    /// All entries in ascending key order (a copy; for tests and dumps, not hot paths).
    public var entries: [(key: UInt64, value: Value)] {
        var result: [(key: UInt64, value: Value)] = []
        result.reserveCapacity(count)
        forEach { key, value in
            result.append((key, value))
            return true
        }
        return result
    }

    static func first(atOrAfter key: UInt64, in node: UnsafeMutableRawPointer, level: Int, prefix: UInt64)
        -> (key: UInt64, value: Value)?
    {
        let shift = UInt64(level * SparseNode.bitsPerLevel)
        let slot = SparseNode.slot(key, level: level)
        let bits = SparseNode.bitmap(node)
        if level == 0 {
            let candidates = bits & (~0 << UInt64(slot))
            guard candidates != 0 else { return nil }
            let found = candidates.trailingZeroBitCount
            return (prefix | UInt64(found), value(in: node, slot: found))
        }
        // The subtree at the key's own slot may hold a key at or after it...
        if bits & (1 << UInt64(slot)) != 0,
           let found = first(atOrAfter: key, in: SparseNode.child(node, slot)!, level: level - 1,
                             prefix: prefix | (UInt64(slot) << shift))
        {
            return found
        }
        // ...otherwise the smallest key of the next occupied slot is the answer.
        let later = slot == 63 ? 0 : bits & (~0 << UInt64(slot + 1))
        guard later != 0 else { return nil }
        let next = later.trailingZeroBitCount
        return first(atOrAfter: 0, in: SparseNode.child(node, next)!, level: level - 1,
                     prefix: prefix | (UInt64(next) << shift))
    }

    /// Visits the entries (or, with `onlyMarked`, the marked entries) under `node` in `range`;
    /// returns false once `body` asks to stop.
    static func visit(_ node: UnsafeMutableRawPointer, level: Int, prefix: UInt64, range: ClosedRange<UInt64>,
                      onlyMarked: Bool, _ body: (UInt64, Value) throws -> Bool) rethrows -> Bool
    {
        let shift = UInt64(level * SparseNode.bitsPerLevel)
        var bits = level == 0 && onlyMarked ? SparseNode.marks(node) : SparseNode.bitmap(node)
        while bits != 0 {
            let slot = bits.trailingZeroBitCount
            bits &= bits - 1
            let low = prefix | (UInt64(slot) << shift)
            let span: UInt64 = level == 0 ? 0 : (1 << shift) - 1
            let high = low | span
            if high < range.lowerBound { continue }
            if low > range.upperBound { return false }
            if level == 0 {
                if try !body(low, value(in: node, slot: slot)) { return false }
            } else if try !visit(SparseNode.child(node, slot)!, level: level - 1, prefix: low, range: range,
                                 onlyMarked: onlyMarked, body)
            {
                return false
            }
        }
        return true
    }
}

/// A sparse set of 64-bit keys, stored as 64-bit words in a ``SparseIndex`` keyed by key / 64. The
/// deliverable LPIs of a vCPU are kept in these, one per priority level (its pending LPIs are the
/// marks of its LPI index): setting, clearing and testing a bit are O(h), finding the
/// smallest member is O(h) through the occupancy bitmaps, and memory follows the occupied words.
public struct SparseBitSet: Sendable {
    @usableFromInline var words = SparseIndex<UInt64>()
    @usableFromInline var memberCount = 0
    /// The number of members. O(1).
    @inlinable public var count: Int { memberCount }

    @inlinable public init() {}

    @inlinable public var isEmpty: Bool { memberCount == 0 }

    @inlinable public func contains(_ key: UInt64) -> Bool {
        guard let word = words.load(key >> 6) else { return false }
        return word & (1 &<< (key & 63)) != 0
    }

    /// Adds `key`; returns false when it was already a member. One walk of the tree, which creates
    /// the path to the word when the word is new.
    @discardableResult
    @inlinable public mutating func insert(_ key: UInt64) -> Bool {
        let bit: UInt64 = 1 &<< (key & 63)
        let index = key >> 6
        guard words.insertBits(bit, at: index) else { return false }
        memberCount &+= 1
        return true
    }

    /// Removes `key`; returns false when it was not a member. A word left empty is erased. One walk
    /// of the tree, and a second only when the word empties.
    @discardableResult
    @inlinable public mutating func remove(_ key: UInt64) -> Bool {
        let bit: UInt64 = 1 &<< (key & 63)
        let index = key >> 6
        guard let rest = words.modify(index, { word -> UInt64? in
            guard word & bit != 0 else { return nil }
            word &= ~bit
            return word
        }), let rest else { return false }
        if rest == 0 { words.erase(index) }
        memberCount &-= 1
        return true
    }

    /// The smallest member, or nil. O(h), without a search (``SparseIndex/first``): the
    /// highest-priority pending LPI's lookup.
    public var first: UInt64? {
        guard let (index, word) = words.first else { return nil }
        return index << 6 | UInt64(word.trailingZeroBitCount)
    }

    /// The smallest member at or after `key`, or nil. O(h).
    public func first(atOrAfter key: UInt64 = 0) -> UInt64? {
        if let word = words.load(key >> 6) {
            let later = word & (~0 << (key & 63))
            if later != 0 { return (key & ~63) | UInt64(later.trailingZeroBitCount) }
        }
        guard key >> 6 < UInt64.max >> 6, let (index, word) = words.first(atOrAfter: (key >> 6) + 1) else { return nil }
        return index << 6 | UInt64(word.trailingZeroBitCount)
    }

    /// Calls `body` with each member in ascending order until it returns false.
    public func forEach(_ body: (UInt64) throws -> Bool) rethrows {
        try words.forEach { index, word in
            var bits = word
            while bits != 0 {
                if try !body(index << 6 | UInt64(bits.trailingZeroBitCount)) { return false }
                bits &= bits &- 1
            }
            return true
        }
    }

    /// Removes every member.
    public mutating func removeAll() {
        words.removeAll()
        memberCount = 0
    }

    /// Bytes of memory the set occupies.
    public var bytesUsed: Int { words.bytesUsed }
}

/// A sparse map from 64-bit keys to small values: a radix tree of fixed fan-out nodes, in the shape of
/// the Linux xarray that KVM keeps its LPIs in. It is the LPI index (keyed by INTID, its marks the
/// pending LPIs), the deliverable sets (keyed by INTID / 64, holding 64-bit words) and the ITS
/// translation tables of itsd.
///
/// Every node has 64 slots and a 64-bit occupancy bitmap. Interior nodes hold child pointers; the
/// nodes of the bottom level (leaves) hold the values inline. A tree of height `h` covers the keys
/// below 64^h: the height follows the largest key stored and shrinks again when it is erased, and an
/// empty subtree is freed as soon as its last key is erased. Lookups compute a slot per level from the
/// key's bits and never hash.
///
/// Complexity, with `h = ceil(log64(largest key + 1))` (at most 11; 3 for INTIDs below 2^18, 4 below
/// 2^24, 6 for 32-bit keys):
/// - ``load(_:)``: O(h), one dependent memory access per level.
/// - ``store(_:at:)``, ``erase(_:)``, ``update(_:_:)``: O(h) amortised; growing or shrinking the
///   height is O(1) per level added or removed.
/// - ``first(atOrAfter:)``: O(h) using the bitmaps (no slot scanning).
/// - ``forEach(in:_:)``: O(k + nodes visited) for k entries in the range.
/// - ``count``, ``bytesUsed``: O(1).
/// - Copying is O(1); the first mutation of a shared copy duplicates the tree (copy on write).
///
/// Memory: a leaf is 16 + 64 x stride(Value) bytes (its occupancy bitmap and its marks, then the
/// values) and an interior node 520 bytes; with 4-byte values and a quarter of a key range populated
/// this is under 20 bytes per entry.
///
/// Every stored key also carries a mark bit, kept in its leaf beside the occupancy bitmap
/// (SparseIndex+Marks.swift): the LPI index marks its pending LPIs, so that making an LPI pending
/// is the same walk that finds its record and one store.
///
/// Values are `BitwiseCopyable` so that nodes are plain memory that needs no per-value teardown.
///
/// In debug builds every mutation checks, in O(h): that the count matches the entries the leaf
/// bitmaps hold (a tally kept from the bitmaps themselves as they change), that no node on the
/// path it touched is empty (only those can have emptied) and their slots match their bitmap bits,
/// and that the height is minimal. While the tree holds at most ``fullCheckLimit`` entries it also
/// walks the whole tree; ``checkInvariants()`` does that at any size.
public struct SparseIndex<Value: BitwiseCopyable>: @unchecked Sendable {
    // @unchecked Sendable: `storage` is copy-on-write; it is mutated only when uniquely referenced, so
    // a copy handed to another thread is never written through by this one.

    @usableFromInline var storage: Storage

    /// Creates an empty index. Allocates nothing beyond the (empty) storage header.
    @inlinable public init() { storage = Storage() }

    /// The number of keys stored. O(1).
    @inlinable public var count: Int { storage.count }

    /// Whether no key is stored. O(1).
    @inlinable public var isEmpty: Bool { storage.count == 0 }

    /// The number of levels: 0 when empty, otherwise the smallest h with every key below 64^h.
    @inlinable public var height: Int { storage.height }

    /// Bytes of memory the index occupies: its nodes and its storage header. O(1).
    public var bytesUsed: Int {
        MemoryLayout<Int>.size * 8 + storage.interiorNodes * SparseNode.interiorBytes
            + storage.leafNodes * Self.leafBytes
    }

    /// The value stored at `key`, or nil. O(h).
    /// - Context: any thread that may read this value.
    @inlinable public func load(_ key: UInt64) -> Value? {
        guard let leaf = leaf(containing: key) else { return nil }
        let slot = Int(truncatingIfNeeded: key) & SparseNode.slotMask
        guard SparseNode.bitmap(leaf) & (1 &<< UInt64(slot)) != 0 else { return nil }
        return Self.value(in: leaf, slot: slot)
    }

    /// The value stored at `key`, or nil.
    @inlinable public subscript(key: UInt64) -> Value? { load(key) }

    /// Whether `key` is stored. O(h).
    @inlinable public func contains(_ key: UInt64) -> Bool { load(key) != nil }

    /// The leaf whose slots cover `key`, if it exists. One bound check against the precomputed
    /// ``Storage/largestCoveredKey``, then one child load per level above the leaves.
    @inlinable func leaf(containing key: UInt64) -> UnsafeMutableRawPointer? {
        guard var node = storage.root, key <= storage.largestCoveredKey else { return nil }
        var shift = storage.rootShift
        while shift > 0 {
            guard let child = SparseNode.child(node, Int(truncatingIfNeeded: key &>> UInt64(shift)) & SparseNode.slotMask)
            else { return nil }
            node = child
            shift &-= SparseNode.bitsPerLevel
        }
        return node
    }
}

extension SparseIndex {
    /// Owns the nodes of one tree. Freed nodes go straight back to the allocator.
    ///
    /// Exclusivity is not checked at run time on these fields: they are only reached through the
    /// owning `SparseIndex` value, whose own exclusivity is enforced statically, and copy on write
    /// guarantees no two values mutate the same storage.
    @usableFromInline final class Storage {
        @exclusivity(unchecked) @usableFromInline var root: UnsafeMutableRawPointer?
        @exclusivity(unchecked) @usableFromInline var height: Int = 0 {
            didSet {
                rootShift = max(0, height - 1) * SparseNode.bitsPerLevel
                largestCoveredKey = height >= SparseNode.maxHeight ? .max : (1 << UInt64(height * SparseNode.bitsPerLevel)) - 1
            }
        }
        /// Derived from `height` (kept by its observer) so that lookups do not recompute them: the
        /// shift of the root's slot in a key, (height - 1) x 6, and the largest key the tree covers,
        /// 64^height - 1 (0 when empty, where the missing root answers first).
        @exclusivity(unchecked) @usableFromInline var rootShift: Int = 0
        @exclusivity(unchecked) @usableFromInline var largestCoveredKey: UInt64 = 0
        @exclusivity(unchecked) @usableFromInline var count: Int = 0
        /// The number of marked keys.
        @exclusivity(unchecked) @usableFromInline var markedCount: Int = 0
        @exclusivity(unchecked) @usableFromInline var interiorNodes: Int = 0
        @exclusivity(unchecked) @usableFromInline var leafNodes: Int = 0
        /// Debug builds: occupied leaf slots, tallied from bitmap changes (``SparseIndex/setLeafBitmap(_:_:storage:)``).
        @exclusivity(unchecked) @usableFromInline var leafPopulation: Int = 0
        /// The leaf ``SparseIndex/mark(_:)`` walked to last and the keys it covers (key / 64), so
        /// that a run of marks in one leaf — LPIs with nearby INTIDs made pending one after
        /// another — walks the tree once. Set only by `mark(_:)`, on storage it has made unique;
        /// cleared by ``SparseIndex/erase(_:)``, the only operation that frees nodes (a copy and a
        /// new storage start without one). Stores only add nodes and growing the height keeps the
        /// leaves, so the leaf stays the one covering those keys until an erase.
        @exclusivity(unchecked) @usableFromInline var markedLeaf: UnsafeMutableRawPointer?
        @exclusivity(unchecked) @usableFromInline var markedLeafIndex: UInt64 = 0

        @usableFromInline init() {}

        deinit {
            if let root { SparseIndex.freeSubtree(root, level: height - 1) }
        }

        /// A deep copy of the tree, for copy on write.
        @usableFromInline func copy() -> Storage {
            let other = Storage()
            if let root { other.root = SparseIndex.copySubtree(root, level: height - 1) }
            other.height = height
            other.count = count
            other.markedCount = markedCount
            other.interiorNodes = interiorNodes
            other.leafNodes = leafNodes
            other.leafPopulation = leafPopulation
            return other
        }
    }

    /// Byte offset of slot 0 in a leaf: after the bitmap and the marks, aligned for Value.
    @usableFromInline static var leafValuesOffset: Int {
        max(16, (16 + MemoryLayout<Value>.alignment - 1) / MemoryLayout<Value>.alignment * MemoryLayout<Value>.alignment)
    }

    @usableFromInline static var leafBytes: Int {
        leafValuesOffset + SparseNode.fanout * MemoryLayout<Value>.stride
    }

    @usableFromInline static var leafAlignment: Int { max(8, MemoryLayout<Value>.alignment) }

    @inlinable static func value(in leaf: UnsafeMutableRawPointer, slot: Int) -> Value {
        // SAFETY: `leaf` was allocated by allocateLeaf with room for 64 values after its header, and
        // slot < 64 because every caller masks it with slotMask.
        leaf.load(fromByteOffset: leafValuesOffset &+ slot &* MemoryLayout<Value>.stride, as: Value.self)
    }

    @inlinable static func setValue(_ value: Value, in leaf: UnsafeMutableRawPointer, slot: Int) {
        // SAFETY: as in value(in:slot:).
        leaf.storeBytes(of: value, toByteOffset: leafValuesOffset &+ slot &* MemoryLayout<Value>.stride, as: Value.self)
    }

    @usableFromInline static func allocateLeaf() -> UnsafeMutableRawPointer {
        let leaf = UnsafeMutableRawPointer.allocate(byteCount: leafBytes, alignment: leafAlignment)
        SparseNode.setBitmap(leaf, 0)
        SparseNode.setMarks(leaf, 0)
        return leaf
    }

    static func freeSubtree(_ node: UnsafeMutableRawPointer, level: Int) {
        if level > 0 {
            var bits = SparseNode.bitmap(node)
            while bits != 0 {
                let slot = bits.trailingZeroBitCount
                bits &= bits &- 1
                freeSubtree(SparseNode.child(node, slot)!, level: level - 1)
            }
        }
        node.deallocate()
    }

    static func copySubtree(_ node: UnsafeMutableRawPointer, level: Int) -> UnsafeMutableRawPointer {
        if level == 0 {
            let leaf = allocateLeaf()
            leaf.copyMemory(from: node, byteCount: leafBytes)
            return leaf
        }
        let copy = SparseNode.allocateInterior()
        var bits = SparseNode.bitmap(node)
        SparseNode.setBitmap(copy, bits)
        while bits != 0 {
            let slot = bits.trailingZeroBitCount
            bits &= bits &- 1
            SparseNode.setChild(copy, slot, copySubtree(SparseNode.child(node, slot)!, level: level - 1))
        }
        return copy
    }
}

/// Layout of the nodes shared by every ``SparseIndex``: a 64-bit occupancy bitmap at offset 0, then
/// 64 slots. Interior slots are child pointers, nil when the bitmap bit is clear. A leaf has a
/// second word at offset 8, its marks (a subset of its bitmap), before its values.
@usableFromInline enum SparseNode {
    @usableFromInline static let bitsPerLevel = 6
    @usableFromInline static let fanout = 64
    @usableFromInline static let slotMask = 63
    /// 11 levels of 6 bits cover all 64-bit keys.
    @usableFromInline static let maxHeight = 11
    @usableFromInline static let interiorBytes = 8 + 64 * MemoryLayout<UnsafeMutableRawPointer?>.stride

    @inlinable static func slot(_ key: UInt64, level: Int) -> Int {
        Int(truncatingIfNeeded: key &>> UInt64(level &* bitsPerLevel)) & slotMask
    }

    /// Whether a tree of `height` levels has a slot for `key`.
    @inlinable static func covers(_ key: UInt64, height: Int) -> Bool {
        height >= maxHeight || key &>> UInt64(height &* bitsPerLevel) == 0
    }

    /// The smallest height whose tree covers `key`.
    @inlinable static func minimumHeight(for key: UInt64) -> Int {
        max(1, (64 - key.leadingZeroBitCount + bitsPerLevel - 1) / bitsPerLevel)
    }

    @inlinable static func bitmap(_ node: UnsafeMutableRawPointer) -> UInt64 {
        // SAFETY: every node starts with its bitmap (allocateInterior, allocateLeaf).
        node.load(as: UInt64.self)
    }

    @inlinable static func setBitmap(_ node: UnsafeMutableRawPointer, _ bits: UInt64) {
        node.storeBytes(of: bits, as: UInt64.self)
    }

    /// The marks of a leaf: bit n is set when slot n holds a marked key.
    @inlinable static func marks(_ leaf: UnsafeMutableRawPointer) -> UInt64 {
        // SAFETY: `leaf` is a leaf (the caller tracks levels); allocateLeaf puts its marks at offset 8.
        leaf.load(fromByteOffset: 8, as: UInt64.self)
    }

    @inlinable static func setMarks(_ leaf: UnsafeMutableRawPointer, _ bits: UInt64) {
        // SAFETY: as in marks(_:).
        leaf.storeBytes(of: bits, toByteOffset: 8, as: UInt64.self)
    }

    @inlinable static func child(_ node: UnsafeMutableRawPointer, _ slot: Int) -> UnsafeMutableRawPointer? {
        // SAFETY: `node` is interior (the caller tracks levels) with 64 pointer slots after the bitmap,
        // all initialised, and slot < 64.
        node.load(fromByteOffset: 8 &+ slot &* 8, as: UnsafeMutableRawPointer?.self)
    }

    @inlinable static func setChild(_ node: UnsafeMutableRawPointer, _ slot: Int, _ child: UnsafeMutableRawPointer?) {
        node.storeBytes(of: child, toByteOffset: 8 &+ slot &* 8, as: UnsafeMutableRawPointer?.self)
    }

    @usableFromInline static func allocateInterior() -> UnsafeMutableRawPointer {
        let node = UnsafeMutableRawPointer.allocate(byteCount: interiorBytes, alignment: 8)
        node.initializeMemory(as: UInt8.self, repeating: 0, count: interiorBytes)
        return node
    }
}

import CVhostDemo
import ToolSupport

/// The driver side of one split virtqueue in guest RAM (virtio 1.x, 2.7): the descriptor table, the
/// available ring the driver writes and the used ring the device writes. Little-endian throughout,
/// as VERSION_1 requires.
final class SplitVirtqueue {
    /// Where the three parts live in guest physical memory.
    struct Layout {
        /// 16-byte descriptors `{le64 addr, le32 len, le16 flags, le16 next}`, 16-byte aligned.
        var descriptors: UInt64
        /// `{le16 flags, le16 idx, le16 ring[N], le16 used_event}`, 2-byte aligned.
        var available: UInt64
        /// `{le16 flags, le16 idx, {le32 id, le32 len} ring[N], le16 avail_event}`, 4-byte aligned.
        var used: UInt64
    }

    /// Descriptor flags.
    enum DescriptorFlag {
        static let next: UInt16 = 1
        static let write: UInt16 = 2
    }

    /// One used-ring element: the head of a finished chain and the bytes the device wrote into it.
    struct UsedElement: Equatable {
        var head: UInt16
        var length: UInt32
    }

    let ram: GuestRAM
    let layout: Layout
    /// Entries in each ring, a power of 2.
    let size: Int
    /// The driver's free-running available index: avail.idx after the last publish.
    private(set) var nextAvailableIndex: UInt16 = 0
    /// The free-running index of the next used element the driver has not taken.
    private(set) var nextUsedIndex: UInt16 = 0

    init(ram: GuestRAM, layout: Layout, size: Int) {
        precondition(size > 0 && size <= 32768 && size & (size - 1) == 0, "a split ring's size is a power of 2")
        precondition(layout.descriptors % 16 == 0 && layout.available % 2 == 0 && layout.used % 4 == 0,
                     "ring alignment (virtio 1.x, 2.7)")
        self.ram = ram
        self.layout = layout
        self.size = size
        ram.fill(0, at: layout.descriptors, count: 16 * size)
        ram.fill(0, at: layout.available, count: 6 + 2 * size)
        ram.fill(0, at: layout.used, count: 6 + 8 * size)
    }

    /// Writes descriptor `index`.
    func setDescriptor(_ index: Int, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) {
        precondition(index < size, "descriptor \(index) beyond the table of \(size)")
        let entry = layout.descriptors + 16 * UInt64(index)
        ram.store(address, at: entry)
        ram.store(length, at: entry + 8)
        ram.store(flags, at: entry + 12)
        ram.store(next, at: entry + 14)
    }

    /// Makes the chain starting at `head` available: the ring entry first, then (after a store
    /// barrier) the index, so the device never sees an index covering an unwritten entry.
    func publish(head: UInt16) {
        let slot = UInt64(nextAvailableIndex) & UInt64(size - 1)
        ram.store(head, at: layout.available + 4 + 2 * slot)
        vhost_demo_store_fence()
        nextAvailableIndex &+= 1
        ram.store(nextAvailableIndex, at: layout.available + 2)
        vhost_demo_full_fence()
    }

    /// The used ring's index as the device last wrote it.
    var usedIndex: UInt16 { ram.load(UInt16.self, at: layout.used + 2) }

    /// Used elements the device has added that the driver has not taken yet.
    var unseenUsedCount: Int { Int(usedIndex &- nextUsedIndex) }

    /// Takes every used element the device has added since the last call.
    func takeUsed() throws(ToolError) -> [UsedElement] {
        let end = usedIndex
        vhost_demo_load_fence()
        let count = Int(end &- nextUsedIndex)
        guard count <= size else {
            throw ToolError("used.idx \(end) is \(count) ahead of the driver's \(nextUsedIndex), beyond the ring of \(size)")
        }
        var elements: [UsedElement] = []
        elements.reserveCapacity(count)
        while nextUsedIndex != end {
            let entry = layout.used + 4 + 8 * (UInt64(nextUsedIndex) & UInt64(size - 1))
            let head = ram.load(UInt32.self, at: entry)
            guard head < UInt32(size) else { throw ToolError("the device returned descriptor \(head), beyond \(size)") }
            elements.append(UsedElement(head: UInt16(head), length: ram.load(UInt32.self, at: entry + 4)))
            nextUsedIndex &+= 1
        }
        return elements
    }
}

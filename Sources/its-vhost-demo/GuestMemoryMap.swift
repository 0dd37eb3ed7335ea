/// Where the demo guest keeps things in its RAM (one region at guest physical address 0). The ITS
/// tables and the virtqueue share the region, as they would in a VM, and both itsd and the back-end
/// map all of it.
///
///     0x000000  LPI configuration table (64 KiB: INTIDs below 2^16)
///     0x010000  one 64 KiB-aligned LPI pending table per vCPU (8 KiB used of each)
///     0x100000  ITS command queue (one 4 KiB page: 128 commands)
///     0x110000  Device table (one 4 KiB page)
///     0x120000  Collection table (one 4 KiB page)
///     0x130000  the device's ITT
///     0x200000  descriptor table, 0x210000 available ring, 0x220000 used ring
///     0x300000  request buffers, 8 KiB per request slot
enum GuestMemoryMap {
    static let lpiConfiguration: UInt64 = 0x00_0000
    static let pendingTables: UInt64 = 0x01_0000
    static let pendingTableStride: UInt64 = 0x1_0000
    static let commandQueue: UInt64 = 0x10_0000
    static let commandQueueBytes: UInt64 = 0x1000
    static let deviceTable: UInt64 = 0x11_0000
    static let collectionTable: UInt64 = 0x12_0000
    static let itt: UInt64 = 0x13_0000
    static let ring = SplitVirtqueue.Layout(descriptors: 0x20_0000, available: 0x21_0000, used: 0x22_0000)
    static let requestBuffers: UInt64 = 0x30_0000

    /// vCPUs whose pending tables fit below the command queue.
    static let maxVCPUs = Int((commandQueue - pendingTables) / pendingTableStride)
    /// Request slots the demo allows (3 descriptors each in a ring of at most 1024).
    static let maxQueueDepth = 256

    /// RAM for `queueDepth` request slots, rounded up to 1 MiB.
    static func ramBytes(queueDepth: Int) -> UInt64 {
        let end = requestBuffers + VirtioBlkDriver.bufferBytes(queueDepth: queueDepth)
        return (end + 0xF_FFFF) & ~0xF_FFFF
    }

    /// The split ring's size for `queueDepth` requests of three descriptors: a power of 2, at least 8.
    static func ringSize(queueDepth: Int) -> Int {
        var size = 8
        while size < 3 * queueDepth { size *= 2 }
        return size
    }
}

/// A virtio-blk driver over one split virtqueue (virtio 1.x, 5.2.6): each request is a chain of
/// three descriptors — the 16-byte header `{le32 type, le32 reserved, le64 sector}` the device reads,
/// one 4 KiB data buffer, and the status byte the device writes last.
///
/// Requests alternate between writes and reads of 4 KiB blocks. Writes fill the block with a
/// pattern; a read must return the pattern of the block's last completed write (or zeros), so the
/// driver checks the data path end to end, not only that something completed. No two requests in
/// flight touch the same block.
import ToolSupport

final class VirtioBlkDriver {
    enum Kind: String {
        case read
        case write
    }

    /// A request from submission to completion.
    struct Request {
        var kind: Kind
        var block: Int
        /// The pattern a write stores, or the one a read expects (0: zeros).
        var pattern: UInt64
        var submittedAt: UInt64
    }

    static let blockBytes = 4096
    static let sectorsPerBlock: UInt64 = UInt64(blockBytes / 512)
    static let headerBytes = 16
    /// virtio-blk request types and the OK status.
    static let typeIn: UInt32 = 0
    static let typeOut: UInt32 = 1
    static let statusOK: UInt8 = 0

    let ring: SplitVirtqueue
    private let ram: GuestRAM
    private let buffers: UInt64
    /// Bytes of guest RAM each slot's header, status and data occupy.
    static let slotBytes: UInt64 = 0x2000
    /// Whether the back-end keeps what it is written (a file); a null device reads zeros.
    private let retainsData: Bool
    private var slots: [Request?]
    private var freeSlots: [Int]
    /// The pattern each block holds (0: never written, reads as zeros).
    private var contents: [UInt64]
    private var busy: [Bool]
    private var blockCursor = 0
    private var submitted = 0

    /// Blocks the driver spreads requests over; the disk must hold at least this many.
    var blockCount: Int { contents.count }

    /// Requests submitted and not yet completed.
    var inFlight: Int { slots.count - freeSlots.count }

    /// A driver with `queueDepth` request slots (each using descriptors 3i ... 3i + 2) whose buffers
    /// start at `buffers`, over `blockCount` blocks of the disk.
    init(ring: SplitVirtqueue, buffers: UInt64, queueDepth: Int, blockCount: Int, retainsData: Bool) {
        precondition(3 * queueDepth <= ring.size, "each request takes three descriptors")
        precondition(blockCount > queueDepth, "more blocks than requests in flight")
        self.ring = ring
        self.ram = ring.ram
        self.buffers = buffers
        self.retainsData = retainsData
        slots = Array(repeating: nil, count: queueDepth)
        freeSlots = Array((0 ..< queueDepth).reversed())
        contents = Array(repeating: 0, count: blockCount)
        busy = Array(repeating: false, count: blockCount)
    }

    /// Guest RAM the driver's buffers need for `queueDepth` slots.
    static func bufferBytes(queueDepth: Int) -> UInt64 { UInt64(queueDepth) * slotBytes }

    /// Builds the next request in a free slot and makes it available; false when every slot is busy.
    /// The caller kicks the device.
    func submit(now: UInt64) -> Bool {
        guard let slot = freeSlots.popLast() else { return false }
        let kind: Kind = submitted % 2 == 0 ? .write : .read
        submitted += 1
        var block = blockCursor
        while busy[block] { block = (block + 1) % contents.count }
        blockCursor = (block + 1) % contents.count
        busy[block] = true
        let pattern = kind == .write ? UInt64(submitted) << 20 | UInt64(block) : contents[block]

        let header = buffers + UInt64(slot) * Self.slotBytes
        let status = header + UInt64(Self.headerBytes)
        let data = header + 0x1000
        ram.store(kind == .write ? Self.typeOut : Self.typeIn, at: header)
        ram.store(UInt32(0), at: header + 4)
        ram.store(UInt64(block) * Self.sectorsPerBlock, at: header + 8)
        ram.store(UInt8(0xFF), at: status)
        if kind == .write {
            fillPattern(pattern, at: data)
        } else {
            ram.fill(0xA5, at: data, count: Self.blockBytes)
        }
        let head = 3 * slot
        ring.setDescriptor(head, address: header, length: UInt32(Self.headerBytes), flags: SplitVirtqueue.DescriptorFlag.next,
                           next: UInt16(head + 1))
        ring.setDescriptor(head + 1, address: data, length: UInt32(Self.blockBytes),
                           flags: SplitVirtqueue.DescriptorFlag.next | (kind == .read ? SplitVirtqueue.DescriptorFlag.write : 0),
                           next: UInt16(head + 2))
        ring.setDescriptor(head + 2, address: status, length: 1, flags: SplitVirtqueue.DescriptorFlag.write, next: 0)
        slots[slot] = Request(kind: kind, block: block, pattern: pattern, submittedAt: now)
        ring.publish(head: UInt16(head))
        return true
    }

    /// Finishes the request a used element returns, after checking it: a head the driver made
    /// available, `used.len` equal to the bytes the device wrote (the status byte, plus the block for
    /// a read), status OK, and for a read the block's expected contents.
    func complete(_ element: SplitVirtqueue.UsedElement) throws(ToolError) -> Request {
        let head = Int(element.head)
        guard head % 3 == 0, head / 3 < slots.count, let request = slots[head / 3] else {
            throw ToolError("the device returned descriptor \(head), which heads no request in flight")
        }
        let slot = head / 3
        let header = buffers + UInt64(slot) * Self.slotBytes
        let expectedLength = UInt32(request.kind == .read ? Self.blockBytes + 1 : 1)
        guard element.length == expectedLength else {
            throw ToolError("\(request.kind) of block \(request.block): used.len \(element.length), expected \(expectedLength)")
        }
        let status = ram.load(UInt8.self, at: header + UInt64(Self.headerBytes))
        guard status == Self.statusOK else {
            throw ToolError("\(request.kind) of block \(request.block) finished with status \(status)")
        }
        if request.kind == .read {
            try checkPattern(request.pattern, at: header + 0x1000, block: request.block)
        } else if retainsData {
            contents[request.block] = request.pattern
        }
        busy[request.block] = false
        slots[slot] = nil
        freeSlots.append(slot)
        return request
    }

    /// Word i of a block written with `pattern` holds pattern + i; pattern 0 is a block of zeros.
    private func fillPattern(_ pattern: UInt64, at gpa: UInt64) {
        for word in 0 ..< Self.blockBytes / 8 {
            ram.store(pattern == 0 ? 0 : pattern &+ UInt64(word), at: gpa + 8 * UInt64(word))
        }
    }

    private func checkPattern(_ pattern: UInt64, at gpa: UInt64, block: Int) throws(ToolError) {
        for word in 0 ..< Self.blockBytes / 8 {
            let expected = pattern == 0 ? 0 : pattern &+ UInt64(word)
            let found = ram.load(UInt64.self, at: gpa + 8 * UInt64(word))
            guard found == expected else {
                throw ToolError("read of block \(block): word \(word) is 0x\(String(found, radix: 16)), "
                    + "expected 0x\(String(expected, radix: 16))")
            }
        }
    }
}

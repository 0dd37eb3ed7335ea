/// Why an access to guest memory could not be carried out. Guest memory is untrusted and may be
/// unregistered at any address, so every access has this outcome instead of a trap.
public struct GuestMemoryFault: Error, Hashable, Sendable {
    public enum Kind: Sendable, Hashable {
        /// Some byte of the access lies outside every registered region.
        case unmapped
        /// The access would run past the end of the 64-bit address space.
        case addressOverflow
    }
    public var kind: Kind
    public var address: GuestAddress
    public var length: Int

    @inlinable public init(_ kind: Kind, address: GuestAddress, length: Int) {
        self.kind = kind
        self.address = address
        self.length = length
    }
}

/// Guest physical memory as the model sees it: bounds-checked byte copies in and out.
///
/// The model reads and writes the guest's tables (LPI configuration and pending tables, the ITS's
/// Device, Collection and Interrupt Translation Tables and its command queue) only through this
/// protocol. Implementations: ``InMemoryGuestMemory`` for tests and benchmarks, and the server's
/// mapping of the VM's memfds. Multi-byte helpers are little-endian, as the GIC's tables are.
///
/// An access must lie wholly inside one region; otherwise it faults and nothing is copied.
public protocol GuestMemory {
    /// Copies `buffer.count` bytes starting at `address` into `buffer`.
    func read(at address: GuestAddress, into buffer: UnsafeMutableRawBufferPointer) throws(GuestMemoryFault)
    /// Copies `bytes` into guest memory starting at `address`. Guest memory has reference
    /// semantics (it is the VM's RAM), so writing does not mutate the accessor.
    func write(at address: GuestAddress, from bytes: UnsafeRawBufferPointer) throws(GuestMemoryFault)
}

extension GuestMemory {
    @inlinable public func readUInt8(at address: GuestAddress) throws(GuestMemoryFault) -> UInt8 {
        var value: UInt8 = 0
        try withUnsafeMutableBytes(of: &value) { (buffer) throws(GuestMemoryFault) in try read(at: address, into: buffer) }
        return value
    }

    @inlinable public func readUInt32(at address: GuestAddress) throws(GuestMemoryFault) -> UInt32 {
        var value: UInt32 = 0
        try withUnsafeMutableBytes(of: &value) { (buffer) throws(GuestMemoryFault) in try read(at: address, into: buffer) }
        return UInt32(littleEndian: value)
    }

    @inlinable public func readUInt64(at address: GuestAddress) throws(GuestMemoryFault) -> UInt64 {
        var value: UInt64 = 0
        try withUnsafeMutableBytes(of: &value) { (buffer) throws(GuestMemoryFault) in try read(at: address, into: buffer) }
        return UInt64(littleEndian: value)
    }

    @inlinable public func writeUInt8(_ value: UInt8, at address: GuestAddress) throws(GuestMemoryFault) {
        try withUnsafeBytes(of: value) { (bytes) throws(GuestMemoryFault) in try write(at: address, from: bytes) }
    }

    @inlinable public func writeUInt32(_ value: UInt32, at address: GuestAddress) throws(GuestMemoryFault) {
        try withUnsafeBytes(of: value.littleEndian) { (bytes) throws(GuestMemoryFault) in try write(at: address, from: bytes) }
    }

    @inlinable public func writeUInt64(_ value: UInt64, at address: GuestAddress) throws(GuestMemoryFault) {
        try withUnsafeBytes(of: value.littleEndian) { (bytes) throws(GuestMemoryFault) in try write(at: address, from: bytes) }
    }
}

/// Guest memory held in Swift arrays: regions of bytes at guest physical addresses. For tests,
/// benchmarks and tools that build guest tables without a VM.
///
/// A class, because guest RAM has reference semantics: the ITS, the redistributors and the test
/// that plays the guest all see the same bytes. Not thread-safe; one thread uses an instance.
public final class InMemoryGuestMemory: GuestMemory {
    public struct Region: Sendable {
        public var base: GuestAddress
        public var bytes: [UInt8]
    }

    /// The regions, sorted by base address and not overlapping.
    public private(set) var regions: [Region] = []

    public init() {}

    /// A memory with one zero-filled region of `size` bytes at `base`.
    public convenience init(base: GuestAddress, size: Int) {
        self.init()
        precondition(addRegion(base: base, size: size), "the region overflows the address space")
    }

    /// Adds a zero-filled region. Returns false, changing nothing, when it would overlap another
    /// region or pass the end of the address space.
    @discardableResult
    public func addRegion(base: GuestAddress, size: Int) -> Bool {
        guard size > 0, let end = base.adding(UInt64(size) - 1) else { return false }
        for region in regions {
            let regionEnd = region.base.rawValue + UInt64(region.bytes.count - 1)
            if base.rawValue <= regionEnd && region.base.rawValue <= end.rawValue { return false }
        }
        regions.append(Region(base: base, bytes: [UInt8](repeating: 0, count: size)))
        regions.sort { $0.base < $1.base }
        return true
    }

    /// The index of the region holding all of `[address, address + length)`, and the offset in it.
    @usableFromInline func locate(_ address: GuestAddress, length: Int) throws(GuestMemoryFault) -> (Int, Int) {
        guard length == 0 || address.adding(UInt64(length) - 1) != nil else {
            throw GuestMemoryFault(.addressOverflow, address: address, length: length)
        }
        // The last region starting at or below the address is the only one that can hold it.
        var low = 0
        var high = regions.count
        while low < high {
            let mid = (low + high) / 2
            if regions[mid].base <= address { low = mid + 1 } else { high = mid }
        }
        if low > 0 {
            let region = regions[low - 1]
            let offset = address.rawValue - region.base.rawValue
            if offset <= UInt64(region.bytes.count), UInt64(region.bytes.count) - offset >= UInt64(length) {
                return (low - 1, Int(offset))
            }
        }
        throw GuestMemoryFault(.unmapped, address: address, length: length)
    }

    public func read(at address: GuestAddress, into buffer: UnsafeMutableRawBufferPointer) throws(GuestMemoryFault) {
        let (index, offset) = try locate(address, length: buffer.count)
        regions[index].bytes.withUnsafeBytes { source in
            // SAFETY: locate() proved offset + buffer.count <= source.count.
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset ..< offset + buffer.count]))
        }
    }

    public func write(at address: GuestAddress, from bytes: UnsafeRawBufferPointer) throws(GuestMemoryFault) {
        let (index, offset) = try locate(address, length: bytes.count)
        regions[index].bytes.withUnsafeMutableBytes { target in
            // SAFETY: locate() proved offset + bytes.count <= target.count.
            UnsafeMutableRawBufferPointer(rebasing: target[offset ..< offset + bytes.count]).copyMemory(from: bytes)
        }
    }
}

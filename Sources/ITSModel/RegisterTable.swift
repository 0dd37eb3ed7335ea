/// The width of an MMIO access.
public enum MMIOWidth: Int, Hashable, Sendable, CaseIterable {
    case byte = 1
    case halfword = 2
    case word = 4
    case doubleword = 8

    /// The bits an access of this width covers.
    @inlinable public var mask: UInt64 { self == .doubleword ? .max : (1 << UInt64(rawValue * 8)) - 1 }
}

/// Why a register access did nothing (reads return 0). Each is counted; none traps.
public enum MMIOIgnoredReason: Error, Hashable, Sendable {
    /// No register is implemented at the offset: RAZ/WI.
    case unimplementedOffset
    /// The register does not accept accesses of this width.
    case unsupportedWidth
    /// The offset is not a multiple of the access width.
    case misaligned
    /// A write to a read-only register.
    case readOnly
    /// A read of a write-only register (reads as 0).
    case writeOnly
    /// The register cannot change in the current state (a base register while it is in use).
    case lockedInCurrentState
    /// The write asks for something this implementation does not have (virtual LPIs, say).
    case unsupportedRequest
}

/// One architected register: where it is, how wide it is, which access widths it accepts, how it
/// reads and what a write does. A write returns an `Effect` that the owner then carries out with
/// what it needs (guest memory, a delivery sink), so the table itself stays free of I/O.
public struct RegisterDescriptor<Owner, Effect>: Sendable {
    public let name: String
    public let offset: UInt64
    /// The register's size in bytes, 4 or 8.
    public let size: Int
    /// The access widths it accepts. 64-bit registers take 64-bit accesses and 32-bit accesses to
    /// either half (IHI 0069, 12.1.3), unless the table says otherwise.
    public let widths: [MMIOWidth]
    /// nil for a write-only register.
    public let read: (@Sendable (Owner) -> UInt64)?
    /// nil for a read-only register. Gets the full register value after merging a partial write.
    public let write: (@Sendable (inout Owner, UInt64) -> Effect)?

    public init(_ name: String, offset: UInt64, size: Int, widths: [MMIOWidth]? = nil,
                read: (@Sendable (Owner) -> UInt64)?, write: (@Sendable (inout Owner, UInt64) -> Effect)?)
    {
        precondition(size == 4 || size == 8, "registers are 32 or 64 bits")
        self.name = name
        self.offset = offset
        self.size = size
        self.widths = widths ?? (size == 8 ? [.word, .doubleword] : [.word])
        self.read = read
        self.write = write
    }
}

/// A register frame described as data, the way KVM describes its vGIC regions: accesses are looked
/// up by offset (binary search), checked for width and alignment, and partial accesses to 64-bit
/// registers are merged here once for every register.
public struct RegisterTable<Owner, Effect>: Sendable {
    public let registers: [RegisterDescriptor<Owner, Effect>]

    public init(_ registers: [RegisterDescriptor<Owner, Effect>]) {
        let sorted = registers.sorted { $0.offset < $1.offset }
        for (a, b) in zip(sorted, sorted.dropFirst()) {
            precondition(a.offset + UInt64(a.size) <= b.offset, "registers \(a.name) and \(b.name) overlap")
        }
        self.registers = sorted
    }

    /// The register an access hits and the bit position of the access within it.
    public func locate(offset: UInt64, width: MMIOWidth) -> Result<(RegisterDescriptor<Owner, Effect>, UInt64), MMIOIgnoredReason> {
        guard offset % UInt64(width.rawValue) == 0 else { return .failure(.misaligned) }
        var low = 0
        var high = registers.count
        while low < high {
            let mid = (low + high) / 2
            if registers[mid].offset <= offset { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return .failure(.unimplementedOffset) }
        let register = registers[low - 1]
        let within = offset - register.offset
        guard within < UInt64(register.size) else { return .failure(.unimplementedOffset) }
        guard register.widths.contains(width), within + UInt64(width.rawValue) <= UInt64(register.size) else {
            return .failure(.unsupportedWidth)
        }
        return .success((register, within * 8))
    }

    /// Reads `width` bytes at `offset`: the value, or why the access was ignored (then it reads 0).
    public func read(_ owner: Owner, offset: UInt64, width: MMIOWidth) -> Result<UInt64, MMIOIgnoredReason> {
        switch locate(offset: offset, width: width) {
        case .failure(let reason):
            return .failure(reason)
        case .success(let (register, shift)):
            guard let read = register.read else { return .failure(.writeOnly) }
            return .success((read(owner) >> shift) & width.mask)
        }
    }

    /// Writes `width` bytes at `offset`. A partial write keeps the other bytes of a readable
    /// register and zeroes them in a write-only one. Returns the register's effect, or why the
    /// access was ignored.
    public func write(_ owner: inout Owner, offset: UInt64, width: MMIOWidth, value: UInt64) -> Result<Effect, MMIOIgnoredReason> {
        switch locate(offset: offset, width: width) {
        case .failure(let reason):
            return .failure(reason)
        case .success(let (register, shift)):
            guard let write = register.write else { return .failure(.readOnly) }
            let old = register.read?(owner) ?? 0
            let mask = width.mask << shift
            let merged = (old & ~mask) | ((value & width.mask) << shift)
            return .success(write(&owner, merged))
        }
    }
}

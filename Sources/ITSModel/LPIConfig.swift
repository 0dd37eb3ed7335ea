/// An interrupt priority: 0 is the highest. LPIs use bits [7:2] (IHI 0069, 5.1.1: the low two bits of
/// an LPI configuration byte's priority field are not priority bits), so they have 64 levels.
public struct Priority: RawRepresentable, Hashable, Comparable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public var rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt8) { self.rawValue = value }

    /// The lowest priority. As a priority mask it admits every LPI priority, since a mask admits the
    /// priorities strictly below it and an LPI's priority is at most 0xFC.
    public static let lowest = Priority(0xFF)
    public static let highest = Priority(0x00)

    /// The 6-bit group (0 ... 63) that orders LPI delivery.
    @inlinable public var level: Int { Int(rawValue >> 2) }

    @inlinable public static func < (a: Priority, b: Priority) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// One byte of the LPI Configuration table (IHI 0069, 5.1.1): priority in bits [7:2], bit 1 RES1
/// (group), Enable in bit 0. The byte of LPI `n` sits at GICR_PROPBASER.PA + (n - 8192).
public struct LPIConfig: RawRepresentable, Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public var rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The configuration an LPI gets when its byte cannot be read: disabled, so it is never delivered
    /// until a later INV reads a real byte.
    public static let unreadable = LPIConfig(rawValue: 0)

    @inlinable public init(priority: Priority, enabled: Bool) {
        rawValue = (priority.rawValue & 0xFC) | 0b10 | (enabled ? 1 : 0)
    }

    /// The priority, with the two low bits cleared as KVM and QEMU do (IHI 0069, 5.1.1).
    @inlinable public var priority: Priority { Priority(rawValue & 0xFC) }
    @inlinable public var isEnabled: Bool { rawValue & 1 != 0 }

    public var description: String { "priority \(priority)" + (isEnabled ? " enabled" : " disabled") }
}

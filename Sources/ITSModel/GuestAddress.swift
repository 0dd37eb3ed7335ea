/// A guest physical address. Guest-supplied addresses are untrusted, so the type offers only checked
/// arithmetic: every operation that could overflow returns nil instead of wrapping or trapping.
public struct GuestAddress: RawRepresentable, Hashable, Comparable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt64) { self.rawValue = value }

    /// The address `offset` bytes further on, or nil when that passes 2^64.
    @inlinable public func adding(_ offset: UInt64) -> GuestAddress? {
        let (sum, overflow) = rawValue.addingReportingOverflow(offset)
        return overflow ? nil : GuestAddress(sum)
    }

    /// The address `index * stride` bytes further on (a table entry), or nil on any overflow.
    @inlinable public func adding(index: UInt64, stride: UInt64) -> GuestAddress? {
        let (product, overflow) = index.multipliedReportingOverflow(by: stride)
        return overflow ? nil : adding(product)
    }

    /// The distance from `base` up to this address, or nil when this address lies below `base`.
    @inlinable public func offset(from base: GuestAddress) -> UInt64? {
        rawValue >= base.rawValue ? rawValue - base.rawValue : nil
    }

    /// Whether the address is a multiple of `alignment`, a power of two.
    @inlinable public func isAligned(to alignment: UInt64) -> Bool {
        rawValue & (alignment &- 1) == 0
    }

    @inlinable public static func < (a: GuestAddress, b: GuestAddress) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        let hex = String(rawValue, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - hex.count)) + hex
    }
}

/// Identifiers of the GIC architecture (Arm IHI 0069), each a distinct type so that a DeviceID is
/// never passed where an EventID is meant. No raw integers cross module boundaries.

/// An interrupt number. LPIs are the INTIDs from 8192 up to 2^(IDbits+1) - 1 (IHI 0069, 1.2.1).
public struct INTID: RawRepresentable, Hashable, Comparable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt32) { self.rawValue = value }

    /// The first LPI INTID.
    public static let firstLPI = INTID(8192)
    /// The INTID the CPU interface returns when nothing is pending (IHI 0069, 2.2.1, "special INTIDs").
    public static let spurious = INTID(1023)

    @inlinable public var isLPI: Bool { rawValue >= 8192 }
    @inlinable public static func < (a: INTID, b: INTID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

/// Which device sent an MSI (the ITS's DeviceID, up to 32 bits wide).
public struct DeviceID: RawRepresentable, Hashable, Comparable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt32) { self.rawValue = value }
    @inlinable public static func < (a: DeviceID, b: DeviceID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

/// Which of a device's vectors an MSI is (the data of the write to GITS_TRANSLATER).
public struct EventID: RawRepresentable, Hashable, Comparable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt32) { self.rawValue = value }
    @inlinable public static func < (a: EventID, b: EventID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

/// An interrupt collection (ICID), routed to one redistributor by MAPC.
public struct CollectionID: RawRepresentable, Hashable, Comparable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public var rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt16) { self.rawValue = value }
    @inlinable public static func < (a: CollectionID, b: CollectionID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

/// A vCPU of a VM, which is also its redistributor's Processor_Number (GICR_TYPER[23:8]) and, with
/// GITS_TYPER.PTA = 0, the RDbase of ITS commands.
public struct VCPUIndex: RawRepresentable, Hashable, Comparable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public var rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt16) { self.rawValue = value }
    @inlinable public static func < (a: VCPUIndex, b: VCPUIndex) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

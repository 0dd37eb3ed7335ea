/// Identifiers that travel on the wire (Protocol/PROTOCOL.md, "Conventions"). Each is its own type so
/// that a VM id is never passed where a DeviceID is meant. ITSWire does not import ITSModel: the GIC
/// identifiers live in the `Wire` namespace, and the server converts them once at its edge.

/// Namespace of the protocol's version and of the GIC identifiers as the wire carries them.
public enum Wire {
    /// The major version this library speaks. A different major is a different protocol.
    public static let majorVersion: UInt16 = 1
    /// The highest minor version this library speaks. Minor versions only add.
    public static let minorVersion: UInt16 = 2
    /// Size of the fixed frame header in bytes.
    public static let headerLength = 16

    /// The DeviceID of an MSI (the requester of the write to GITS_TRANSLATER).
    public struct DeviceID: RawRepresentable, Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
        public var rawValue: UInt32
        @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
        @inlinable public init(_ value: UInt32) { self.rawValue = value }
        public var description: String { String(rawValue) }
    }

    /// The EventID of an MSI (the data written to GITS_TRANSLATER).
    public struct EventID: RawRepresentable, Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
        public var rawValue: UInt32
        @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
        @inlinable public init(_ value: UInt32) { self.rawValue = value }
        public var description: String { String(rawValue) }
    }

    /// An interrupt number. 1023 means "no interrupt" in HPPI and ACK replies (IHI 0069, 2.2.1).
    public struct INTID: RawRepresentable, Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
        public var rawValue: UInt32
        @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
        @inlinable public init(_ value: UInt32) { self.rawValue = value }
        /// The special INTID returned when nothing is pending.
        public static let spurious = INTID(1023)
        public var description: String { String(rawValue) }
    }

    /// An interrupt collection (ICID), as shown by DUMP.
    public struct CollectionID: RawRepresentable, Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
        public var rawValue: UInt16
        @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }
        @inlinable public init(_ value: UInt16) { self.rawValue = value }
        public var description: String { String(rawValue) }
    }

    /// A vCPU of a VM, which is also the number of its redistributor frame.
    public struct VCPU: RawRepresentable, Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
        public var rawValue: UInt16
        @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }
        @inlinable public init(_ value: UInt16) { self.rawValue = value }
        public var description: String { String(rawValue) }
    }
}

/// A VM served by itsd (Protocol/PROTOCOL.md, "Conventions"). 0 is never a VM; 0xFFFF_FFFF means
/// "the whole server" where a message says so.
public struct VMID: RawRepresentable, Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt32) { self.rawValue = value }
    /// Selects the whole server (STATS only): its own statistics, and the per-VM ones summed over every
    /// VM the peer may see (PROTOCOL.md, 6.17).
    public static let all = VMID(0xFFFF_FFFF)
    public var description: String { String(rawValue) }
}

/// The identifier a request carries and its reply echoes. Chosen by the client; events carry the
/// connection's event sequence number instead.
public struct MessageID: RawRepresentable, Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt32) { self.rawValue = value }
    public var description: String { String(rawValue) }
}

/// The 128-bit secret that CREATE_VM returns and ATTACH_VM presents. Compared in constant time.
public struct VMToken: Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    /// A token from its two halves; on the wire the 16 bytes are `low` then `high`, each little-endian.
    @inlinable public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Compares two tokens without an early exit, so timing does not reveal the matching prefix.
    @inlinable public func matches(_ other: VMToken) -> Bool {
        ((high ^ other.high) | (low ^ other.low)) == 0
    }

    public var description: String { "VMToken(redacted)" }
}

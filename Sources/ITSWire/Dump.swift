/// DUMP: the ITS and LPI state of a VM, one section at a time, in pages (Protocol/PROTOCOL.md, "DUMP").

/// Which table a DUMP page lists.
public enum DumpSection: UInt16, Hashable, Sendable, BitwiseCopyable, CaseIterable {
    /// Mapped devices (MAPD V=1): 16-byte entries.
    case devices = 1
    /// Interrupt translation entries of every mapped device: 16-byte entries.
    case itt = 2
    /// Mapped collections (MAPC V=1): 8-byte entries.
    case collections = 3
    /// LPIs with their configuration and pending state: 8-byte entries.
    case lpis = 4

    /// Bytes per entry on the wire.
    public var entrySize: Int {
        switch self {
        case .devices, .itt: 16
        case .collections, .lpis: 8
        }
    }
}

/// A mapped device: `u32 device_id, u8 event_id_bits, u8 reserved[3], u64 itt_address`.
public struct DumpDevice: Hashable, Sendable, BitwiseCopyable {
    public var deviceID: Wire.DeviceID
    /// EventID width of the device's ITT (MAPD Size + 1).
    public var eventIDBits: UInt8
    /// Guest physical address of the ITT.
    public var ittAddress: UInt64

    public init(deviceID: Wire.DeviceID, eventIDBits: UInt8, ittAddress: UInt64) {
        self.deviceID = deviceID
        self.eventIDBits = eventIDBits
        self.ittAddress = ittAddress
    }
}

/// An ITT entry: `u32 device_id, u32 event_id, u32 intid, u16 icid, u16 reserved`.
public struct DumpITTEntry: Hashable, Sendable, BitwiseCopyable {
    public var deviceID: Wire.DeviceID
    public var eventID: Wire.EventID
    public var intid: Wire.INTID
    public var collection: Wire.CollectionID

    public init(deviceID: Wire.DeviceID, eventID: Wire.EventID, intid: Wire.INTID, collection: Wire.CollectionID) {
        self.deviceID = deviceID
        self.eventID = eventID
        self.intid = intid
        self.collection = collection
    }
}

/// A mapped collection: `u16 icid, u16 vcpu, u32 reserved`.
public struct DumpCollection: Hashable, Sendable, BitwiseCopyable {
    public var collection: Wire.CollectionID
    public var vcpu: Wire.VCPU

    public init(collection: Wire.CollectionID, vcpu: Wire.VCPU) {
        self.collection = collection
        self.vcpu = vcpu
    }
}

/// An LPI: `u32 intid, u8 priority, u8 flags (bit 0 enabled, bit 1 pending), u16 vcpu`.
public struct DumpLPI: Hashable, Sendable, BitwiseCopyable {
    public var intid: Wire.INTID
    public var priority: UInt8
    public var enabled: Bool
    public var pending: Bool
    /// The vCPU whose redistributor holds the LPI; 0xFFFF when it is not routed to any.
    public var vcpu: Wire.VCPU

    public init(intid: Wire.INTID, priority: UInt8, enabled: Bool, pending: Bool, vcpu: Wire.VCPU) {
        self.intid = intid
        self.priority = priority
        self.enabled = enabled
        self.pending = pending
        self.vcpu = vcpu
    }
}

/// The entries of one DUMP page, typed by section.
public enum DumpEntries: Hashable, Sendable {
    case devices([DumpDevice])
    case itt([DumpITTEntry])
    case collections([DumpCollection])
    case lpis([DumpLPI])

    public var section: DumpSection {
        switch self {
        case .devices: .devices
        case .itt: .itt
        case .collections: .collections
        case .lpis: .lpis
        }
    }

    public var count: Int {
        switch self {
        case .devices(let list): list.count
        case .itt(let list): list.count
        case .collections(let list): list.count
        case .lpis(let list): list.count
        }
    }
}

/// A DUMP reply.
public struct DumpPage: Hashable, Sendable {
    public var vm: VMID
    public var entries: DumpEntries
    /// The cursor for the next page, or `DumpPage.end` when the section is complete.
    public var nextCursor: UInt64

    /// The cursor value that means "no more pages".
    public static let end = UInt64.max

    public init(vm: VMID, entries: DumpEntries, nextCursor: UInt64) {
        self.vm = vm
        self.entries = entries
        self.nextCursor = nextCursor
    }
}

/// The opcode field of the frame header (Protocol/PROTOCOL.md, "Messages"). A struct so that an
/// unknown value can still be echoed in an error reply.
public struct Opcode: RawRepresentable, Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public var rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt16) { self.rawValue = value }

    public static let hello = Opcode(0x0001)
    public static let ping = Opcode(0x0002)
    /// Proves knowledge of a TCP listener's shared secret.
    public static let authenticate = Opcode(0x0003)
    public static let createVM = Opcode(0x0010)
    public static let attachVM = Opcode(0x0011)
    public static let destroyVM = Opcode(0x0012)
    public static let listVMs = Opcode(0x0013)
    public static let addMemRegion = Opcode(0x0020)
    public static let removeMemRegion = Opcode(0x0021)
    public static let mmioRead = Opcode(0x0030)
    public static let mmioWrite = Opcode(0x0031)
    public static let inject = Opcode(0x0040)
    public static let injectBatch = Opcode(0x0041)
    public static let bindIRQFD = Opcode(0x0050)
    public static let unbindIRQFD = Opcode(0x0051)
    public static let mask = Opcode(0x0052)
    public static let unmask = Opcode(0x0053)
    public static let setVCPUNotify = Opcode(0x0060)
    public static let clearVCPUNotify = Opcode(0x0061)
    public static let subscribe = Opcode(0x0062)
    public static let hppi = Opcode(0x0070)
    public static let ack = Opcode(0x0071)
    public static let pending = Opcode(0x0072)
    /// Waits for a deliverable LPI and acknowledges it (PROTOCOL.md, section 6.16a; added in 1.1).
    public static let waitAck = Opcode(0x0073)
    /// Ends a vCPU's WAIT_ACK, or latches the kick for its next one (PROTOCOL.md, section 6.16a; added in 1.1).
    public static let wake = Opcode(0x0074)
    /// Gives a vCPU an acknowledge slot in shared memory (PROTOCOL.md, section 6.16b; added in 1.2).
    public static let setAckSlot = Opcode(0x0075)
    /// Takes a vCPU's acknowledge slot away (PROTOCOL.md, section 6.16b; added in 1.2).
    public static let clearAckSlot = Opcode(0x0076)
    public static let stats = Opcode(0x0080)
    public static let dump = Opcode(0x0081)
    public static let snapshotVM = Opcode(0x0090)
    public static let restoreVM = Opcode(0x0091)
    /// Server-initiated: a vCPU has a deliverable LPI (sent with the EVENT flag).
    public static let eventVCPUNotify = Opcode(0x0100)
    /// Server-initiated: a VM was destroyed (sent with the EVENT flag).
    public static let eventVMGone = Opcode(0x0101)

    /// What the protocol says about one opcode: the table the decoder checks before reading a payload.
    public struct Traits: Sendable {
        /// The PROTOCOL.md name.
        public let name: String
        /// File descriptors a request with this opcode carries (SCM_RIGHTS); replies and events carry none.
        public let requestFDs: Int
        /// Whether a request may set NO_REPLY.
        public let noReplyAllowed: Bool
        /// Whether the opcode is an event (server to client, EVENT flag) rather than a request.
        public let isEvent: Bool
        /// The capability a request needs, if any.
        public let capability: Capabilities
        /// Whether a successful reply is the bare header (PROTOCOL.md, section 6: reply payload 0).
        public let replyIsEmpty: Bool
    }

    static func makeTraits(_ name: String, fds: Int = 0, noReply: Bool = false, event: Bool = false,
                           needs capability: Capabilities = [], emptyReply: Bool = false) -> Traits {
        Traits(name: name, requestFDs: fds, noReplyAllowed: noReply, isEvent: event, capability: capability,
               replyIsEmpty: emptyReply)
    }

    /// The traits of this opcode, or nil when version 1.2 does not define it.
    public var traits: Traits? {
        switch rawValue {
        case 0x0001: return Self.makeTraits("HELLO")
        case 0x0002: return Self.makeTraits("PING")
        case 0x0003: return Self.makeTraits("AUTHENTICATE", emptyReply: true)
        case 0x0010: return Self.makeTraits("CREATE_VM")
        case 0x0011: return Self.makeTraits("ATTACH_VM")
        case 0x0012: return Self.makeTraits("DESTROY_VM", emptyReply: true)
        case 0x0013: return Self.makeTraits("LIST_VMS")
        case 0x0020: return Self.makeTraits("ADD_MEM_REGION", fds: 1, emptyReply: true)
        case 0x0021: return Self.makeTraits("REMOVE_MEM_REGION", emptyReply: true)
        case 0x0030: return Self.makeTraits("MMIO_READ")
        case 0x0031: return Self.makeTraits("MMIO_WRITE", noReply: true, emptyReply: true)
        case 0x0040: return Self.makeTraits("INJECT", noReply: true, emptyReply: true)
        case 0x0041: return Self.makeTraits("INJECT_BATCH", noReply: true)
        case 0x0050: return Self.makeTraits("BIND_IRQFD", fds: 1, emptyReply: true)
        case 0x0051: return Self.makeTraits("UNBIND_IRQFD", emptyReply: true)
        case 0x0052: return Self.makeTraits("MASK", emptyReply: true)
        case 0x0053: return Self.makeTraits("UNMASK", emptyReply: true)
        case 0x0060: return Self.makeTraits("SET_VCPU_NOTIFY", fds: 1, emptyReply: true)
        case 0x0061: return Self.makeTraits("CLEAR_VCPU_NOTIFY", emptyReply: true)
        case 0x0062: return Self.makeTraits("SUBSCRIBE", needs: .events, emptyReply: true)
        case 0x0070: return Self.makeTraits("HPPI")
        case 0x0071: return Self.makeTraits("ACK")
        case 0x0072: return Self.makeTraits("PENDING")
        case 0x0073: return Self.makeTraits("WAIT_ACK")
        case 0x0074: return Self.makeTraits("WAKE", emptyReply: true)
        case 0x0075: return Self.makeTraits("SET_ACK_SLOT", fds: 1, emptyReply: true)
        case 0x0076: return Self.makeTraits("CLEAR_ACK_SLOT", emptyReply: true)
        case 0x0080: return Self.makeTraits("STATS")
        case 0x0081: return Self.makeTraits("DUMP")
        case 0x0090: return Self.makeTraits("SNAPSHOT_VM", needs: .snapshot)
        case 0x0091: return Self.makeTraits("RESTORE_VM", needs: .snapshot, emptyReply: true)
        case 0x0100: return Self.makeTraits("EVENT_VCPU_NOTIFY", event: true)
        case 0x0101: return Self.makeTraits("EVENT_VM_GONE", event: true)
        default: return nil
        }
    }

    /// Every opcode version 1.2 defines.
    public static let all: [Opcode] = [
        .hello, .ping, .authenticate, .createVM, .attachVM, .destroyVM, .listVMs, .addMemRegion, .removeMemRegion,
        .mmioRead, .mmioWrite, .inject, .injectBatch, .bindIRQFD, .unbindIRQFD, .mask, .unmask,
        .setVCPUNotify, .clearVCPUNotify, .subscribe, .hppi, .ack, .pending, .waitAck, .wake,
        .setAckSlot, .clearAckSlot,
        .stats, .dump,
        .snapshotVM, .restoreVM, .eventVCPUNotify, .eventVMGone,
    ]

    public var description: String {
        traits?.name ?? "OPCODE_0x" + String(rawValue, radix: 16)
    }
}

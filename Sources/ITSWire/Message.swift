/// Every message of version 1.2, decoded once at the edge (Protocol/PROTOCOL.md, "Messages").
/// A case is a request, a reply or an event; `Frame` adds the header fields the message does not fix.
public enum Message: Hashable, Sendable {
    /// The longest AUTHENTICATE secret.
    public static let maxSecretLength = 256
    /// The WAIT_ACK timeout that never expires.
    public static let noTimeout = UInt32.max

    // Requests (client to server).
    case hello(Hello)
    case ping(nonce: UInt64)
    /// The shared secret of a TCP listener (1 ... ``Message/maxSecretLength`` bytes).
    case authenticate(secret: [UInt8])
    case createVM(VMConfig)
    case attachVM(VMID, token: VMToken)
    case destroyVM(VMID)
    case listVMs
    case addMemRegion(MemRegion)
    case removeMemRegion(VMID, guestAddress: UInt64, size: UInt64)
    case mmioRead(MMIOAccess)
    case mmioWrite(MMIOAccess, value: UInt64, deviceID: Wire.DeviceID)
    case inject(VMID, Wire.DeviceID, Wire.EventID)
    case injectBatch(InjectBatch)
    case bindIRQFD(IRQFDKey, startMasked: Bool)
    case unbindIRQFD(IRQFDKey)
    case mask(IRQFDKey)
    case unmask(IRQFDKey)
    case setVCPUNotify(VMID, Wire.VCPU)
    case clearVCPUNotify(VMID, Wire.VCPU)
    case subscribe(VMID, EventMask)
    case hppi(VMID, Wire.VCPU)
    case ack(VMID, Wire.VCPU, priorityMask: UInt8)
    case pending(VMID, Wire.VCPU, cursor: UInt32, maxEntries: UInt32)
    /// ACK that waits up to `timeoutMicroseconds` for a deliverable LPI (0: ACK at once; ``Message/noTimeout``:
    /// no limit). Added in 1.1 (PROTOCOL.md, section 6.16a).
    case waitAck(VMID, Wire.VCPU, priorityMask: UInt8, timeoutMicroseconds: UInt32)
    /// Ends the vCPU's waiting WAIT_ACK, or sets its wake latch. Added in 1.1 (PROTOCOL.md, section 6.16a).
    case wake(VMID, Wire.VCPU)
    /// Gives the vCPU the acknowledge slot at byte `offset` of the memfd the request carries. Added
    /// in 1.2 (PROTOCOL.md, section 6.16b).
    case setAckSlot(VMID, Wire.VCPU, offset: UInt64)
    /// Takes the vCPU's acknowledge slot away. Added in 1.2 (PROTOCOL.md, section 6.16b).
    case clearAckSlot(VMID, Wire.VCPU)
    case stats(VMID, includeSchema: Bool)
    case dump(VMID, DumpSection, cursor: UInt64, maxEntries: UInt32)
    case snapshotVM(VMID, offset: UInt64, maxBytes: UInt32)
    case restoreVM(SnapshotChunk)

    // Replies (server to client, REPLY flag).
    /// A reply without payload: the request of this opcode succeeded.
    case done(Opcode)
    case helloReply(Hello)
    case pingReply(nonce: UInt64)
    case createVMReply(VMID, token: VMToken)
    case attachVMReply(VMID, VMConfig)
    case listVMsReply([VMInfo])
    case mmioReadReply(value: UInt64)
    case injectBatchReply(injected: UInt32, blocked: UInt32)
    case hppiReply(PendingLPI)
    /// The LPI an ACK acknowledged, or ``PendingLPI/none``; `more`: another ACK with the same mask
    /// would take an LPI now (flags bit 1, added in 1.2: only on a connection that agreed 1.2 or later).
    case ackReply(PendingLPI, more: Bool)
    /// The LPI a WAIT_ACK acknowledged, or ``PendingLPI/none``; `more` as in ``ackReply(_:more:)``.
    case waitAckReply(PendingLPI, more: Bool)
    case pendingReply([PendingLPI], nextCursor: UInt32)
    case statsReply(StatsReport)
    case dumpReply(DumpPage)
    case snapshotReply(SnapshotChunk)
    /// An error reply (REPLY and ERROR flags) to a request of this opcode.
    case error(Opcode, ErrorReport)

    // Events (server to client, EVENT flag).
    case vcpuNotify(VMID, Wire.VCPU)
    case vmGone(VMID, reason: VMGoneReason)

    /// Which of the three frame kinds the message is.
    public enum Kind: Sendable { case request, reply, event }
}

/// Parameters of a VM, as CREATE_VM sets them and ATTACH_VM and LIST_VMS report them.
public struct VMConfig: Hashable, Sendable, BitwiseCopyable {
    /// Number of vCPUs, hence of redistributor frames (1...512).
    public var vcpuCount: UInt16
    /// Width of DeviceIDs (GITS_TYPER.Devbits + 1), 1...32.
    public var deviceIDBits: UInt8
    /// Width of EventIDs (GITS_TYPER.IDbits + 1), 1...32.
    public var eventIDBits: UInt8
    /// Width of INTIDs (GICD_TYPER.IDbits + 1), 14...32.
    public var intidBits: UInt8

    @inlinable
    public init(vcpuCount: UInt16, deviceIDBits: UInt8, eventIDBits: UInt8, intidBits: UInt8) {
        self.vcpuCount = vcpuCount
        self.deviceIDBits = deviceIDBits
        self.eventIDBits = eventIDBits
        self.intidBits = intidBits
    }
}

/// One VM in a LIST_VMS reply.
public struct VMInfo: Hashable, Sendable, BitwiseCopyable {
    public var vm: VMID
    public var config: VMConfig
    /// Whether a client is attached, or the VM waits out its grace period without one.
    public var state: VMState
    /// Connections attached to the VM now.
    public var connections: UInt16

    @inlinable
    public init(vm: VMID, config: VMConfig, state: VMState, connections: UInt16) {
        self.vm = vm
        self.config = config
        self.state = state
        self.connections = connections
    }
}

/// Whether a VM has an attached client.
public enum VMState: UInt8, Hashable, Sendable, BitwiseCopyable {
    case attached = 0
    case orphaned = 1
}

/// A range of guest RAM backed by the memfd sent with ADD_MEM_REGION.
public struct MemRegion: Hashable, Sendable, BitwiseCopyable {
    public var vm: VMID
    /// Guest physical address of the first byte.
    public var guestAddress: UInt64
    /// Length in bytes.
    public var size: UInt64
    /// Offset of the first byte inside the memfd.
    public var fileOffset: UInt64

    @inlinable
    public init(vm: VMID, guestAddress: UInt64, size: UInt64, fileOffset: UInt64) {
        self.vm = vm
        self.guestAddress = guestAddress
        self.size = size
        self.fileOffset = fileOffset
    }
}

/// Which MMIO frame an access targets.
public enum MMIOFrame: Hashable, Sendable, BitwiseCopyable {
    /// The ITS frame, 128 KiB including GITS_TRANSLATER. Version 1.0 has one ITS per VM, so its
    /// `frame_index` is 0 on the wire and any other index is BAD_MMIO_FRAME.
    case its
    /// The redistributor of one vCPU (RD_base and SGI_base, 128 KiB).
    case redistributor(Wire.VCPU)
}

/// Width of an MMIO access in bytes.
public enum MMIOWidth: UInt8, Hashable, Sendable, BitwiseCopyable {
    case byte = 1
    case halfword = 2
    case word = 4
    case doubleword = 8
}

/// The common part of MMIO_READ and MMIO_WRITE.
public struct MMIOAccess: Hashable, Sendable, BitwiseCopyable {
    public var vm: VMID
    public var frame: MMIOFrame
    public var width: MMIOWidth
    /// Byte offset inside the frame.
    public var offset: UInt64

    @inlinable
    public init(vm: VMID, frame: MMIOFrame, width: MMIOWidth, offset: UInt64) {
        self.vm = vm
        self.frame = frame
        self.width = width
        self.offset = offset
    }
}

/// The (VM, DeviceID, EventID) an eventfd is bound to.
public struct IRQFDKey: Hashable, Sendable, BitwiseCopyable {
    public var vm: VMID
    public var deviceID: Wire.DeviceID
    public var eventID: Wire.EventID

    @inlinable
    public init(vm: VMID, deviceID: Wire.DeviceID, eventID: Wire.EventID) {
        self.vm = vm
        self.deviceID = deviceID
        self.eventID = eventID
    }
}

/// The events SUBSCRIBE asks for; an empty mask unsubscribes.
public struct EventMask: OptionSet, Hashable, Sendable, BitwiseCopyable {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// EVENT_VCPU_NOTIFY frames, for clients that hold no per-vCPU eventfd.
    public static let vcpuNotify = EventMask(rawValue: 1 << 0)
    /// EVENT_VM_GONE frames.
    public static let vmGone = EventMask(rawValue: 1 << 1)

    public static let defined: EventMask = [.vcpuNotify, .vmGone]
}

/// Why EVENT_VM_GONE was sent.
public enum VMGoneReason: UInt32, Hashable, Sendable, BitwiseCopyable {
    /// A client sent DESTROY_VM.
    case destroyed = 0
    /// No client re-attached within the grace period.
    case graceExpired = 1
}

/// A pending LPI as HPPI, ACK, WAIT_ACK and PENDING report it. INTID 1023 with priority 0xFF means none.
public struct PendingLPI: Hashable, Sendable, BitwiseCopyable {
    public var intid: Wire.INTID
    /// The priority from the LPI configuration table (bits [7:2] meaningful).
    public var priority: UInt8
    /// Whether the LPI's configuration byte has its enable bit set.
    public var enabled: Bool

    @inlinable
    public init(intid: Wire.INTID, priority: UInt8, enabled: Bool = false) {
        self.intid = intid
        self.priority = priority
        self.enabled = enabled
    }

    /// What HPPI, ACK and WAIT_ACK return when nothing is deliverable.
    public static let none = PendingLPI(intid: .spurious, priority: 0xFF)

    /// Bit 0 of the `flags` byte: the LPI is enabled.
    public static let enabledFlag: UInt8 = 1 << 0
    /// Bit 1 of the `flags` byte, in ACK and WAIT_ACK replies only: after this acknowledge the vCPU
    /// still has an LPI above the request's priority mask. Added in 1.2.
    public static let moreFlag: UInt8 = 1 << 1
}

/// An error reply: the status (carried in the header), a detail word and a short UTF-8 text for people.
public struct ErrorReport: Hashable, Sendable {
    /// Never OK.
    public var status: WireStatus
    /// Meaning depends on the status (PROTOCOL.md, "Status codes"); 0 when nothing applies.
    public var detail: UInt32
    /// At most `maxTextLength` bytes of UTF-8; may be empty.
    public var text: String

    /// The longest text an error reply carries, in bytes.
    public static let maxTextLength = 256

    public init(_ status: WireStatus, detail: UInt32 = 0, text: String = "") {
        self.status = status
        self.detail = detail
        self.text = text
    }
}

/// One chunk of a VM snapshot, as SNAPSHOT_VM replies and RESTORE_VM requests carry it. The bytes are
/// a slice of the decoded buffer (no copy); the snapshot image format is the server's (versioned inside).
public struct SnapshotChunk: Hashable, Sendable {
    public var vm: VMID
    /// Position of the first byte of `bytes` in the whole image.
    public var offset: UInt64
    /// Length of the whole image.
    public var totalLength: UInt64
    /// Whether this chunk ends the image.
    public var isLast: Bool
    public var bytes: ArraySlice<UInt8>

    public init(vm: VMID, offset: UInt64, totalLength: UInt64, isLast: Bool, bytes: ArraySlice<UInt8>) {
        self.vm = vm
        self.offset = offset
        self.totalLength = totalLength
        self.isLast = isLast
        self.bytes = bytes
    }

    public static func == (a: SnapshotChunk, b: SnapshotChunk) -> Bool {
        a.vm == b.vm && a.offset == b.offset && a.totalLength == b.totalLength && a.isLast == b.isLast
            && a.bytes.elementsEqual(b.bytes)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(vm)
        hasher.combine(offset)
        hasher.combine(totalLength)
        hasher.combine(isLast)
        for byte in bytes { hasher.combine(byte) }
    }
}

extension Message {
    /// The opcode the message travels under.
    public var opcode: Opcode {
        switch self {
        case .hello, .helloReply: .hello
        case .ping, .pingReply: .ping
        case .authenticate: .authenticate
        case .createVM, .createVMReply: .createVM
        case .attachVM, .attachVMReply: .attachVM
        case .destroyVM: .destroyVM
        case .listVMs, .listVMsReply: .listVMs
        case .addMemRegion: .addMemRegion
        case .removeMemRegion: .removeMemRegion
        case .mmioRead, .mmioReadReply: .mmioRead
        case .mmioWrite: .mmioWrite
        case .inject: .inject
        case .injectBatch, .injectBatchReply: .injectBatch
        case .bindIRQFD: .bindIRQFD
        case .unbindIRQFD: .unbindIRQFD
        case .mask: .mask
        case .unmask: .unmask
        case .setVCPUNotify: .setVCPUNotify
        case .clearVCPUNotify: .clearVCPUNotify
        case .subscribe: .subscribe
        case .hppi, .hppiReply: .hppi
        case .ack, .ackReply: .ack
        case .pending, .pendingReply: .pending
        case .waitAck, .waitAckReply: .waitAck
        case .wake: .wake
        case .setAckSlot: .setAckSlot
        case .clearAckSlot: .clearAckSlot
        case .stats, .statsReply: .stats
        case .dump, .dumpReply: .dump
        case .snapshotVM, .snapshotReply: .snapshotVM
        case .restoreVM: .restoreVM
        case .done(let opcode), .error(let opcode, _): opcode
        case .vcpuNotify: .eventVCPUNotify
        case .vmGone: .eventVMGone
        }
    }

    /// Whether the message is a request, a reply or an event.
    public var kind: Kind {
        switch self {
        case .done, .helloReply, .pingReply, .createVMReply, .attachVMReply, .listVMsReply, .mmioReadReply,
             .injectBatchReply, .hppiReply, .ackReply, .waitAckReply, .pendingReply, .statsReply, .dumpReply, .snapshotReply,
             .error:
            .reply
        case .vcpuNotify, .vmGone:
            .event
        default:
            .request
        }
    }
}

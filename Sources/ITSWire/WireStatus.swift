/// The status field of the frame header (Protocol/PROTOCOL.md, "Status codes"). A struct rather than an
/// enum because a peer speaking a later minor version may send codes this library does not name.
public struct WireStatus: RawRepresentable, Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt32) { self.rawValue = value }

    /// Success. The only status of a frame without the ERROR flag.
    public static let ok = WireStatus(0)

    // Malformed frames: detected by the decoder, one status per kind of defect.
    /// The frame's length is shorter than its message's layout needs.
    public static let truncated = WireStatus(1)
    /// The frame's length is longer than its message's layout.
    public static let trailingBytes = WireStatus(2)
    /// The length field is below the 16-byte header.
    public static let lengthBelowHeader = WireStatus(3)
    /// The length field is above the negotiated maximum frame length.
    public static let frameTooLarge = WireStatus(4)
    /// The opcode is not one of this version's, or not valid in this direction.
    public static let unknownOpcode = WireStatus(5)
    /// A reserved flag bit is set.
    public static let reservedFlags = WireStatus(6)
    /// The defined flags are combined in a way the protocol forbids.
    public static let flagConflict = WireStatus(7)
    /// The number of file descriptors that came with the frame differs from the opcode's count.
    public static let fdCountMismatch = WireStatus(8)
    /// A count field disagrees with the frame's length.
    public static let batchCountMismatch = WireStatus(9)
    /// A padding or reserved field (or a request's status field) is not zero.
    public static let nonzeroPadding = WireStatus(10)
    /// A string is not valid UTF-8 or is longer than its limit.
    public static let badString = WireStatus(11)
    /// An enumerated field holds a value this version does not define.
    public static let badValue = WireStatus(12)

    // Session.
    /// HELLO proposed a major version the server does not speak, or invalid limits.
    public static let versionMismatch = WireStatus(32)
    /// A request other than HELLO arrived before HELLO completed.
    public static let notHelloFirst = WireStatus(33)
    /// HELLO arrived on a connection that already completed it.
    public static let helloRepeated = WireStatus(34)
    /// The message carries file descriptors, which TCP cannot.
    public static let fdNotAllowedOnTCP = WireStatus(35)
    /// The file descriptor is not of the kind the message needs (memfd, eventfd).
    public static let badFD = WireStatus(36)
    /// The request needs a capability that HELLO did not agree.
    public static let capabilityNotAgreed = WireStatus(37)

    // VMs.
    /// No VM has this id (or the connection may not see it).
    public static let noSuchVM = WireStatus(64)
    /// ATTACH_VM presented a token that does not match.
    public static let badToken = WireStatus(65)
    /// The VM exists but this connection has not created or attached it.
    public static let notAttached = WireStatus(66)
    /// The peer's credentials do not allow the request.
    public static let permissionDenied = WireStatus(67)
    /// The vCPU (or redistributor frame) number is not below the VM's vCPU count.
    public static let noSuchVCPU = WireStatus(68)
    /// CREATE_VM parameters are outside the server's supported ranges.
    public static let badVMConfig = WireStatus(69)

    // Guest memory.
    /// The region is empty, unaligned, wraps, or lies outside its memfd.
    public static let badMemRegion = WireStatus(80)
    /// The region overlaps one already registered.
    public static let memRegionOverlap = WireStatus(81)
    /// REMOVE_MEM_REGION named a region that was never added.
    public static let noSuchMemRegion = WireStatus(82)

    // MMIO.
    /// The frame kind or frame index does not exist.
    public static let badMMIOFrame = WireStatus(96)
    /// The offset is not a register of the frame, or is not aligned to the width.
    public static let badMMIOOffset = WireStatus(97)
    /// The access width is not 1, 2, 4 or 8 bytes, or not allowed for the register.
    public static let badMMIOWidth = WireStatus(98)

    // Interrupts.
    /// The MSI was accepted but no LPI fired: the device or event is not mapped (KVM's "blocked").
    public static let translationBlocked = WireStatus(112)
    /// The ITS is disabled (GITS_CTLR.Enabled = 0), so no translation happens.
    public static let itsDisabled = WireStatus(113)
    /// UNBIND, MASK or UNMASK named a (DeviceID, EventID) with no bound eventfd.
    public static let notBound = WireStatus(114)
    /// BIND_IRQFD named a (DeviceID, EventID) that already has an eventfd.
    public static let alreadyBound = WireStatus(115)

    // General.
    /// A per-connection or per-VM limit would be exceeded.
    public static let limitExceeded = WireStatus(128)
    /// The VM is busy with an operation that excludes this one (snapshot, restore).
    public static let busy = WireStatus(129)
    /// The cursor or offset of a paged request is not one the server handed out.
    public static let badCursor = WireStatus(130)
    /// A RESTORE_VM chunk or the assembled snapshot is invalid.
    public static let badSnapshot = WireStatus(131)
    /// The server failed for a reason of its own.
    public static let `internal` = WireStatus(255)

    /// Every status this version defines, with its name as written in PROTOCOL.md.
    public static let named: [(WireStatus, String)] = [
        (.ok, "OK"), (.truncated, "TRUNCATED"), (.trailingBytes, "TRAILING_BYTES"),
        (.lengthBelowHeader, "LENGTH_BELOW_HEADER"), (.frameTooLarge, "FRAME_TOO_LARGE"),
        (.unknownOpcode, "UNKNOWN_OPCODE"), (.reservedFlags, "RESERVED_FLAGS"),
        (.flagConflict, "FLAG_CONFLICT"), (.fdCountMismatch, "FD_COUNT_MISMATCH"),
        (.batchCountMismatch, "BATCH_COUNT_MISMATCH"), (.nonzeroPadding, "NONZERO_PADDING"),
        (.badString, "BAD_STRING"), (.badValue, "BAD_VALUE"),
        (.versionMismatch, "VERSION_MISMATCH"), (.notHelloFirst, "NOT_HELLO_FIRST"),
        (.helloRepeated, "HELLO_REPEATED"), (.fdNotAllowedOnTCP, "FD_NOT_ALLOWED_ON_TCP"),
        (.badFD, "BAD_FD"), (.capabilityNotAgreed, "CAPABILITY_NOT_AGREED"),
        (.noSuchVM, "NO_SUCH_VM"), (.badToken, "BAD_TOKEN"), (.notAttached, "NOT_ATTACHED"),
        (.permissionDenied, "PERMISSION_DENIED"), (.noSuchVCPU, "NO_SUCH_VCPU"),
        (.badVMConfig, "BAD_VM_CONFIG"), (.badMemRegion, "BAD_MEM_REGION"),
        (.memRegionOverlap, "MEM_REGION_OVERLAP"), (.noSuchMemRegion, "NO_SUCH_MEM_REGION"),
        (.badMMIOFrame, "BAD_MMIO_FRAME"), (.badMMIOOffset, "BAD_MMIO_OFFSET"),
        (.badMMIOWidth, "BAD_MMIO_WIDTH"), (.translationBlocked, "TRANSLATION_BLOCKED"),
        (.itsDisabled, "ITS_DISABLED"), (.notBound, "NOT_BOUND"), (.alreadyBound, "ALREADY_BOUND"),
        (.limitExceeded, "LIMIT_EXCEEDED"), (.busy, "BUSY"), (.badCursor, "BAD_CURSOR"),
        (.badSnapshot, "BAD_SNAPSHOT"), (.internal, "INTERNAL"),
    ]

    /// The PROTOCOL.md name, or `STATUS_<n>` for a code this version does not define.
    public var name: String {
        for (status, name) in Self.named where status == self { return name }
        return "STATUS_\(rawValue)"
    }

    public var description: String { name }
}

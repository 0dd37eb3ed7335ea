/// The fixed 16-byte frame header (Protocol/PROTOCOL.md, "Frame header"):
///
///     offset 0  u32 length      whole frame in bytes, header included
///     offset 4  u16 opcode
///     offset 6  u16 flags       REPLY, NO_REPLY, ERROR, EVENT; other bits reserved, zero
///     offset 8  u32 message_id  chosen by the client, echoed by the reply
///     offset 12 u32 status      0 except in error replies
public struct FrameHeader: Hashable, Sendable, BitwiseCopyable {
    public var length: UInt32
    public var opcode: Opcode
    public var flags: FrameFlags
    public var messageID: MessageID
    public var status: WireStatus

    @inlinable
    public init(length: UInt32, opcode: Opcode, flags: FrameFlags, messageID: MessageID, status: WireStatus) {
        self.length = length
        self.opcode = opcode
        self.flags = flags
        self.messageID = messageID
        self.status = status
    }

    /// Reads a header from the first 16 bytes of `bytes` without checking any field.
    /// - Precondition: `bytes.count >= 16`.
    @inlinable
    public init(unchecked bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= Wire.headerLength)
        // SAFETY: the precondition puts all 16 bytes inside `bytes`; loadUnaligned has no alignment needs.
        length = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        opcode = Opcode(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self)))
        flags = FrameFlags(rawValue: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self)))
        messageID = MessageID(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
        status = WireStatus(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
    }
}

/// The flags field of the header.
public struct FrameFlags: OptionSet, Hashable, Sendable, BitwiseCopyable {
    public var rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The frame answers the request with the same message id.
    public static let reply = FrameFlags(rawValue: 1 << 0)
    /// The request wants no reply (INJECT, INJECT_BATCH, MMIO_WRITE only).
    public static let noReply = FrameFlags(rawValue: 1 << 1)
    /// The reply reports a failure; the status field says which.
    public static let error = FrameFlags(rawValue: 1 << 2)
    /// The frame is server-initiated and answers nothing.
    public static let event = FrameFlags(rawValue: 1 << 3)

    /// The bits version 1.0 defines; any other bit set is RESERVED_FLAGS.
    public static let defined: FrameFlags = [.reply, .noReply, .error, .event]
}

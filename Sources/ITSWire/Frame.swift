/// A whole frame: the message plus the header fields the message does not fix (its id, NO_REPLY).
/// The length, opcode, flags and status of the header follow from these.
public struct Frame: Hashable, Sendable {
    /// Echoed from the request in a reply; the event sequence number in an event.
    public var messageID: MessageID
    /// Whether a request asked for no reply (allowed on INJECT, INJECT_BATCH, MMIO_WRITE).
    public var noReply: Bool
    public var message: Message

    @inlinable
    public init(_ message: Message, id: MessageID, noReply: Bool = false) {
        self.message = message
        self.messageID = id
        self.noReply = noReply
    }

    /// The flags field this frame carries.
    public var flags: FrameFlags {
        switch message.kind {
        case .request: noReply ? .noReply : []
        case .event: .event
        case .reply:
            if case .error = message { [.reply, .error] } else { .reply }
        }
    }

    /// The status field this frame carries: the error's status, otherwise OK.
    public var status: WireStatus {
        if case .error(_, let report) = message { report.status } else { .ok }
    }
}

/// What one step of the decoder found at the start of the buffer.
public enum DecodeResult: Hashable, Sendable {
    /// The buffer holds less than a whole frame (and nothing wrong so far): read more and call again.
    case needMoreData
    /// A frame that is `consumed` bytes long.
    case frame(Frame, consumed: Int)
    /// A malformed frame. `error.resumeAfter` says how many bytes to skip, or nil if framing is lost.
    case failure(WireError)
}

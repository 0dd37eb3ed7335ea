/// A malformed frame, or a failed negotiation, as the decoder or HELLO reports it. Carries the status
/// the error reply must hold, the header when it could be read, and a detail word that goes into the
/// error payload (Protocol/PROTOCOL.md, "Error replies").
public struct WireError: Error, Hashable, Sendable {
    /// The status to report.
    public var status: WireStatus
    /// The offending frame's header, when all 16 bytes of it arrived and its length was acceptable.
    /// Its `messageID` and `opcode` go into the error reply.
    public var header: FrameHeader?
    /// Extra information for the error payload, as the "detail" column of PROTOCOL.md section 7 gives
    /// it per status: the limit for FRAME_TOO_LARGE and LIMIT_EXCEEDED, the expected count for
    /// FD_COUNT_MISMATCH, the offending count or value, or a byte offset counted from the frame's start.
    public var detail: UInt32

    @inlinable
    public init(_ status: WireStatus, header: FrameHeader? = nil, detail: UInt32 = 0) {
        self.status = status
        self.header = header
        self.detail = detail
    }

    /// Bytes the caller skips to reach the next frame, or nil when the framing is lost (the length
    /// field itself was bad) and the connection must close after the error reply.
    @inlinable
    public var resumeAfter: Int? {
        header.map { Int($0.length) }
    }
}

extension WireError {
    /// The error reply the server sends for this error (PROTOCOL.md, "Error replies"): the offending
    /// frame's opcode and message id, or 0 and 0 when the length field was bad.
    public func errorReply(text: String = "") -> Frame {
        let opcode = header?.opcode ?? Opcode(0)
        return Frame(.error(opcode, ErrorReport(status, detail: detail, text: text)),
                     id: header?.messageID ?? MessageID(0))
    }
}

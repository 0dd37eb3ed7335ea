/// The single-step frame decoder (Protocol/PROTOCOL.md, "Frame header" and "Malformed frames").
///
/// Give it the bytes received so far, starting at a frame boundary, and the number of file descriptors
/// that arrived with that frame; it returns `.needMoreData`, one decoded frame and its length, or a
/// `WireError` whose status names the defect. It holds no buffer and does no I/O. Every limit is
/// checked before anything is allocated: a bad length is rejected as soon as its 4 bytes arrive.
public struct FrameDecoder: Sendable {
    /// Which direction the decoder reads: a server reads requests, a client reads replies and events.
    public enum Role: Hashable, Sendable {
        case server
        case client
    }

    /// The socket a connection runs on: a Unix stream socket carries file descriptors, TCP does not.
    public enum Transport: Hashable, Sendable {
        case unixStream
        case tcp
    }

    public var role: Role
    /// The connection's limits: `Limits.beforeHello` until HELLO completes, then the agreed ones.
    public var limits: Limits
    /// On TCP a request whose opcode carries file descriptors is FD_NOT_ALLOWED_ON_TCP.
    public var transport: Transport

    public init(role: Role, limits: Limits = .beforeHello, transport: Transport = .unixStream) {
        self.role = role
        self.limits = limits
        self.transport = transport
    }

    /// Decodes the frame at the start of `bytes`.
    ///
    /// - Parameters:
    ///   - bytes: received bytes beginning at a frame boundary. Views in the result (INJECT_BATCH
    ///     entries, snapshot chunks) are slices of it and share its storage.
    ///   - fdCount: file descriptors the socket layer received with this frame (0 on TCP).
    /// - Context: any thread; the decoder is a value and touches nothing but its arguments.
    public func decode(_ bytes: ArraySlice<UInt8>, fdCount: Int) -> DecodeResult {
        bytes.withUnsafeBytes { raw in
            decode(raw: raw, slice: bytes, fdCount: fdCount)
        }
    }

    /// Decodes the frame at the start of `bytes`; see `decode(_:fdCount:)` on a slice.
    public func decode(_ bytes: [UInt8], fdCount: Int) -> DecodeResult {
        decode(bytes[...], fdCount: fdCount)
    }

    private func decode(raw: UnsafeRawBufferPointer, slice: ArraySlice<UInt8>, fdCount: Int) -> DecodeResult {
        guard raw.count >= 4 else { return .needMoreData }
        // SAFETY: the guard above puts the 4 length bytes inside `raw`; loadUnaligned needs no alignment.
        let length = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        guard length >= UInt32(Wire.headerLength) else {
            return .failure(WireError(.lengthBelowHeader, detail: length))
        }
        guard length <= limits.maxFrameLength else {
            return .failure(WireError(.frameTooLarge, detail: limits.maxFrameLength))
        }
        let frameLength = Int(length)
        guard raw.count >= frameLength else { return .needMoreData }
        // SAFETY: the guard above makes 0..<frameLength a range of `raw`, which outlives this call.
        let frameBytes = UnsafeRawBufferPointer(rebasing: raw[0..<frameLength])
        let header = FrameHeader(unchecked: frameBytes)
        do {
            let frame = try decodeFrame(header, frameBytes, slice: slice, fdCount: fdCount)
            return .frame(frame, consumed: frameLength)
        } catch {
            var located = error
            located.header = header
            return .failure(located)
        }
    }

    /// Checks the header against the role and the opcode table, then decodes the payload.
    private func decodeFrame(_ header: FrameHeader, _ raw: UnsafeRawBufferPointer, slice: ArraySlice<UInt8>,
                             fdCount: Int) throws(WireError) -> Frame {
        let flags = header.flags
        guard flags.isSubset(of: .defined) else {
            throw WireError(.reservedFlags, detail: UInt32(flags.subtracting(.defined).rawValue))
        }
        let kind = try kind(of: flags)
        let traits = header.opcode.traits
        let isError = flags.contains(.error)
        if !isError {
            guard let traits, traits.isEvent == (kind == .event) else {
                throw WireError(.unknownOpcode, detail: UInt32(header.opcode.rawValue))
            }
        }
        if isError {
            guard header.status != .ok else { throw WireError(.flagConflict) }
        } else if header.status != .ok {
            throw WireError(.nonzeroPadding, detail: 12)
        }
        if flags.contains(.noReply), traits?.noReplyAllowed != true {
            throw WireError(.flagConflict)
        }
        let expectedFDs = kind == .request ? (traits?.requestFDs ?? 0) : 0
        if expectedFDs > 0, transport == .tcp {
            throw WireError(.fdNotAllowedOnTCP, detail: UInt32(expectedFDs))
        }
        guard fdCount == expectedFDs else {
            throw WireError(.fdCountMismatch, detail: UInt32(expectedFDs))
        }
        var reader = ByteReader(frame: raw)
        let message: Message
        switch kind {
        case .request: message = try decodeRequest(header.opcode, &reader, slice: slice)
        case .reply:
            message = isError
                ? .error(header.opcode, try decodeErrorReport(header.status, &reader))
                : try decodeReply(header.opcode, &reader, slice: slice)
        case .event: message = try decodeEvent(header.opcode, &reader)
        }
        try reader.finish()
        return Frame(message, id: header.messageID, noReply: flags.contains(.noReply))
    }

    /// The frame kind the flags announce, if the role accepts it and the combination is allowed:
    /// a request has no flag but NO_REPLY; a reply has REPLY and perhaps ERROR; an event has EVENT only.
    private func kind(of flags: FrameFlags) throws(WireError) -> Message.Kind {
        let kind: Message.Kind
        if flags.contains(.event) {
            guard flags == .event else { throw WireError(.flagConflict) }
            kind = .event
        } else if flags.contains(.reply) {
            guard !flags.contains(.noReply) else { throw WireError(.flagConflict) }
            kind = .reply
        } else {
            guard !flags.contains(.error) else { throw WireError(.flagConflict) }
            kind = .request
        }
        switch (role, kind) {
        case (.server, .request), (.client, .reply), (.client, .event): return kind
        default: throw WireError(.flagConflict)
        }
    }

    private func decodeErrorReport(_ status: WireStatus, _ reader: inout ByteReader) throws(WireError) -> ErrorReport {
        let detail = try reader.u32()
        let textLength = Int(try reader.u16())
        try reader.zeros(2)
        guard textLength <= ErrorReport.maxTextLength else {
            throw WireError(.badString, detail: UInt32(reader.offset))
        }
        let text = try reader.string(length: textLength)
        try reader.padding(after: textLength)
        return ErrorReport(status, detail: detail, text: text)
    }

    private func decodeEvent(_ opcode: Opcode, _ reader: inout ByteReader) throws(WireError) -> Message {
        switch opcode {
        case .eventVCPUNotify:
            let vm = VMID(try reader.u32())
            let vcpu = Wire.VCPU(try reader.u16())
            try reader.zeros(2)
            return .vcpuNotify(vm, vcpu)
        default:
            let vm = VMID(try reader.u32())
            let raw = try reader.u32()
            guard let reason = VMGoneReason(rawValue: raw) else { throw WireError(.badValue, detail: raw) }
            return .vmGone(vm, reason: reason)
        }
    }
}

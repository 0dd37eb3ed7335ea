import Testing
@testable import ITSWire

/// WAIT_ACK and WAKE, added in 1.1 (PROTOCOL.md, section 6.16a): their payloads are exact in length,
/// every reserved byte is zero, neither takes NO_REPLY, and the timeout word travels untouched.
@Suite struct WaitAckWakeTests {
    let server = FrameDecoder(role: .server, limits: .defaults)
    let client = FrameDecoder(role: .client, limits: .defaults)

    func frame(_ opcode: Opcode, flags: UInt16 = 0, payload: [UInt8]) -> [UInt8] {
        rawFrame(opcode, flags: flags, id: 5, payload: payload)
    }

    /// `u32 vm 1, u16 vcpu 3, u8 priority_mask 0xF0, u8 reserved, u32 timeout_us, u32 reserved`.
    func waitAckPayload(timeout: UInt32 = 250) -> [UInt8] {
        var w = ByteWriter(bytes: [])
        w.u32(1)
        w.u16(3)
        w.u8(0xF0)
        w.u8(0)
        w.u32(timeout)
        w.u32(0)
        return w.bytes
    }

    let wakePayload: [UInt8] = [1, 0, 0, 0, 3, 0, 0, 0]

    func failure(_ decoder: FrameDecoder, _ bytes: [UInt8]) -> WireError? {
        if case .failure(let error) = decoder.decode(bytes, fdCount: 0) { return error }
        return nil
    }

    func decoded(_ decoder: FrameDecoder, _ bytes: [UInt8]) -> Message? {
        if case .frame(let frame, _) = decoder.decode(bytes, fdCount: 0) { return frame.message }
        return nil
    }

    @Test func opcodesAreTabled() throws {
        #expect(Opcode.all.contains(.waitAck) && Opcode.all.contains(.wake))
        let waitAck = try #require(Opcode.waitAck.traits)
        #expect(waitAck.name == "WAIT_ACK" && waitAck.requestFDs == 0 && !waitAck.noReplyAllowed)
        #expect(!waitAck.replyIsEmpty && !waitAck.isEvent && waitAck.capability.isEmpty)
        let wake = try #require(Opcode.wake.traits)
        #expect(wake.name == "WAKE" && wake.requestFDs == 0 && !wake.noReplyAllowed)
        #expect(wake.replyIsEmpty && !wake.isEvent && wake.capability.isEmpty)
        #expect(Wire.minorVersion >= 1)
    }

    @Test func messagesClassify() {
        let lpi = PendingLPI(intid: Wire.INTID(8200), priority: 0x80, enabled: true)
        #expect(Message.waitAck(VMID(1), Wire.VCPU(0), priorityMask: 0xFF, timeoutMicroseconds: 0).kind == .request)
        #expect(Message.wake(VMID(1), Wire.VCPU(0)).kind == .request)
        #expect(Message.waitAckReply(lpi, more: true).kind == .reply)
        #expect(Message.waitAckReply(lpi, more: false).opcode == .waitAck)
        #expect(Message.wake(VMID(1), Wire.VCPU(0)).opcode == .wake)
        #expect(Message.done(.wake).kind == .reply)
    }

    /// The timeout's extremes (0: answer at once; all ones: no timeout) and every vCPU width round-trip.
    @Test(arguments: [UInt32(0), 1, 10_000, Message.noTimeout])
    func waitAckRoundTrips(timeout: UInt32) {
        let request = Frame(.waitAck(VMID(0xDEAD_BEEF), Wire.VCPU(511), priorityMask: 0x08,
                                     timeoutMicroseconds: timeout), id: MessageID(4))
        #expect(request.encoded.count == 16 + 16)
        #expect(decoded(server, request.encoded) == request.message)
        for reply in [Message.waitAckReply(.none, more: false),
                      .waitAckReply(PendingLPI(intid: Wire.INTID(8192), priority: 0), more: true)] {
            #expect(decoded(client, Frame(reply, id: MessageID(4)).encoded) == reply)
        }
    }

    @Test func waitAckGoldenBytes() {
        #expect(frame(.waitAck, payload: waitAckPayload())
                    == Frame(.waitAck(VMID(1), Wire.VCPU(3), priorityMask: 0xF0, timeoutMicroseconds: 250),
                             id: MessageID(5)).encoded)
        #expect(frame(.wake, payload: wakePayload) == Frame(.wake(VMID(1), Wire.VCPU(3)), id: MessageID(5)).encoded)
        #expect(frame(.wake, flags: 1, payload: []) == Frame(.done(.wake), id: MessageID(5)).encoded)
    }

    /// Offsets 7 and 12-15 of WAIT_ACK and 6-7 of WAKE are reserved; the detail is the frame offset.
    @Test func reservedBytesMustBeZero() {
        for offset in [7, 12, 13, 14, 15] {
            var payload = waitAckPayload()
            payload[offset] = 0x40
            let error = failure(server, frame(.waitAck, payload: payload))
            #expect(error?.status == .nonzeroPadding, "WAIT_ACK offset \(offset)")
            #expect(error?.detail == UInt32(16 + offset), "WAIT_ACK offset \(offset)")
        }
        for offset in [6, 7] {
            var payload = wakePayload
            payload[offset] = 1
            let error = failure(server, frame(.wake, payload: payload))
            #expect(error?.status == .nonzeroPadding, "WAKE offset \(offset)")
            #expect(error?.detail == UInt32(16 + offset), "WAKE offset \(offset)")
        }
    }

    @Test func lengthIsExact() {
        #expect(failure(server, frame(.waitAck, payload: Array(waitAckPayload()[..<8])))?.status == .truncated)
        #expect(failure(server, frame(.waitAck, payload: Array(waitAckPayload()[..<12])))?.status == .truncated)
        #expect(failure(server, frame(.waitAck, payload: waitAckPayload() + [0, 0, 0, 0, 0, 0, 0, 0]))?.status
                    == .trailingBytes)
        #expect(failure(server, frame(.wake, payload: [1, 0, 0, 0]))?.status == .truncated)
        #expect(failure(server, frame(.wake, payload: wakePayload + [0, 0, 0, 0, 0, 0, 0, 0]))?.status
                    == .trailingBytes)
        #expect(failure(client, frame(.waitAck, flags: 1, payload: [0, 0x20, 0, 0]))?.status == .truncated)
        #expect(failure(client, frame(.wake, flags: 1, payload: [0, 0, 0, 0, 0, 0, 0, 0]))?.status == .trailingBytes)
    }

    @Test func noReplyIsRefused() {
        #expect(failure(server, frame(.waitAck, flags: 2, payload: waitAckPayload()))?.status == .flagConflict)
        #expect(failure(server, frame(.wake, flags: 2, payload: wakePayload))?.status == .flagConflict)
    }

    /// Bits 0 and 1 of the reply's flags are defined (enabled, and `more` since 1.2: AckMoreTests).
    @Test func replyFlagsAreChecked() {
        #expect(failure(client, frame(.waitAck, flags: 1, payload: [0, 0x20, 0, 0, 0xA0, 4, 0, 0]))?.status
                    == .badValue)
        #expect(failure(client, frame(.waitAck, flags: 1, payload: [0, 0x20, 0, 0, 0xA0, 1, 0, 1]))?.status
                    == .nonzeroPadding)
    }
}

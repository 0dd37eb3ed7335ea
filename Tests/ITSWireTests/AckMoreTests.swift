import Testing
@testable import ITSWire

/// The `more` bit of ACK and WAIT_ACK replies, added in 1.2 (PROTOCOL.md, section 6.16): flags bit 1
/// travels in those two replies only; HPPI replies and PENDING entries keep bit 0 alone, and every
/// other bit is BAD_VALUE with the flags byte as detail.
@Suite struct AckMoreTests {
    let client = FrameDecoder(role: .client, limits: .defaults)

    /// A reply frame of `opcode` whose payload is the 8-byte LPI layout with `flags`.
    func lpiReply(_ opcode: Opcode, flags: UInt8) -> [UInt8] {
        var w = ByteWriter(bytes: [])
        w.u32(24)
        w.u16(opcode.rawValue)
        w.u16(1)
        w.u32(7)
        w.u32(0)
        w.u32(8193)
        w.u8(0x80)
        w.u8(flags)
        w.u16(0)
        return w.bytes
    }

    /// A PENDING reply with one entry whose flags are `flags`.
    func pendingReply(flags: UInt8) -> [UInt8] {
        var w = ByteWriter(bytes: [])
        w.u32(32)
        w.u16(Opcode.pending.rawValue)
        w.u16(1)
        w.u32(7)
        w.u32(0)
        w.u32(1)
        w.u32(0)
        w.u32(8193)
        w.u8(0x80)
        w.u8(flags)
        w.u16(0)
        return w.bytes
    }

    func decoded(_ bytes: [UInt8]) -> Message? {
        if case .frame(let frame, _) = client.decode(bytes, fdCount: 0) { return frame.message }
        return nil
    }

    /// The detail of the BAD_VALUE the decoder answers `bytes` with, if that is its answer.
    func badValue(_ bytes: [UInt8]) -> UInt32? {
        guard case .failure(let error) = client.decode(bytes, fdCount: 0), error.status == .badValue else { return nil }
        return error.detail
    }

    let lpi = PendingLPI(intid: Wire.INTID(8193), priority: 0x80, enabled: true)

    @Test(arguments: [false, true], [false, true])
    func acknowledgeRepliesRoundTrip(more: Bool, enabled: Bool) {
        let lpi = PendingLPI(intid: Wire.INTID(8193), priority: 0x80, enabled: enabled)
        for message in [Message.ackReply(lpi, more: more), .waitAckReply(lpi, more: more)] {
            let bytes = Frame(message, id: MessageID(7)).encoded
            #expect(bytes[16 + 5] == (enabled ? 1 : 0) | (more ? 2 : 0), "flags byte of \(message)")
            #expect(decoded(bytes) == (message))
        }
    }

    @Test func moreIsReadFromBitOne() {
        #expect(decoded(lpiReply(.ack, flags: 3)) == (.ackReply(lpi, more: true)))
        #expect(decoded(lpiReply(.waitAck, flags: 3)) == (.waitAckReply(lpi, more: true)))
        #expect(decoded(lpiReply(.ack, flags: 1)) == (.ackReply(lpi, more: false)))
        #expect(decoded(lpiReply(.waitAck, flags: 2))
                    == (.waitAckReply(PendingLPI(intid: Wire.INTID(8193), priority: 0x80), more: true)))
    }

    @Test func theNoneReplyCarriesNoFlags() {
        let bytes = Frame(.ackReply(.none, more: false), id: MessageID(7)).encoded
        #expect(Array(bytes[16...]) == [0xFF, 0x03, 0, 0, 0xFF, 0, 0, 0])
    }

    /// Bit 1 is undefined in an HPPI reply and a PENDING entry.
    @Test func bitOneIsRefusedOutsideAcknowledgeReplies() {
        #expect(badValue(lpiReply(.hppi, flags: 3)) == 3)
        #expect(badValue(pendingReply(flags: 2)) == 2)
        #expect(decoded(lpiReply(.hppi, flags: 1)) == (.hppiReply(lpi)))
    }

    /// Bits 2-7 stay undefined in every reply of this layout.
    @Test(arguments: 2 ..< 8)
    func otherBitsAreRefused(bit: Int) {
        let flags = UInt8(1) << UInt8(bit) | 1
        for opcode in [Opcode.ack, .waitAck, .hppi] {
            #expect(badValue(lpiReply(opcode, flags: flags)) == UInt32(flags), "\(opcode) flags \(flags)")
        }
        #expect(badValue(pendingReply(flags: flags)) == UInt32(flags))
    }

    /// The encoder writes bit 1 only where it is defined: HPPI and PENDING have no `more`.
    @Test func hppiAndPendingEncodeBitZeroOnly() {
        #expect(Frame(.hppiReply(lpi), id: MessageID(7)).encoded[16 + 5] == 1)
        #expect(Frame(.pendingReply([lpi], nextCursor: 0), id: MessageID(7)).encoded[16 + 8 + 5] == 1)
    }
}

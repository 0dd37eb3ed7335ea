import Testing
@testable import ITSWire

/// SET_ACK_SLOT, CLEAR_ACK_SLOT and the acknowledge slot word, added in 1.2 (PROTOCOL.md, section
/// 6.16b): the requests' layouts and checks, and the word's encodings and the words no side may write.
@Suite struct AckSlotTests {
    let server = FrameDecoder(role: .server, limits: .defaults)
    let client = FrameDecoder(role: .client, limits: .defaults)

    func frame(_ opcode: Opcode, flags: UInt16 = 0, payload: [UInt8]) -> [UInt8] {
        rawFrame(opcode, flags: flags, id: 9, payload: payload)
    }

    /// `u32 vm 1, u16 vcpu 3, u16 reserved, u64 offset`.
    func setPayload(offset: UInt64 = 64) -> [UInt8] {
        var w = ByteWriter(bytes: [])
        w.u32(1)
        w.u16(3)
        w.u16(0)
        w.u64(offset)
        return w.bytes
    }

    let clearPayload: [UInt8] = [1, 0, 0, 0, 3, 0, 0, 0]

    func failure(_ decoder: FrameDecoder, _ bytes: [UInt8], fds: Int) -> WireError? {
        if case .failure(let error) = decoder.decode(bytes, fdCount: fds) { return error }
        return nil
    }

    func decoded(_ decoder: FrameDecoder, _ bytes: [UInt8], fds: Int) -> Message? {
        if case .frame(let frame, _) = decoder.decode(bytes, fdCount: fds) { return frame.message }
        return nil
    }

    // MARK: The requests

    @Test func opcodesAreTabled() throws {
        #expect(Wire.minorVersion == 2)
        let set = try #require(Opcode.setAckSlot.traits)
        #expect(set.name == "SET_ACK_SLOT" && set.requestFDs == 1 && !set.noReplyAllowed)
        #expect(set.replyIsEmpty && !set.isEvent && set.capability.isEmpty)
        let clear = try #require(Opcode.clearAckSlot.traits)
        #expect(clear.name == "CLEAR_ACK_SLOT" && clear.requestFDs == 0 && !clear.noReplyAllowed)
        #expect(clear.replyIsEmpty && !clear.isEvent && clear.capability.isEmpty)
        #expect(Opcode.all.contains(.setAckSlot) && Opcode.all.contains(.clearAckSlot))
    }

    @Test(arguments: [UInt64(0), 8, 4096, 0xFFFF_FFFF_FFFF_FFF8])
    func setRoundTrips(offset: UInt64) {
        let request = Frame(.setAckSlot(VMID(0xDEAD_BEEF), Wire.VCPU(511), offset: offset), id: MessageID(4))
        #expect(request.encoded.count == 16 + 16)
        #expect(decoded(server, request.encoded, fds: 1) == request.message)
        #expect(decoded(client, Frame(.done(.setAckSlot), id: MessageID(4)).encoded, fds: 0) == .done(.setAckSlot))
    }

    @Test func goldenBytes() {
        #expect(frame(.setAckSlot, payload: setPayload())
                    == Frame(.setAckSlot(VMID(1), Wire.VCPU(3), offset: 64), id: MessageID(9)).encoded)
        #expect(frame(.clearAckSlot, payload: clearPayload)
                    == Frame(.clearAckSlot(VMID(1), Wire.VCPU(3)), id: MessageID(9)).encoded)
        #expect(frame(.clearAckSlot, flags: 1, payload: []) == Frame(.done(.clearAckSlot), id: MessageID(9)).encoded)
        #expect(decoded(server, frame(.clearAckSlot, payload: clearPayload), fds: 0)
                    == .clearAckSlot(VMID(1), Wire.VCPU(3)))
    }

    /// An offset that is not a multiple of 8 is BAD_VALUE, its low 32 bits the detail.
    @Test(arguments: [UInt64(1), 4, 7, 0x1_0000_0003])
    func anUnalignedOffsetIsABadValue(offset: UInt64) {
        let error = failure(server, frame(.setAckSlot, payload: setPayload(offset: offset)), fds: 1)
        #expect(error?.status == .badValue)
        #expect(error?.detail == UInt32(truncatingIfNeeded: offset))
    }

    /// SET takes exactly one descriptor; CLEAR takes none.
    @Test func descriptorCountIsChecked() {
        #expect(failure(server, frame(.setAckSlot, payload: setPayload()), fds: 0)?.status == .fdCountMismatch)
        #expect(failure(server, frame(.setAckSlot, payload: setPayload()), fds: 2)?.status == .fdCountMismatch)
        #expect(failure(server, frame(.clearAckSlot, payload: clearPayload), fds: 1)?.status == .fdCountMismatch)
    }

    /// Offsets 6-7 of both requests are reserved; the detail is the frame offset.
    @Test func reservedBytesMustBeZero() {
        for offset in [6, 7] {
            var set = setPayload()
            set[offset] = 1
            let setError = failure(server, frame(.setAckSlot, payload: set), fds: 1)
            #expect(setError?.status == .nonzeroPadding && setError?.detail == UInt32(16 + offset))
            var clear = clearPayload
            clear[offset] = 1
            let error = failure(server, frame(.clearAckSlot, payload: clear), fds: 0)
            #expect(error?.status == .nonzeroPadding && error?.detail == UInt32(16 + offset))
        }
    }

    @Test func lengthIsExact() {
        #expect(failure(server, frame(.setAckSlot, payload: Array(setPayload()[..<8])), fds: 1)?.status == .truncated)
        #expect(failure(server, frame(.setAckSlot, payload: setPayload() + [0, 0, 0, 0, 0, 0, 0, 0]), fds: 1)?.status
                    == .trailingBytes)
        #expect(failure(server, frame(.clearAckSlot, payload: [1, 0, 0, 0]), fds: 0)?.status == .truncated)
        #expect(failure(client, frame(.setAckSlot, flags: 1, payload: [0, 0, 0, 0, 0, 0, 0, 0]), fds: 0)?.status
                    == .trailingBytes)
    }

    @Test func noReplyIsRefused() {
        #expect(failure(server, frame(.setAckSlot, flags: 2, payload: setPayload()), fds: 1)?.status == .flagConflict)
        #expect(failure(server, frame(.clearAckSlot, flags: 2, payload: clearPayload), fds: 0)?.status
                    == .flagConflict)
    }

    // MARK: The slot word

    @Test func encodings() {
        #expect(AckSlotWord.idle.rawValue == 0)
        #expect(AckSlotWord.idle.state == .idle)
        let armed = AckSlotWord.armed(priorityMask: 0xF0)
        #expect(armed.rawValue == 0x0100_00F0_0000_0000)
        #expect(armed.state == .armed && armed.priority == 0xF0 && armed.intid == 0 && !armed.more)
        let delivered = AckSlotWord.delivered(intid: 8192, priority: 0xA0)
        #expect(delivered.rawValue == 0x0200_00A0_0000_2000)
        #expect(delivered.state == .delivered && delivered.intid == 8192 && delivered.priority == 0xA0)
        let more = delivered.withMore
        #expect(more.rawValue == 0x8200_00A0_0000_2000)
        #expect(more.state == .delivered && more.more && more.intid == 8192)
        #expect(AckSlotWord.idle.withMore.state == .idle && AckSlotWord.idle.withMore.more)
        #expect(armed.withMore.state == .armed && armed.withMore.priority == 0xF0)
    }

    @Test func descriptions() {
        #expect(AckSlotWord.idle.description == "idle")
        #expect(AckSlotWord.armed(priorityMask: 0xFF).withMore.description == "armed(mask 255)+more")
        #expect(AckSlotWord.delivered(intid: 8193, priority: 0x80).description == "delivered(8193, priority 128)")
        #expect(AckSlotWord(rawValue: 0x0300_0000_0000_0000).description == "invalid(0x300000000000000)")
    }

    /// Each reserved bit (40-55, 60-62) makes any state's word invalid; `more` (63) does not.
    @Test func reservedBitsAreInvalid() {
        let words = [AckSlotWord.idle, .armed(priorityMask: 0x80), .delivered(intid: 8200, priority: 0x40)]
        for word in words {
            for bit in Array(40 ... 55) + [60, 61, 62] {
                #expect(AckSlotWord(rawValue: word.rawValue | 1 << UInt64(bit)).state == nil, "\(word) bit \(bit)")
            }
            #expect(word.withMore.state != nil, "\(word) with more")
        }
    }

    @Test(arguments: [UInt64(3), 4, 7, 8, 15])
    func statesAboveDeliveredAreInvalid(state: UInt64) {
        #expect(AckSlotWord(rawValue: state << 56).state == nil)
        #expect(AckSlotWord(rawValue: state << 56 | 0xA0 << 32 | 8192).state == nil)
    }

    /// IDLE and ARMED words carry no INTID; IDLE carries no priority either.
    @Test func intidOutsideDeliveredIsInvalid() {
        #expect(AckSlotWord(rawValue: AckSlotWord.armed(priorityMask: 0xF0).rawValue | 8192).state == nil)
        #expect(AckSlotWord(rawValue: AckSlotWord.armed(priorityMask: 0xF0).rawValue | 1 << 31).state == nil)
        #expect(AckSlotWord(rawValue: 8192).state == nil)
        #expect(AckSlotWord(rawValue: 0xF0 << 32).state == nil)
        #expect(AckSlotWord(rawValue: 1 << 63 | 1).state == nil)
    }
}

import Glibc
import ITSModel
import ITSWire
import Testing

/// MMIO_WRITE's replies (Protocol/PROTOCOL.md, 6.9): an empty reply with the request's opcode, and
/// none at all for NO_REPLY, whether the write went to the ITS or to a redistributor.
@Suite struct MMIOReplyTests {
    @Test func writesAreAnsweredAsWritesAndNoReplyMeansNone() throws {
        let path = temporarySocketPath("mmio-reply")
        let itsd = try #require(ItsdProcess(arguments: ["--socket", path, "--lanes", "2"]), "the itsd executable next to the test bundle")
        defer { itsd.stop() }
        let client = try #require(TestClient(path: path))
        let vm = ClientVM(client: client)
        _ = vm.call(.hello(Hello(capabilities: .defined, limits: .defaults)))
        guard vm.createVM() else {
            Issue.record("CREATE_VM")
            return
        }
        let id = vm.vm
        let redistributor = MMIOFrame.redistributor(Wire.VCPU(rawValue: 1))
        #expect(vm.mmioWrite(.its, ITS.Offset.cbaser, 1 << 63 | 0x40_0000)?.message == .done(.mmioWrite))
        #expect(vm.mmioWrite(redistributor, Redistributor.Offset.propbaser, 0x10_0000 | 15)?.message == .done(.mmioWrite))
        // A write the register ignores (GITS_IIDR is read-only) is still a successful access.
        #expect(vm.mmioWrite(.its, ITS.Offset.iidr, 0, width: .word)?.message == .done(.mmioWrite))
        #expect(vm.mmioRead(redistributor, Redistributor.Offset.propbaser) == 0x10_0000 | 15)

        // NO_REPLY writes to both frames, then a PING: its reply is the next frame.
        for (frame, offset) in [(MMIOFrame.its, ITS.Offset.cbaser), (redistributor, Redistributor.Offset.pendbaser)] {
            let access = MMIOAccess(vm: id, frame: frame, width: .doubleword, offset: offset)
            client.send(Frame(.mmioWrite(access, value: 0x80_0000, deviceID: Wire.DeviceID(rawValue: 0)), id: MessageID(500), noReply: true))
        }
        client.send(Frame(.ping(nonce: 77), id: MessageID(501)))
        let next = client.receive()
        #expect(next?.message == .pingReply(nonce: 77) && next?.messageID == MessageID(501))
        #expect(vm.mmioRead(redistributor, Redistributor.Offset.pendbaser) == 0x80_0000, "the NO_REPLY write took effect")
    }
}

import Glibc
import ITSModel
import ITSWire
import Testing

/// SYNC and moves between lanes (docs/SEMANTICS.md, "SYNC and moves between lanes"): once CREADR
/// has passed a SYNC for a redistributor, a MOVI or MOVALL to or from it queued before is complete
/// as far as any later request can see — the LPI is pending at the target, not at the source.
@Suite struct SyncTests {
    /// vCPU 0 and vCPU 1 are on different lanes. Each round writes MOVI (or MOVALL) and a SYNC on
    /// the target into the queue, then sends, in one write, the CWRITER write, a CREADR read and an
    /// HPPI on the target, so that the HPPI reaches the target's lane before the moved pending state
    /// can. If the CREADR read shows the SYNC passed, the HPPI must show the LPI; and once CREADR
    /// has passed it, HPPI shows the LPI at the target and nothing at the source.
    @Test func creadrDoesNotPassASyncBeforeTheMoveIsComplete() throws {
        let (itsd, path) = try #require(startItsd("sync-moves"), "the itsd executable next to the test bundle")
        defer { itsd.stop() }
        let vm = try #require(ClientVM.hello(path))
        #expect(vm.createProgrammedVM())
        var cwriter: UInt64 = 6 * 32
        /// Writes commands at CWRITER (the queue is 4 KiB) and returns the new CWRITER.
        func enqueue(_ commands: [ITSCommand]) -> UInt64 {
            for command in commands {
                let words = command.encoded
                for (index, word) in [words.0, words.1, words.2, words.3].enumerated() {
                    vm.write64(word, at: 0x40_0000 + cwriter + UInt64(index * 8))
                }
                cwriter = (cwriter + 32) % 4096
            }
            return cwriter
        }
        func creadrReaches(_ value: UInt64) -> Bool {
            for _ in 0 ..< 500 {
                if vm.mmioRead(.its, ITS.Offset.creadr) == value { return true }
                usleep(2000)
            }
            return false
        }
        func hppi(_ vcpu: UInt16) -> UInt32? {
            guard case .hppiReply(let lpi)? = vm.call(.hppi(vm.vm, Wire.VCPU(rawValue: vcpu)))?.message else { return nil }
            return lpi.intid.rawValue
        }
        // Collection 1 on vCPU 0 (collection 0 is on vCPU 1), and LPI 8192 pending at vCPU 1.
        #expect(vm.mmioWrite(.its, ITS.Offset.cwriter, enqueue([.mapc(CollectionID(1), rdbase: 0, valid: true)]))?.status == .ok)
        #expect(creadrReaches(cwriter))
        #expect(vm.call(.inject(vm.vm, Wire.DeviceID(rawValue: 7), Wire.EventID(rawValue: 0)))?.status == .ok)
        #expect(hppi(1) == 8192)

        var location: UInt16 = 1
        var seenEarly: [String] = []
        var waited = 0
        var wrongAfter: [String] = []
        for round in 0 ..< 120 {
            let target: UInt16 = 1 - location
            // MOVI rounds move the mapping with the pending state; MOVALL rounds move only the state.
            let command: ITSCommand = round < 60 ? .movi(DeviceID(7), EventID(0), CollectionID(target == 0 ? 1 : 0))
                : .movall(from: UInt64(location), to: UInt64(target))
            let end = enqueue([command, .sync(rdbase: UInt64(target))])
            let write = Frame(.mmioWrite(MMIOAccess(vm: vm.vm, frame: .its, width: .doubleword, offset: ITS.Offset.cwriter), value: end,
                                         deviceID: Wire.DeviceID(rawValue: 0)), id: MessageID(1))
            let read = Frame(.mmioRead(MMIOAccess(vm: vm.vm, frame: .its, width: .doubleword, offset: ITS.Offset.creadr)), id: MessageID(2))
            let look = Frame(.hppi(vm.vm, Wire.VCPU(rawValue: target)), id: MessageID(3))
            vm.client.sendBytes(write.encoded + read.encoded + look.encoded)
            let replies = [vm.client.receive(), vm.client.receive(), vm.client.receive()]
            guard replies[0]?.status == .ok, case .mmioReadReply(let creadr)? = replies[1]?.message,
                  case .hppiReply(let lpi)? = replies[2]?.message
            else {
                Issue.record("round \(round): \(replies)")
                return
            }
            if creadr == end, lpi.intid.rawValue != 8192 { seenEarly.append("round \(round): CREADR passed the SYNC, HPPI \(lpi.intid.rawValue)") }
            if creadr != end { waited += 1 }
            guard creadrReaches(end) else {
                Issue.record("round \(round): CREADR never passed the SYNC")
                return
            }
            let (atTarget, atSource) = (hppi(target), hppi(location))
            if atTarget != 8192 || atSource != 1023 { wrongAfter.append("round \(round): target \(String(describing: atTarget)), source \(String(describing: atSource))") }
            location = target
        }
        #expect(seenEarly.isEmpty, "\(seenEarly.count) rounds: \(seenEarly.prefix(3))")
        #expect(wrongAfter.isEmpty, "\(wrongAfter.count) rounds: \(wrongAfter.prefix(3))")
        #expect(waited > 0, "the pipelined CREADR read never caught a SYNC waiting for its move")
        #expect(vm.drain(location) == [8192])
    }
}

import Glibc
import ITSModel
import ITSWire
import Testing
@testable import ITSServer

/// The command queue over a real socket: a CWRITER write processes one work budget before its
/// reply, and the rest goes on in later loop turns while other clients are served.
@Suite struct CommandQueueTests {
    /// A server whose ITS does 8 units of work per turn and VM; 120 MAPTIs written at once. The
    /// CREADR read sent in the same write as the CWRITER write shows exactly 8 commands done; a
    /// PING on another connection is answered; CREADR then reaches CWRITER, only ever advancing,
    /// and the last MAPTI routes its MSI.
    @Test func workBeyondTheBudgetContinuesOnTheLoopAndCreadrShowsProgress() throws {
        let log = BudgetLog()
        try runServer("budget", configure: { $0.workBudget = 8 }) { path in
            guard let vm = ClientVM.hello(path), vm.createProgrammedVM(), let other = ClientVM.hello(path) else { return }
            let start: UInt64 = 6 * 32
            var end = start
            for event in 4 ..< 124 as Range<UInt32> {
                let words = ITSCommand.mapti(DeviceID(7), EventID(event), INTID(8192 + event), CollectionID(0)).encoded
                for (index, word) in [words.0, words.1, words.2, words.3].enumerated() { vm.write64(word, at: 0x40_0000 + end + UInt64(index * 8)) }
                end += 32
            }
            log.end = end
            let write = Frame(.mmioWrite(MMIOAccess(vm: vm.vm, frame: .its, width: .doubleword, offset: ITS.Offset.cwriter), value: end,
                                         deviceID: Wire.DeviceID(rawValue: 0)), id: MessageID(1))
            let read = Frame(.mmioRead(MMIOAccess(vm: vm.vm, frame: .its, width: .doubleword, offset: ITS.Offset.creadr)), id: MessageID(2))
            vm.client.sendBytes(write.encoded + read.encoded)
            log.written = vm.client.receive()?.status
            if case .mmioReadReply(let value)? = vm.client.receive()?.message { log.firstCreadr = value }
            log.ping = other.call(.ping(nonce: 5))?.message
            for _ in 0 ..< 1000 {
                guard let creadr = vm.mmioRead(.its, ITS.Offset.creadr) else { break }
                log.creadrs.append(creadr)
                if creadr == end { break }
                usleep(1000)
            }
            log.lastMSI = vm.call(.inject(vm.vm, Wire.DeviceID(rawValue: 7), Wire.EventID(rawValue: 123)))?.status
            // LPI 8315 is disabled in the configuration table (only 64 are enabled): PENDING lists it anyway.
            if case .pendingReply(let lpis, _)? = vm.call(.pending(vm.vm, Wire.VCPU(rawValue: 1), cursor: 8192, maxEntries: 0))?.message {
                log.pending = lpis.map(\.intid.rawValue)
            }
        }
        #expect(log.written == .ok)
        #expect(log.firstCreadr == 6 * 32 + 8 * 32, "one budget of 8 commands before the reply: \(String(describing: log.firstCreadr))")
        #expect(log.ping == .pingReply(nonce: 5))
        #expect(log.creadrs.last == log.end, "CREADR reached CWRITER: \(log.creadrs.suffix(3))")
        #expect(zip(log.creadrs, log.creadrs.dropFirst()).allSatisfy { $0 <= $1 }, "CREADR only advances")
        #expect(log.lastMSI == .ok)
        #expect(log.pending == [8192 + 123])
    }
}

final class BudgetLog: @unchecked Sendable {
    var end: UInt64 = 0
    var written: WireStatus?
    var firstCreadr: UInt64?
    var ping: Message?
    var creadrs: [UInt64] = []
    var lastMSI: WireStatus?
    var pending: [UInt32] = []
}

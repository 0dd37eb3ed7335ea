import CITSSupport
import Glibc
import ITSModel
import ITSWire
import Testing
@testable import ITSServer

/// Snapshots taken while MOVIs move pending LPIs between vCPUs on different lanes: each image,
/// restored into a fresh VM, holds exactly the source's LPIs, targets and pending states — an LPI
/// whose move was in flight is neither lost nor doubled.
@Suite(.serialized) struct SnapshotChurnTests {
    @Test func capturesDuringMovesHoldEveryPendingLPIOnce() throws {
        let log = ChurnLog()
        try runServer("snapchurn") { path in
            guard let client = TestClient(path: path) else { return }
            let vm = ClientVM(client: client)
            guard let id = vm.helloAndProgrammedVM() else { return }
            var queue = CommandQueueWriter(vm: vm, offset: 6 * 32)
            queue.submit([.mapc(CollectionID(1), rdbase: 0, valid: true)])
            var random = SplitMix64(seed: 0x5EED_C0DE)
            for round in 0 ..< 60 {
                for _ in 0 ..< 3 {
                    let event = UInt32(random.next() % 4)
                    _ = vm.call(.inject(id, Wire.DeviceID(rawValue: 7), Wire.EventID(rawValue: event)))
                }
                // MOVIs written and CWRITER advanced without waiting: the capture must wait for them.
                let moves: [ITSCommand] = (0 ..< 1 + Int(random.next() % 3)).map { _ in
                    .movi(DeviceID(7), EventID(UInt32(random.next() % 4)), CollectionID(UInt16(random.next() % 2)))
                }
                queue.submit(moves)
                if round % 7 == 3 { _ = vm.drain(UInt16(random.next() % 2)) }
                guard let image = Self.snapshot(vm, id) else { return log.failures.append("round \(round): no image") }
                let sourceLPIs = Self.lpis(vm, id)
                guard case let .createVMReply(copy, _)? = vm.call(.createVM(ClientVM.usualConfig))?.message else { return }
                let restored = vm.call(.restoreVM(SnapshotChunk(vm: copy, offset: 0, totalLength: UInt64(image.count), isLast: true,
                                                                bytes: image[...])))?.status
                let copyLPIs = Self.lpis(vm, copy)
                if restored != .ok || copyLPIs != sourceLPIs || sourceLPIs.count != 4 {
                    log.failures.append("round \(round): restore \(String(describing: restored)), source \(sourceLPIs), copy \(copyLPIs)")
                }
                log.pendingSeen += sourceLPIs.filter(\.pending).count
                _ = vm.call(.destroyVM(copy))
            }
        }
        #expect(log.failures.isEmpty, "\(log.failures.prefix(3))")
        #expect(log.pendingSeen > 60, "the rounds captured pending LPIs (\(log.pendingSeen))")
    }

    static func snapshot(_ vm: ClientVM, _ id: VMID) -> [UInt8]? {
        guard case .snapshotReply(let chunk)? = vm.call(.snapshotVM(id, offset: 0, maxBytes: 0))?.message, chunk.isLast else { return nil }
        return Array(chunk.bytes)
    }

    static func lpis(_ vm: ClientVM, _ id: VMID) -> [DumpLPI] {
        guard case .dumpReply(let page)? = vm.call(.dump(id, .lpis, cursor: 0, maxEntries: 0))?.message, case .lpis(let list) = page.entries
        else { return [] }
        return list
    }
}

/// Writes commands into the command queue programGuest set up (4 KiB at 0x40_0000) and advances
/// GITS_CWRITER, wrapping as the queue does.
struct CommandQueueWriter {
    let vm: ClientVM
    var offset: UInt64
    static let base: UInt64 = 0x40_0000
    static let size: UInt64 = 4096

    mutating func submit(_ commands: [ITSCommand]) {
        for command in commands {
            let words = command.encoded
            for (word, value) in [words.0, words.1, words.2, words.3].enumerated() {
                vm.write64(value, at: Self.base + offset + UInt64(word * 8))
            }
            offset = (offset + 32) % Self.size
        }
        _ = vm.mmioWrite(.its, ITS.Offset.cwriter, offset)
    }
}

final class ChurnLog: @unchecked Sendable {
    var failures: [String] = []
    var pendingSeen = 0
}

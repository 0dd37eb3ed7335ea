import CITSSupport
import Glibc
import ITSModel
import ITSWire
import Testing
@testable import ITSServer

/// SNAPSHOT_VM and RESTORE_VM over a real socket: an image read in chunks restores into a new VM
/// that then behaves as the original; bad chunks, bad images and the wrong VM are refused.
@Suite(.serialized) struct SnapshotTransferTests {
    static let config = VMConfig(vcpuCount: 2, deviceIDBits: 16, eventIDBits: 16, intidBits: 16)

    @Test func imageMovesAndRestores() throws {
        let log = SnapshotLog()
        try runServer("snapshot", configure: { $0.maximumSnapshotBytes = 1 << 20 }) { path in
            guard let client = TestClient(path: path), let plain = TestClient(path: path) else { return }
            let source = ClientVM(client: client)
            guard let id = source.helloAndProgrammedVM() else { return }
            for event: UInt32 in [1, 3] { _ = source.call(.inject(id, Wire.DeviceID(rawValue: 7), Wire.EventID(rawValue: event))) }

            // Read the image in chunks of at most 256 bytes.
            var image: [UInt8] = []
            var offset: UInt64 = 0
            while log.chunks < 10_000, case .snapshotReply(let chunk)? = source.call(.snapshotVM(id, offset: offset, maxBytes: 256))?.message {
                log.chunks += 1
                log.contiguous = log.contiguous && chunk.offset == UInt64(image.count) && chunk.bytes.count <= 256
                image += chunk.bytes
                log.total = chunk.totalLength
                if chunk.isLast { break }
                offset = chunk.offset + UInt64(chunk.bytes.count)
            }
            log.image = image
            log.afterLast = source.call(.snapshotVM(id, offset: offset + 256, maxBytes: 256))?.status

            func restore(_ target: VMID, _ bytes: [UInt8], chunk: Int = 300, on vm: ClientVM = source) -> [WireStatus?] {
                stride(from: 0, to: bytes.count, by: chunk).map { start in
                    let end = min(bytes.count, start + chunk)
                    let piece = SnapshotChunk(vm: target, offset: UInt64(start), totalLength: UInt64(bytes.count), isLast: end == bytes.count,
                                              bytes: bytes[start ..< end])
                    return vm.call(.restoreVM(piece))?.status
                }
            }
            func create() -> VMID? {
                guard case let .createVMReply(created, _)? = source.call(.createVM(Self.config))?.message else { return nil }
                return created
            }
            // A fresh VM takes the image and behaves as the source.
            guard let target = create() else { return }
            log.restored = restore(target, image)
            let copy = ClientVM(client: client)
            copy.vm = target
            copy.nextID = 10_000
            log.targetDevices = copy.call(.dump(target, .itt, cursor: 0, maxEntries: 0))?.message
            log.sourceDevices = source.call(.dump(id, .itt, cursor: 0, maxEntries: 0))?.message
            log.targetAcked = copy.drain(1)
            log.targetInject = copy.call(.inject(target, Wire.DeviceID(rawValue: 7), Wire.EventID(rawValue: 2)))?.status
            log.targetAckedAfterInject = copy.drain(1)
            log.sourceAcked = source.drain(1)

            // Refusals.
            log.intoRunVM = restore(id, image).first ?? nil
            var corrupted = image
            corrupted[corrupted.count / 2] ^= 0x5A
            guard let spoiled = create() else { return }
            log.corrupted = restore(spoiled, corrupted, chunk: image.count).last ?? nil
            log.spoiledDevices = source.call(.dump(spoiled, .devices, cursor: 0, maxEntries: 0))?.message
            guard let outOfOrder = create() else { return }
            log.outOfOrder = source.call(.restoreVM(SnapshotChunk(vm: outOfOrder, offset: 100, totalLength: UInt64(image.count), isLast: false,
                                                                  bytes: image[100 ..< 200])))?.status
            log.tooLarge = source.call(.restoreVM(SnapshotChunk(vm: outOfOrder, offset: 0, totalLength: 2 << 20, isLast: false,
                                                                bytes: image[0 ..< 100])))?.status
            guard case let .createVMReply(wide, _)? = source.call(.createVM(VMConfig(vcpuCount: 4, deviceIDBits: 16, eventIDBits: 16, intidBits: 16)))?.message
            else { return }
            log.otherConfig = restore(wide, image, chunk: image.count).last ?? nil
            let noCapability = ClientVM(client: plain)
            _ = noCapability.call(.hello(Hello(capabilities: [.errorReports], limits: .defaults)))
            log.withoutCapability = noCapability.call(.snapshotVM(id, offset: 0, maxBytes: 0))?.status
        }

        #expect(log.chunks > 1 && log.contiguous, "chunks follow each other within max_bytes")
        #expect(log.total == UInt64(log.image.count) && !log.image.isEmpty)
        #expect(log.afterLast == .badCursor, "the image is dropped after its last chunk")
        #expect(!log.restored.isEmpty && log.restored.allSatisfy { $0 == .ok })
        #expect(log.targetDevices != nil && log.targetDevices == log.sourceDevices.map { message in
            guard case .dumpReply(var page) = message else { return message }
            page.vm = log.targetDevices.flatMap { if case .dumpReply(let target) = $0 { target.vm } else { nil } } ?? page.vm
            return .dumpReply(page)
        }, "the restored ITS maps what the source maps")
        #expect(log.targetAcked == [8193, 8195], "pending LPIs travel with the image")
        #expect(log.targetInject == .ok)
        #expect(log.targetAckedAfterInject == [8194], "the restored translations work")
        #expect(log.sourceAcked == [8193, 8195], "the source keeps its state")
        #expect(log.intoRunVM == .busy)
        #expect(log.corrupted == .badSnapshot)
        #expect(log.spoiledDevices == .dumpReply(DumpPage(vm: log.spoiledVM(log.spoiledDevices), entries: .devices([]), nextCursor: DumpPage.end)),
                "a refused image changes nothing")
        #expect(log.outOfOrder == .badCursor)
        #expect(log.tooLarge == .limitExceeded)
        #expect(log.otherConfig == .badSnapshot)
        #expect(log.withoutCapability == .capabilityNotAgreed)
    }
}

final class SnapshotLog: @unchecked Sendable {
    var chunks = 0
    var contiguous = true
    var total: UInt64 = 0
    var image: [UInt8] = []
    var afterLast, targetInject, intoRunVM, corrupted, outOfOrder, tooLarge, otherConfig, withoutCapability: WireStatus?
    var restored: [WireStatus?] = []
    var targetDevices, sourceDevices, spoiledDevices: Message?
    var targetAcked: [UInt32] = [], targetAckedAfterInject: [UInt32] = [], sourceAcked: [UInt32] = []

    func spoiledVM(_ message: Message?) -> VMID {
        if case .dumpReply(let page)? = message { page.vm } else { VMID(rawValue: 0) }
    }
}

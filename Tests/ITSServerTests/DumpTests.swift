import CITSSupport
import Glibc
import ITSModel
import ITSWire
import Testing
@testable import ITSServer

/// DUMP over a real socket: each section in pages chained by cursors, and the cursors checked.
@Suite(.serialized) struct DumpTests {
    @Test func sectionsPageThroughTheVMState() throws {
        let log = DumpLog()
        try runServer("dump") { path in
            guard let client = TestClient(path: path), let other = TestClient(path: path) else { return }
            let vm = ClientVM(client: client)
            guard let id = vm.helloAndProgrammedVM() else { return }
            for event: UInt32 in [1, 3] { _ = vm.call(.inject(id, Wire.DeviceID(rawValue: 7), Wire.EventID(rawValue: event))) }
            func pages(_ section: DumpSection, maxEntries: UInt32, on target: ClientVM = vm) -> [DumpPage] {
                var pages: [DumpPage] = []
                var cursor: UInt64 = 0
                while pages.count < 10, case .dumpReply(let page)? = target.call(.dump(id, section, cursor: cursor, maxEntries: maxEntries))?.message {
                    pages.append(page)
                    if page.nextCursor == DumpPage.end { break }
                    cursor = page.nextCursor
                }
                return pages
            }
            log.devices = pages(.devices, maxEntries: 0)
            log.itt = pages(.itt, maxEntries: 3)
            log.collections = pages(.collections, maxEntries: 0)
            log.lpis = pages(.lpis, maxEntries: 3)
            // A peer that is not attached may read a dump too (operators' tools).
            let observer = ClientVM(client: other)
            _ = observer.call(.hello(Hello(capabilities: .defined, limits: .defaults)))
            log.observed = pages(.collections, maxEntries: 0, on: observer)
            let ittCursor = log.itt.first?.nextCursor ?? 0
            log.wrongSection = vm.call(.dump(id, .devices, cursor: ittCursor, maxEntries: 0))?.status
            log.foreignCursor = observer.call(.dump(id, .itt, cursor: ittCursor, maxEntries: 0))?.status
            log.madeUp = vm.call(.dump(id, .itt, cursor: 0xDEAD_BEEF, maxEntries: 0))?.status
            log.unknownVM = vm.call(.dump(VMID(rawValue: 999), .devices, cursor: 0, maxEntries: 0))?.status
        }

        #expect(log.devices.map(\.entries) == [.devices([DumpDevice(deviceID: Wire.DeviceID(rawValue: 7), eventIDBits: 8, ittAddress: 0x70_0000)])])
        #expect(log.devices.last?.nextCursor == DumpPage.end)
        let itt = log.itt.flatMap { page -> [DumpITTEntry] in if case .itt(let list) = page.entries { list } else { [] } }
        #expect(log.itt.map(\.entries.count) == [3, 1], "three entries, then the last")
        #expect(itt == (0 ..< 4).map {
            DumpITTEntry(deviceID: Wire.DeviceID(rawValue: 7), eventID: Wire.EventID(rawValue: $0), intid: Wire.INTID(rawValue: 8192 + $0),
                         collection: Wire.CollectionID(rawValue: 0))
        })
        #expect(log.collections.map(\.entries) == [.collections([DumpCollection(collection: Wire.CollectionID(rawValue: 0), vcpu: Wire.VCPU(rawValue: 1))])])
        #expect(log.observed.map(\.entries) == log.collections.map(\.entries))
        let lpis = log.lpis.flatMap { page -> [DumpLPI] in if case .lpis(let list) = page.entries { list } else { [] } }
        #expect(log.lpis.map(\.entries.count) == [3, 1])
        #expect(lpis == (0 ..< 4).map {
            DumpLPI(intid: Wire.INTID(rawValue: 8192 + $0), priority: 0xA0, enabled: true, pending: $0 == 1 || $0 == 3, vcpu: Wire.VCPU(rawValue: 1))
        })
        #expect(log.wrongSection == .badCursor)
        #expect(log.foreignCursor == .badCursor, "cursors belong to the connection they were handed to")
        #expect(log.madeUp == .badCursor)
        #expect(log.unknownVM == .noSuchVM)
    }
}

final class DumpLog: @unchecked Sendable {
    var devices: [DumpPage] = [], itt: [DumpPage] = [], collections: [DumpPage] = [], lpis: [DumpPage] = [], observed: [DumpPage] = []
    var wrongSection, foreignCursor, madeUp, unknownVM: WireStatus?
}

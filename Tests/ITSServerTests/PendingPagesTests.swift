import Glibc
import ITSModel
import ITSWire
import Testing

/// PENDING and DUMP in pages (Protocol/PROTOCOL.md, 6.16 and 6.18): `max_entries` 0 means as many
/// as fit in a frame, a larger one is cut to that, and a client that follows the cursors sees every
/// entry once.
@Suite struct PendingPagesTests {
    /// 1500 LPIs made pending at vCPU 0 through GICR_SETLPIR, on a connection that agreed 4096-byte
    /// frames: PENDING with max_entries 0 pages through them 509 at a time (24 bytes of header,
    /// count and cursor, then 8 per entry) and ends with cursor 0; max_entries 100000 gets the same
    /// first page. DUMP of the LPIs with max_entries 0 pages through all of them 507 at a time.
    @Test func maxEntriesZeroMeansAsManyAsFitInAFrame() throws {
        let (itsd, path) = try #require(startItsd("pending-pages"), "the itsd executable next to the test bundle")
        defer { itsd.stop() }
        let vm = try #require(ClientVM.hello(path, limits: Limits(maxFrameLength: 4096, maxBatchEntries: 0, maxInFlight: 0, maxFDsPerMessage: 0)))
        #expect(vm.createProgrammedVM())
        let intids = 8192 ..< 8192 + 1500 as Range<UInt32>
        let setlpir = MMIOAccess(vm: vm.vm, frame: .redistributor(Wire.VCPU(rawValue: 0)), width: .doubleword, offset: Redistributor.Offset.setlpir)
        vm.client.sendBytes(intids.flatMap { Frame(.mmioWrite(setlpir, value: UInt64($0), deviceID: Wire.DeviceID(rawValue: 0)), id: MessageID(1), noReply: true).encoded })

        func pendingPages(maxEntries: UInt32) -> [(intids: [UInt32], next: UInt32)] {
            var pages: [(intids: [UInt32], next: UInt32)] = []
            var cursor: UInt32 = 0
            while pages.count < 10,
                  case .pendingReply(let lpis, let next)? = vm.call(.pending(vm.vm, Wire.VCPU(rawValue: 0), cursor: cursor, maxEntries: maxEntries))?.message
            {
                pages.append((lpis.map(\.intid.rawValue), next))
                if next == 0 { break }
                cursor = next
            }
            return pages
        }
        let pages = pendingPages(maxEntries: 0)
        #expect(pages.map(\.intids.count) == [509, 509, 482])
        #expect(pages.flatMap(\.intids) == Array(intids))
        #expect(pages.last?.next == 0)
        #expect(pendingPages(maxEntries: 100_000).first?.intids.count == 509, "a max_entries beyond the frame is cut to what fits")
        #expect(pendingPages(maxEntries: 7).first?.intids == Array(intids.prefix(7)))

        var dumped: [[DumpLPI]] = []
        var cursor: UInt64 = 0
        while dumped.count < 10, case .dumpReply(let page)? = vm.call(.dump(vm.vm, .lpis, cursor: cursor, maxEntries: 0))?.message {
            if case .lpis(let list) = page.entries { dumped.append(list) }
            if page.nextCursor == DumpPage.end { break }
            cursor = page.nextCursor
        }
        // vCPU 0's 1500 and the 4 LPIs the ITS maps to vCPU 1.
        #expect(dumped.map(\.count) == [507, 507, 490])
        #expect(dumped.flatMap { $0 }.filter { $0.vcpu.rawValue == 0 && $0.pending }.map(\.intid.rawValue) == Array(intids))
    }
}

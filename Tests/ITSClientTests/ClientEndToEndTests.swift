import CITSSupport
import Glibc
import ITSClient
import ITSModel
import ITSWire
import Testing

/// The client library against a live itsd: a VM, guest memory in a memfd, the ITS programmed through
/// a command queue in that memory and MMIO, MSIs through a vector group, the vCPU side.
@Suite(.serialized) struct ClientEndToEndTests {
    static let config = VMConfig(vcpuCount: 2, deviceIDBits: 16, eventIDBits: 16, intidBits: 16)

    @Test func vmGuestMemoryAndVectorGroup() throws {
        let server = try #require(LiveServer())
        let connection = try ITSConnection(path: server.socketPath, capabilities: [.errorReports, .snapshot])
        #expect(connection.agreed.capabilities == [.errorReports, .snapshot])
        #expect(try connection.ping(nonce: 0xFEED) == 0xFEED)
        let vm = try connection.createVM(Self.config)
        let ram = GuestRAM()
        try ram.attach(to: vm)
        let wake0 = try vm.vcpu(0).makeNotifier()
        let wake1 = try vm.vcpu(1).makeNotifier()
        defer { close(wake0); close(wake1) }
        try ram.mapDevice(7, events: 4, on: vm)
        // Events 0 and 2 go to vCPU 0, events 1 and 3 to vCPU 1.
        #expect(try vm.mmioRead(.its, offset: ITS.Offset.creadr) == UInt64(2 + 1 + 4) * 32, "the queue was processed")

        let device = vm.vectorGroup(deviceID: Wire.DeviceID(7))
        try device.trigger(0)
        #expect(try connection.sync().isEmpty)
        #expect(try eventually { ITSVCPU.drain(wake0) > 0 }, "vCPU 0's notify eventfd fired")
        #expect(try vm.vcpu(0).highestPriorityPending()?.intid == Wire.INTID(8192))
        let taken = try vm.vcpu(0).acknowledge()
        #expect(taken == PendingLPI(intid: Wire.INTID(8192), priority: 0xA0, enabled: true))
        #expect(try vm.vcpu(0).acknowledge() == nil, "nothing else pending")

        // A bound eventfd is vector 1: a signal on it becomes LPI 8193 on vCPU 1.
        let call1 = try device.notifier(1)
        #expect(try device.notifier(1) == call1, "the same eventfd on the second call")
        var one: UInt64 = 1
        _ = write(call1, &one, 8)
        #expect(try eventually { try vm.vcpu(1).highestPriorityPending()?.intid == Wire.INTID(8193) })
        #expect(try vm.vcpu(1).acknowledge()?.intid == Wire.INTID(8193))

        // Masked, a signal only latches; unmasking delivers it once.
        try device.mask(1)
        _ = write(call1, &one, 8)
        try connection.sync()
        usleep(50_000)
        #expect(try vm.vcpu(1).highestPriorityPending() == nil, "masked: latched, not delivered")
        try device.unmask(1)
        #expect(try eventually { try vm.vcpu(1).highestPriorityPending()?.intid == Wire.INTID(8193) })
        #expect(try vm.vcpu(1).acknowledge()?.intid == Wire.INTID(8193))

        // Batched updates: every change is attempted, the first failure (vector 3 has no eventfd) thrown.
        device.update(1, masked: true)
        device.update(3, masked: true)
        device.update(1, masked: false)
        #expect(throws: ITSClientError.self) { try device.commit() }
        do { try device.commit() } catch { Issue.record("an empty commit sends nothing: \(error)") }
        device.update(3, masked: true)
        do {
            try device.commit()
            Issue.record("MASK of an unbound vector succeeded")
        } catch {
            #expect(error.status == .notBound)
            #expect(error.serverError?.opcode == .mask)
        }

        // Fire-and-forget batches: 1000 MSIs posted, coalesced into LPIs 8194 and 8195.
        for index in 0 ..< 1000 { try vm.post(deviceID: Wire.DeviceID(7), eventID: Wire.EventID(UInt32(2 + index % 2))) }
        try device.trigger([2, 3])
        #expect(try connection.sync().isEmpty)
        #expect(try eventually { try vm.vcpu(0).pending().map(\.intid) == [Wire.INTID(8194)] })
        #expect(try vm.vcpu(1).pending().map(\.intid) == [Wire.INTID(8195)])
        let stats = try vm.stats()
        #expect(stats.counter("msis_inject_batch_total") == 1002)
        #expect(stats.counter("msis_inject_total") == 1)
        #expect(stats.counter("msis_irqfd_total") == 2)
        #expect(stats.counter("vcpu_1_lpis_acknowledged_total") == 2)
        #expect(stats["vcpu_1_lpis_acknowledged_total"]?.labels == [StatLabel("vcpu", "1")])
        #expect(stats["vcpu_1_lpis_acknowledged_total"]?.name == "vcpu_lpis_acknowledged_total")
        #expect(stats.counter("device_7_msis_injected_total") == 1 + 2 + 1002)

        // A blocked MSI sent without a reply comes back as a deferred error (ERROR_REPORTS).
        try device.trigger(200)
        let deferred = try connection.sync()
        #expect(deferred.map(\.status) == [.translationBlocked])
        #expect(try vm.inject(deviceID: Wire.DeviceID(7), eventID: Wire.EventID(200)) == false)
        #expect(try vm.inject(deviceID: Wire.DeviceID(7), eventID: Wire.EventID(3)) == true)

        // DUMP reads every section.
        guard case .devices(let devices) = try vm.dump(.devices) else { return #expect(Bool(false)) }
        #expect(devices == [DumpDevice(deviceID: Wire.DeviceID(7), eventIDBits: 8, ittAddress: 0x70_0000)])
        guard case .itt(let itt) = try vm.dump(.itt) else { return #expect(Bool(false)) }
        #expect(itt.map(\.intid.rawValue) == [8192, 8193, 8194, 8195])
        guard case .collections(let collections) = try vm.dump(.collections) else { return #expect(Bool(false)) }
        #expect(collections.map(\.vcpu.rawValue) == [0, 1])
        guard case .lpis(let lpis) = try vm.dump(.lpis) else { return #expect(Bool(false)) }
        #expect(lpis.filter(\.pending).map(\.intid.rawValue).sorted() == [8194, 8195])
        // Paging: small pages add up to the same sections and lists.
        for section in DumpSection.allCases {
            #expect(try vm.dump(section, pageSize: 1) == vm.dump(section), "\(section)")
        }
        try ram.mapDevice(8, events: 40, firstLPI: 4, ittSlot: 1, on: vm)
        for event in 0 ..< UInt32(40) { try vm.post(deviceID: Wire.DeviceID(8), eventID: Wire.EventID(event)) }
        try connection.sync()
        #expect(try eventually { try vm.vcpu(1).pending().count == 21 }, "20 of device 8's LPIs and 8195")
        let whole = try vm.vcpu(1).pending()
        #expect(try vm.vcpu(1).pending(pageSize: 3) == whole)
        #expect(whole.map(\.intid.rawValue) == whole.map(\.intid.rawValue).sorted(), "in INTID order")
        #expect(try vm.dump(.itt, pageSize: 7) == vm.dump(.itt))

        // Memory regions: a range must match an added one exactly.
        do {
            try vm.removeMemoryRegion(guestAddress: 0, size: 4096)
            Issue.record("a partial range was removed")
        } catch {
            #expect(error.status == .noSuchMemRegion)
        }
        try vm.removeMemoryRegion(guestAddress: 0, size: UInt64(GuestRAM.size))
        do {
            try vm.addMemoryRegion(fd: ram.fd, guestAddress: 0x1000, size: 0x1800)
            Issue.record("an unaligned region was added")
        } catch {
            #expect(error.status == .badMemRegion)
        }
        device.closeNotifiers()
    }

    @Test func snapshotRestoreAndAttach() throws {
        let server = try #require(LiveServer())
        let connection = try ITSConnection(path: server.socketPath)
        let vm = try connection.createVM(Self.config)
        let ram = GuestRAM()
        try ram.attach(to: vm)
        try ram.mapDevice(3, events: 40, on: vm)
        for event in stride(from: UInt32(0), to: 40, by: 3) { try vm.post(deviceID: Wire.DeviceID(3), eventID: Wire.EventID(event)) }
        try connection.sync()
        #expect(try eventually { try vm.vcpu(0).pending().count + vm.vcpu(1).pending().count == 14 })
        let image = try vm.snapshot()
        #expect(Array(image.prefix(8)) == Array("ITSDSNAP".utf8))

        // A second connection attaches with the token, makes an empty VM and restores the image into it.
        let other = try ITSConnection(path: server.socketPath)
        let attached = try other.attachVM(vm.id, token: vm.token)
        #expect(attached.config == Self.config)
        let copy = try other.createVM(Self.config)
        try copy.restore(image)
        #expect(try copy.vcpu(0).pending() == vm.vcpu(0).pending())
        #expect(try copy.vcpu(1).pending().map(\.intid) == vm.vcpu(1).pending().map(\.intid))
        #expect(try copy.dump(.itt) == vm.dump(.itt))
        #expect(try copy.snapshot() == image, "the restored VM captures to the same image")

        do {
            _ = try other.attachVM(vm.id, token: VMToken(high: 1, low: 2))
            Issue.record("a wrong token attached")
        } catch {
            #expect(error.status == .badToken)
        }
        do {
            try copy.restore(Array(image.dropLast()))
            Issue.record("a truncated image was restored")
        } catch {
            #expect(error.status == .badSnapshot || error.status == .busy)
        }
        let ids = try other.listVMs().map(\.vm)
        #expect(ids == [vm.id, copy.id])
        try copy.destroy()
        #expect(try other.listVMs().map(\.vm) == [vm.id])
        do {
            _ = try other.stats(copy.id)
            Issue.record("STATS of a destroyed VM")
        } catch {
            #expect(error.status == .noSuchVM)
            #expect(error.serverError?.detail == copy.id.rawValue)
        }
    }

    @Test func connectionErrorsNameThePath() throws {
        let missing = temporaryPath("absent.sock")
        do {
            _ = try ITSConnection(path: missing)
            Issue.record("connected to nothing")
        } catch {
            #expect(error == .cannotConnect(path: missing, errno: ENOENT))
            #expect(error.description == "cannot connect to \(missing): No such file or directory")
        }
    }

    @Test func tokenHexRoundTrips() {
        let token = VMToken(high: 0x99AA_BBCC_DDEE_FF00, low: 0x1122_3344_5566_7788)
        #expect(token.hex == "8877665544332211" + "00ffeeddccbbaa99", "wire order: low then high, little-endian")
        #expect(VMToken(hex: token.hex) == token)
        #expect(VMToken(hex: token.hex.uppercased()) == token)
        #expect(VMToken(hex: "00") == nil)
        #expect(VMToken(hex: String(repeating: "g", count: 32)) == nil)
        #expect(VMToken.operatorToken.hex == String(repeating: "0", count: 32))
    }

    @Test func statNamesBecomeLabels() {
        #expect(StatSeries.split("vcpu_12_lpis_pending") == ("vcpu_lpis_pending", [StatLabel("vcpu", "12")]))
        #expect(StatSeries.split("device_4096_msis_injected_total") == ("device_msis_injected_total", [StatLabel("device", "4096")]))
        #expect(StatSeries.split("lane_0_queue_depth") == ("lane_queue_depth", [StatLabel("lane", "0")]))
        #expect(StatSeries.split("vcpus") == ("vcpus", []))
        #expect(StatSeries.split("vcpu_x_pending") == ("vcpu_x_pending", []))
        #expect(StatSeries.split("lpis_pending") == ("lpis_pending", []))
    }
}

/// INJECT and INJECT_BATCH written by `InjectEncoding` are byte for byte what `Frame.encode` writes.
@Suite struct InjectEncodingTests {
    @Test func injectMatchesTheFrameEncoder() {
        var bytes: [UInt8] = [0xEE]
        InjectEncoding.appendInject(vm: VMID(5), deviceID: Wire.DeviceID(0x1234), eventID: Wire.EventID(9),
                                    id: MessageID(77), noReply: true, to: &bytes)
        let frame = Frame(.inject(VMID(5), Wire.DeviceID(0x1234), Wire.EventID(9)), id: MessageID(77), noReply: true)
        #expect(Array(bytes.dropFirst()) == frame.encoded)
        #expect(bytes.count - 1 == InjectEncoding.injectFrameLength)
    }

    @Test(arguments: [0, 1, 3, 509]) func batchMatchesTheFrameEncoder(count: Int) {
        var bytes: [UInt8] = [1, 2, 3]
        let start = InjectEncoding.beginBatch(vm: VMID(2), id: MessageID(12), noReply: count % 2 == 1, to: &bytes)
        #expect(start == 3)
        var entries: [InjectEntry] = []
        for index in 0 ..< count {
            let entry = InjectEntry(deviceID: Wire.DeviceID(UInt32(index * 7)), eventID: Wire.EventID(UInt32(index ^ 0x55)))
            entries.append(entry)
            InjectEncoding.appendBatchEntry(deviceID: entry.deviceID, eventID: entry.eventID, to: &bytes)
        }
        #expect(InjectEncoding.finishBatch(at: start, in: &bytes) == count)
        let frame = Frame(.injectBatch(InjectBatch(vm: VMID(2), entries: entries)), id: MessageID(12), noReply: count % 2 == 1)
        #expect(Array(bytes.dropFirst(3)) == frame.encoded)
        let decoded = FrameDecoder(role: .server, limits: .defaults).decode(Array(bytes.dropFirst(3)), fdCount: 0)
        #expect(decoded == .frame(frame, consumed: bytes.count - 3))
    }

    @Test func batchLimitFollowsTheFrameLength() {
        #expect(InjectEncoding.maxBatchEntries(.defaults) == 4096)
        #expect(InjectEncoding.maxBatchEntries(Limits(maxFrameLength: 4096, maxBatchEntries: 65536, maxInFlight: 1, maxFDsPerMessage: 1)) == 509)
    }
}

/// Events: a subscriber learns that a vCPU has an LPI to take and that a VM is gone.
@Suite struct ClientEventTests {
    @Test func subscribersReceiveVCPUNotifyAndVMGone() throws {
        let server = try #require(LiveServer())
        let connection = try ITSConnection(path: server.socketPath, capabilities: [.events])
        let vm = try connection.createVM(ClientEndToEndTests.config)
        let ram = GuestRAM()
        try ram.attach(to: vm)
        try ram.mapDevice(7, events: 2, on: vm)
        try vm.subscribe([.vcpuNotify, .vmGone])
        try vm.vectorGroup(deviceID: Wire.DeviceID(7)).trigger(1)
        var events: [Message] = []
        #expect(try eventually {
            events += try connection.takeEvents()
            return !events.isEmpty
        })
        #expect(events == [.vcpuNotify(vm.id, Wire.VCPU(1))])
        #expect(try vm.vcpu(1).acknowledge()?.intid == Wire.INTID(8193))

        let other = try ITSConnection(path: server.socketPath)
        try other.attachVM(vm.id, token: vm.token).destroy()
        events = []
        #expect(try eventually {
            events += try connection.takeEvents()
            return !events.isEmpty
        })
        #expect(events == [.vmGone(vm.id, reason: .destroyed)])

        let plain = try ITSConnection(path: server.socketPath)
        let unsubscribed = try plain.createVM(ClientEndToEndTests.config)
        do {
            try unsubscribed.subscribe([.vmGone])
            Issue.record("SUBSCRIBE without the EVENTS capability succeeded")
        } catch {
            #expect(error.status == .capabilityNotAgreed)
        }
    }
}

import CITSSupport
import Glibc
import ITSModel
import ITSWire
import Testing

/// Bad input end to end: malformed frames, bad lengths and descriptors on the wrong request, sent
/// over real sockets to an itsd process of each test's own (Protocol/PROTOCOL.md, 2 "Malformed
/// frames", 4 "File descriptors", 8 "Limits"). Limits and back-pressure are in
/// BadInputTests+Limits.swift.
@Suite struct BadInputTests {
    /// A malformed frame whose length holds gets its error reply in its place among the
    /// connection's replies, and the connection goes on; one whose length does not closes that
    /// connection only. Other clients, and the VMs of both, keep working throughout.
    @Test func aMalformedFrameAffectsOnlyItsConnection() throws {
        let (itsd, path) = try #require(startItsd("malformed"), "the itsd executable next to the test bundle")
        defer { itsd.stop() }
        let a = try #require(ClientVM.hello(path))
        #expect(a.createProgrammedVM())
        #expect(a.injectAndTake(event: 0) == [8192])

        let b = try #require(ClientVM.hello(path))
        #expect(b.createVM())
        let ping = Frame(.ping(nonce: 5), id: MessageID(40))
        var destroyWithReservedByte = Frame(.destroyVM(b.vm), id: MessageID(40)).encoded
        destroyWithReservedByte[20] = 1
        let cases: [(name: String, bytes: [UInt8], status: WireStatus, detail: UInt32)] = [
            ("unknown opcode", rawFrame(ping, opcode: 0x7EEE), .unknownOpcode, 0x7EEE),
            ("event opcode without EVENT", rawFrame(ping, opcode: 0x0100), .unknownOpcode, 0x0100),
            ("reserved flag", rawFrame(ping, flags: 0x0010), .reservedFlags, 0x0010),
            ("a reply sent to the server", rawFrame(ping, flags: 0x0001), .flagConflict, 0),
            ("NO_REPLY on PING", rawFrame(ping, flags: 0x0002), .flagConflict, 0),
            ("status in a request", rawFrame(ping, status: 1), .nonzeroPadding, 12),
            ("bytes after the payload", rawFrame(ping, appending: [UInt8](repeating: 0, count: 8)), .trailingBytes, 24),
            ("payload cut short", Array(rawFrame(ping, length: 20)[0 ..< 20]), .truncated, 16),
            ("reserved payload field", destroyWithReservedByte, .nonzeroPadding, 20),
        ]
        for (name, bytes, status, detail) in cases {
            // Between two good requests in one write: the replies keep request order.
            b.client.sendBytes(Frame(.ping(nonce: 1), id: MessageID(39)).encoded + bytes + Frame(.ping(nonce: 2), id: MessageID(41)).encoded)
            let replies = [b.client.receive(), b.client.receive(), b.client.receive()]
            #expect(replies[0]?.message == .pingReply(nonce: 1), "\(name)")
            #expect(replies[1]?.errorReport?.status == status, "\(name): \(String(describing: replies[1]))")
            #expect(replies[1]?.errorReport?.detail == detail, "\(name): \(String(describing: replies[1]))")
            #expect(replies[1]?.messageID == MessageID(40), "\(name)")
            #expect(replies[2]?.message == .pingReply(nonce: 2), "\(name)")
        }
        #expect(b.mmioRead(.its, ITS.Offset.typer) != nil, "B's VM still answers B")

        // C: a length below the header loses the framing. C gets the error, id 0, and is closed.
        let c = try #require(ClientVM.hello(path))
        #expect(c.createVM())
        c.client.sendBytes(lengthOnly(8))
        let lost = c.client.receive()
        #expect(lost?.errorReport?.status == .lengthBelowHeader && lost?.errorReport?.detail == 8)
        #expect(lost?.messageID == MessageID(0) && lost?.errorOpcode == Opcode(0))
        #expect(c.client.closesWithoutMore())

        // A and B, their connections and their VMs, go on.
        #expect(a.injectAndTake(event: 1) == [8193])
        #expect(b.call(.ping(nonce: 9))?.message == .pingReply(nonce: 9))
        if case .listVMsReply(let infos)? = b.call(.listVMs)?.message {
            #expect(infos.filter { [a.vm, b.vm].contains($0.vm) }.map(\.state) == [.attached, .attached])
        } else { Issue.record("LIST_VMS") }
    }

    /// FRAME_TOO_LARGE and LENGTH_BELOW_HEADER come as soon as the 4 length bytes arrive (the
    /// client sends nothing more), carry opcode 0 and id 0, and close the connection; before HELLO
    /// the limit is 4096, after it the agreed one. A frame of exactly the limit is framed.
    @Test func aFrameLengthIsJudgedFromItsFourBytes() throws {
        let (itsd, path) = try #require(startItsd("lengths"), "the itsd executable next to the test bundle")
        defer { itsd.stop() }
        func expectRefused(_ client: TestClient?, _ length: UInt32, _ status: WireStatus, detail: UInt32,
                           sourceLocation: SourceLocation = #_sourceLocation)
        {
            guard let client else {
                Issue.record("no connection", sourceLocation: sourceLocation)
                return
            }
            client.sendBytes(lengthOnly(length))
            let reply = client.receive()
            #expect(reply?.errorReport?.status == status && reply?.errorReport?.detail == detail,
                    "length \(length): \(String(describing: reply))", sourceLocation: sourceLocation)
            #expect(reply?.messageID == MessageID(0) && reply?.errorOpcode == Opcode(0), sourceLocation: sourceLocation)
            #expect(client.closesWithoutMore(), "closed after length \(length)", sourceLocation: sourceLocation)
        }
        expectRefused(TestClient(path: path), 4097, .frameTooLarge, detail: 4096)
        expectRefused(TestClient(path: path), 15, .lengthBelowHeader, detail: 15)
        for (proposal, limit): (UInt32, UInt32) in [(0, 65536), (8192, 8192), (1 << 24, 1 << 20)] {
            let limits = Limits(maxFrameLength: proposal, maxBatchEntries: 0, maxInFlight: 0, maxFDsPerMessage: 0)
            expectRefused(ClientVM.hello(path, limits: limits)?.client, limit + 1, .frameTooLarge, detail: limit)
            expectRefused(ClientVM.hello(path, limits: limits)?.client, .max, .frameTooLarge, detail: limit)
        }
        expectRefused(ClientVM.hello(path)?.client, 0, .lengthBelowHeader, detail: 0)

        // Exactly the limit: framed and decoded (a PING with 65512 extra bytes), and the connection goes on.
        let edge = try #require(ClientVM.hello(path))
        edge.client.sendBytes(rawFrame(Frame(.ping(nonce: 3), id: MessageID(7)), appending: [UInt8](repeating: 0, count: 65536 - 24)))
        let reply = edge.client.receive()
        #expect(reply?.errorReport?.status == .trailingBytes && reply?.errorReport?.detail == 24 && reply?.messageID == MessageID(7))
        #expect(edge.call(.ping(nonce: 4))?.message == .pingReply(nonce: 4))

        // Announcing 4 GiB frames costs the server nothing: it sizes no buffer from the length.
        let memoryBefore = itsd.residentBytes()
        for _ in 0 ..< 50 {
            let client = ClientVM.hello(path)?.client
            client?.sendBytes(lengthOnly(.max - 15))
            #expect(client?.receive()?.errorReport?.status == .frameTooLarge)
        }
        let growth = itsd.residentBytes() - memoryBefore
        #expect(growth < 16 << 20, "itsd grew by \(growth) bytes")
    }

    /// A descriptor on a request that takes none, none on one that takes one, or two on one that
    /// takes one (with 2 agreed per message): FD_COUNT_MISMATCH with the expected count, every
    /// descriptor closed at once, and the connection goes on.
    @Test func descriptorsOnTheWrongRequestAreRefusedAndClosed() throws {
        let (itsd, path) = try #require(startItsd("fd-count"), "the itsd executable next to the test bundle")
        defer { itsd.stop() }
        let vm = try #require(ClientVM.hello(path, limits: Limits(maxFrameLength: 0, maxBatchEntries: 0, maxInFlight: 0, maxFDsPerMessage: 2)))
        #expect(vm.createVM())
        let eventfd = its_eventfd(0, 0)
        defer { close(eventfd) }
        let region = MemRegion(vm: vm.vm, guestAddress: 0, size: 1 << 20, fileOffset: 0)
        let key = IRQFDKey(vm: vm.vm, deviceID: Wire.DeviceID(rawValue: 1), eventID: Wire.EventID(rawValue: 1))
        let before = itsd.openDescriptors()
        var answers: [String: [(WireStatus, UInt32)?]] = [:]
        for _ in 0 ..< 50 {
            for (name, message, fds) in [("PING + 1", Message.ping(nonce: 1), [eventfd]),
                                         ("CREATE_VM + 2", .createVM(VMConfig(vcpuCount: 1, deviceIDBits: 8, eventIDBits: 8, intidBits: 16)), [eventfd, eventfd]),
                                         ("ADD_MEM_REGION + 0", .addMemRegion(region), []),
                                         ("ADD_MEM_REGION + 2", .addMemRegion(region), [vm.memfd, eventfd]),
                                         ("BIND_IRQFD + 0", .bindIRQFD(key, startMasked: false), []),
                                         ("SET_VCPU_NOTIFY + 0", .setVCPUNotify(vm.vm, Wire.VCPU(rawValue: 0)), [])]
            {
                answers[name, default: []].append(vm.call(message, fds: fds)?.errorReport)
            }
        }
        let expected: [String: UInt32] = ["PING + 1": 0, "CREATE_VM + 2": 0, "ADD_MEM_REGION + 0": 1, "ADD_MEM_REGION + 2": 1,
                                          "BIND_IRQFD + 0": 1, "SET_VCPU_NOTIFY + 0": 1]
        for (name, detail) in expected {
            #expect(answers[name]?.allSatisfy { $0?.0 == .fdCountMismatch && $0?.1 == detail } == true, "\(name): \(String(describing: answers[name]?.first))")
        }
        // Counted while the connection is still open: nothing refused was kept.
        #expect(itsd.openDescriptors() == before, "itsd had \(before) descriptors before, \(itsd.openDescriptors()) after")
        #expect(vm.call(.addMemRegion(region), fds: [vm.memfd])?.status == .ok)
        #expect(vm.call(.bindIRQFD(key, startMasked: false), fds: [eventfd])?.status == .ok)
        #expect(itsd.openDescriptors() == before + 1, "the bound eventfd is the one descriptor kept")
        // SIGTERM with the VM and its eventfd binding still there: the binding's poll closes with
        // the loop, and itsd exits 0 instead of aborting in libuv as the VM is freed.
        itsd.stop()
        #expect(itsd.exitStatus == 0, "itsd's wait status \(String(describing: itsd.exitStatus))")
    }
}

import CITSSupport
import Glibc
import ITSModel
import ITSWire
import Testing
@testable import ITSServer

/// A client's view of one VM: guest RAM in a memfd it shares with the server, and requests.
final class ClientVM: @unchecked Sendable {
    let client: TestClient
    var vm = VMID(rawValue: 0)
    var nextID: UInt32 = 1
    let memfd: Int32
    let ram: UnsafeMutableRawPointer
    static let ramSize = 16 << 20

    init(client: TestClient) {
        self.client = client
        memfd = its_memfd_create("guest-ram", 1)
        precondition(ftruncate(memfd, off_t(Self.ramSize)) == 0 && its_add_seals(memfd, its_seal_shrink()) == 0)
        ram = mmap(nil, Self.ramSize, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0)!
    }

    deinit {
        munmap(ram, Self.ramSize)
        close(memfd)
    }

    /// Sends a request and returns its reply.
    func call(_ message: Message, fds: [Int32] = []) -> Frame? {
        let id = MessageID(rawValue: nextID)
        nextID += 1
        client.send(Frame(message, id: id), fds: fds)
        return client.receive()
    }

    func write64(_ value: UInt64, at address: UInt64) { ram.storeBytes(of: value.littleEndian, toByteOffset: Int(address), as: UInt64.self) }
    func write8(_ value: UInt8, at address: UInt64) { ram.storeBytes(of: value, toByteOffset: Int(address), as: UInt8.self) }

    func mmioWrite(_ frame: MMIOFrame, _ offset: UInt64, _ value: UInt64, width: ITSWire.MMIOWidth = .doubleword, device: UInt32 = 0) -> Frame? {
        call(.mmioWrite(MMIOAccess(vm: vm, frame: frame, width: width, offset: offset), value: value, deviceID: Wire.DeviceID(rawValue: device)))
    }

    /// LPI tables for 2 vCPUs (64 LPIs at 0xA3: priority 0xA0, enabled), the ITS's queue and
    /// tables, then MAPC 0 -> vCPU 1, MAPD 7 and MAPTI 7/0..3 -> 8192..8195 through the queue.
    /// Returns vCPU 1's GICR_TYPER.
    func programGuest() -> UInt64? {
        for n in 0 ..< 64 { write8(0xA3, at: 0x10_0000 + UInt64(n)) }
        for vcpu: UInt16 in 0 ..< 2 {
            let rd = MMIOFrame.redistributor(Wire.VCPU(rawValue: vcpu))
            _ = mmioWrite(rd, Redistributor.Offset.propbaser, 0x10_0000 | 15)
            _ = mmioWrite(rd, Redistributor.Offset.pendbaser, 0x20_0000 + UInt64(vcpu) << 16 | 1 << 62)
            _ = mmioWrite(rd, Redistributor.Offset.ctlr, 1, width: .word)
        }
        let typer = mmioRead(.redistributor(Wire.VCPU(rawValue: 1)), Redistributor.Offset.typer)
        _ = mmioWrite(.its, ITS.Offset.cbaser, 1 << 63 | 0x40_0000)
        _ = mmioWrite(.its, ITS.Offset.baser0, 1 << 63 | 0x50_0000)
        _ = mmioWrite(.its, ITS.Offset.baser0 + 8, 1 << 63 | 0x60_0000)
        _ = mmioWrite(.its, ITS.Offset.ctlr, 1, width: .word)
        let commands: [ITSCommand] = [.mapc(CollectionID(0), rdbase: 1, valid: true),
                                      .mapd(DeviceID(7), ittAddress: GuestAddress(0x70_0000), eventIDBits: 8, valid: true)]
            + (0 ..< 4).map { .mapti(DeviceID(7), EventID(UInt32($0)), INTID(8192 + UInt32($0)), CollectionID(0)) }
        for (index, command) in commands.enumerated() {
            let words = command.encoded
            for (word, value) in [words.0, words.1, words.2, words.3].enumerated() { write64(value, at: 0x40_0000 + UInt64(index * 32 + word * 8)) }
        }
        _ = mmioWrite(.its, ITS.Offset.cwriter, UInt64(commands.count * 32))
        return typer
    }

    /// Acknowledges vCPU `vcpu` until spurious.
    func drain(_ vcpu: UInt16) -> [UInt32] {
        var taken: [UInt32] = []
        while case .ackReply(let lpi, _)? = call(.ack(vm, Wire.VCPU(rawValue: vcpu), priorityMask: 0xFF))?.message, lpi.intid.rawValue != 1023 {
            taken.append(lpi.intid.rawValue)
        }
        return taken
    }

    func mmioRead(_ frame: MMIOFrame, _ offset: UInt64, width: ITSWire.MMIOWidth = .doubleword) -> UInt64? {
        guard case .mmioReadReply(let value)? = call(.mmioRead(MMIOAccess(vm: vm, frame: frame, width: width, offset: offset)))?.message else { return nil }
        return value
    }
}

@Suite(.serialized) struct ServerTests {
    /// The end-to-end flow over a real socket: HELLO, a VM, memfd guest memory, LPI and ITS tables
    /// programmed by MMIO, commands through the queue in that memory, MSIs by INJECT, INJECT_BATCH
    /// and GITS_TRANSLATER, the vCPU's notify eventfd, and acknowledges served by the lanes.
    @Test func endToEndFlow() throws {
        let results = ClientResults()
        let log = FlowLog()
        try runServer("server") { path in
            guard let client = TestClient(path: path) else { return }
            let guest = ClientVM(client: client)
            results.replies.append(guest.call(.ping(nonce: 1)))                       // before HELLO: refused, closed
            guard let second = TestClient(path: path) else { return }
            let vm = ClientVM(client: second)
            log.hello = vm.call(.hello(Hello(capabilities: .defined, limits: .defaults)))
            guard vm.createVM() else { return }
            let id = vm.vm
            log.addRegion = vm.mapAllRAM()
            let notify = its_eventfd(0, 1)
            log.notify = vm.call(.setVCPUNotify(id, Wire.VCPU(rawValue: 1)), fds: [notify])
            log.typer = vm.programGuest()
            log.creadr = vm.mmioRead(.its, ITS.Offset.creadr)
            // MSIs: INJECT, INJECT_BATCH, a write to GITS_TRANSLATER.
            log.inject = vm.call(.inject(id, Wire.DeviceID(rawValue: 7), Wire.EventID(rawValue: 0)))
            log.blocked = vm.call(.inject(id, Wire.DeviceID(rawValue: 9), Wire.EventID(rawValue: 0)))
            log.batch = vm.call(.injectBatch(InjectBatch(vm: id, entries: [InjectEntry(deviceID: Wire.DeviceID(rawValue: 7), eventID: Wire.EventID(rawValue: 1)),
                                                                            InjectEntry(deviceID: Wire.DeviceID(rawValue: 7), eventID: Wire.EventID(rawValue: 200))])))
            _ = vm.mmioWrite(.its, ITS.Offset.translater, 2, width: .word, device: 7)
            var counter: UInt64 = 0
            usleep(20_000)
            log.notified = read(notify, &counter, 8) == 8
            close(notify)
            for _ in 0 ..< 4 {
                if case .ackReply(let lpi, _)? = vm.call(.ack(id, Wire.VCPU(rawValue: 1), priorityMask: 0xFF))?.message { log.acked.append(lpi.intid.rawValue) }
            }
            log.listed = vm.call(.listVMs)
            log.destroyed = vm.call(.destroyVM(id))
        }
        #expect(results.replies.count == 1 && results.replies[0]?.status == .notHelloFirst)
        #expect(log.hello?.flags.contains(.reply) == true)
        #expect(log.addRegion?.status == .ok)
        #expect(log.typer.map { ($0 >> 8) & 0xFFFF } == 1, "GICR_TYPER.Processor_Number of vCPU 1")
        #expect(log.notify?.status == .ok)
        #expect(log.creadr == 6 * 32, "CREADR shows the queue processed")
        #expect(log.inject?.status == .ok)
        #expect(log.blocked?.status == .translationBlocked)
        #expect(log.batch?.message == .injectBatchReply(injected: 1, blocked: 1))
        #expect(log.notified, "the vCPU's notify eventfd fired")
        #expect(log.acked == [8192, 8193, 8194, 1023])
        if case .listVMsReply(let infos)? = log.listed?.message { #expect(infos.count == 1 && infos[0].state == .attached) } else { Issue.record("LIST_VMS") }
        #expect(log.destroyed?.status == .ok)
    }
}

final class FlowLog: @unchecked Sendable {
    var hello, addRegion, notify, inject, blocked, batch, listed, destroyed: Frame?
    var typer, creadr: UInt64?
    var notified = false
    var acked: [UInt32] = []
}

extension ServerTests {
    /// A bound eventfd: each write is one MSI; MASK latches, UNMASK delivers the latched one;
    /// rebinding replaces; unbinding stops delivery; a non-eventfd is refused.
    @Test func irqfdBindings() throws {
        let log = IRQFDLog()
        try runServer("irqfd") { path in
            guard let client = TestClient(path: path) else { return }
            let vm = ClientVM(client: client)
            guard let id = vm.helloAndProgrammedVM() else { return }
            let key = IRQFDKey(vm: id, deviceID: Wire.DeviceID(rawValue: 7), eventID: Wire.EventID(rawValue: 1))
            let call = its_eventfd(0, 0)
            log.statuses.append(vm.call(.bindIRQFD(key, startMasked: false), fds: [call])?.status)
            var one: UInt64 = 1
            func signal(_ fd: Int32) { _ = write(fd, &one, 8); usleep(20_000) }
            signal(call)
            log.delivered.append(vm.drain(1))
            log.statuses.append(vm.call(.mask(key))?.status)
            signal(call)
            log.delivered.append(vm.drain(1))
            log.statuses.append(vm.call(.unmask(key))?.status)
            usleep(20_000)
            log.delivered.append(vm.drain(1))
            let replacement = its_eventfd(0, 0)
            log.statuses.append(vm.call(.bindIRQFD(key, startMasked: false), fds: [replacement])?.status)
            signal(call)
            log.delivered.append(vm.drain(1))
            signal(replacement)
            log.delivered.append(vm.drain(1))
            log.statuses.append(vm.call(.unbindIRQFD(key))?.status)
            signal(replacement)
            log.delivered.append(vm.drain(1))
            log.statuses.append(vm.call(.unbindIRQFD(key))?.status)
            log.statuses.append(vm.call(.bindIRQFD(key, startMasked: false), fds: [vm.memfd])?.status)
            close(call)
            close(replacement)
        }
        #expect(log.statuses == [.ok, .ok, .ok, .ok, .ok, .notBound, .badFD])
        #expect(log.delivered == [[8193], [], [8193], [], [8193], []])
    }
}

final class IRQFDLog: @unchecked Sendable {
    var statuses: [WireStatus?] = []
    var delivered: [[UInt32]] = []
}

extension ServerTests {
    /// A VM survives its client's disconnect and is re-attached with its token by another
    /// connection; a second client's VM cannot be touched without its token.
    @Test func reattachWithinTheGracePeriodAndIsolation() throws {
        let log = GraceLog()
        try runServer("grace", lanes: 1) { path in
            var created: (VMID, VMToken)?
            do {
                guard let client = TestClient(path: path) else { return }
                let first = ClientVM(client: client)
                _ = first.call(.hello(Hello(capabilities: .defined, limits: .defaults)))
                if case let .createVMReply(id, token)? = first.call(.createVM(VMConfig(vcpuCount: 1, deviceIDBits: 8, eventIDBits: 8, intidBits: 16)))?.message {
                    created = (id, token)
                }
            }
            usleep(50_000)   // the first client has disconnected
            guard let (id, token) = created, let client = TestClient(path: path) else { return }
            let second = ClientVM(client: client)
            _ = second.call(.hello(Hello(capabilities: .defined, limits: .defaults)))
            log.listed = second.call(.listVMs)
            log.beforeAttach = second.call(.inject(id, Wire.DeviceID(rawValue: 0), Wire.EventID(rawValue: 0)))
            log.badToken = second.call(.attachVM(id, token: VMToken(high: token.high, low: token.low ^ 1)))
            log.attached = second.call(.attachVM(id, token: token))
            log.afterAttach = second.call(.ping(nonce: 9))
            // A third client with its own VM cannot act on the second's.
            guard let other = TestClient(path: path) else { return }
            let third = ClientVM(client: other)
            _ = third.call(.hello(Hello(capabilities: .defined, limits: .defaults)))
            log.foreignDestroy = third.call(.destroyVM(id))
            log.destroyed = second.call(.destroyVM(id))
        }
        if case .listVMsReply(let infos)? = log.listed?.message {
            #expect(infos.count == 1 && infos[0].state == .orphaned && infos[0].connections == 0)
        } else { Issue.record("LIST_VMS") }
        #expect(log.beforeAttach?.status == .notAttached)
        #expect(log.badToken?.status == .badToken)
        #expect(log.attached.map { if case .attachVMReply = $0.message { true } else { false } } == true)
        #expect(log.foreignDestroy?.status == .notAttached)
        #expect(log.destroyed?.status == .ok)
    }

    /// 1000 cycles of connect, create a VM, map memory, bind an eventfd, set a notify fd and
    /// disconnect leave itsd with as many open descriptors as it started with (its VMs are destroyed
    /// once their grace period, 0 here, passes). itsd runs as its own process so that other tests
    /// running in parallel cannot disturb the count.
    @Test func noDescriptorLeaksOverAThousandCycles() throws {
        let path = temporarySocketPath("fds")
        let itsd = try #require(ItsdProcess(arguments: ["--socket", path, "--grace-period", "0", "--lanes", "2", "--max-vms", "2000"]),
                                "the itsd executable next to the test bundle")
        defer { itsd.stop() }
        let before = itsd.openDescriptors()
        let memoryBefore = itsd.residentBytes()
        var failures: [Frame?] = []
        for cycle in 0 ..< 1000 {
            guard let client = TestClient(path: path) else {
                Issue.record("cannot connect at cycle \(cycle)")
                return
            }
            let vm = ClientVM(client: client)
            _ = vm.call(.hello(Hello(capabilities: .defined, limits: .defaults)))
            let created = vm.call(.createVM(VMConfig(vcpuCount: 2, deviceIDBits: 8, eventIDBits: 8, intidBits: 16)))
            guard case let .createVMReply(id, _)? = created?.message else {
                Issue.record("CREATE_VM at cycle \(cycle): \(String(describing: created))")
                return
            }
            vm.vm = id
            let eventfd = its_eventfd(0, 0)
            let notify = its_eventfd(0, 0)
            for reply in [vm.call(.addMemRegion(MemRegion(vm: id, guestAddress: 0, size: 1 << 20, fileOffset: 0)), fds: [vm.memfd]),
                          vm.call(.bindIRQFD(IRQFDKey(vm: id, deviceID: Wire.DeviceID(rawValue: 1), eventID: Wire.EventID(rawValue: UInt32(cycle % 7))), startMasked: false), fds: [eventfd]),
                          vm.call(.setVCPUNotify(id, Wire.VCPU(rawValue: 1)), fds: [notify])] where reply?.status != .ok {
                failures.append(reply)
            }
            close(eventfd)
            close(notify)
        }
        #expect(failures.isEmpty)
        // The grace timer runs each second; give it two.
        var after = itsd.openDescriptors()
        for _ in 0 ..< 40 where after != before {
            usleep(100_000)
            after = itsd.openDescriptors()
        }
        #expect(after == before, "itsd had \(before) descriptors before, \(after) after")
        // Nor memory: every connection's buffers and every VM go when they end (a connection
        // alone holds 64 KiB; 1000 leaked grow a debug itsd by about 70 MiB). The bound leaves room
        // for allocator caches and for ThreadSanitizer's shadow memory (about 18 MiB here).
        let growth = itsd.residentBytes() - memoryBefore
        #expect(growth < 40 << 20, "itsd grew by \(growth) bytes")
    }
}

/// The itsd executable built beside the test bundle, run as a child process.
final class ItsdProcess {
    let pid: pid_t
    /// The Unix socket it was told to listen on.
    let socketPath: String
    /// Whether ``stop()`` records an issue when itsd does not exit 0 (false off the test's task).
    let checksExit: Bool

    /// Starts itsd with `arguments` (which name its `--socket`); unless `waitForSocket` is false,
    /// returns once the socket exists (nil if itsd exits first).
    init?(arguments: [String], waitForSocket: Bool = true, checksExit: Bool = true) {
        self.checksExit = checksExit
        guard let binary = itsdExecutablePath() else { return nil }
        guard access(binary, X_OK) == 0 else { return nil }
        var pid: pid_t = 0
        let argv = ([binary] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        guard posix_spawn(&pid, binary, nil, nil, argv, environ) == 0 else { return nil }
        // (itsd unblocks SIGINT and SIGTERM itself; the test thread may have them blocked.)
        self.pid = pid
        // Ready when the socket exists. A debug itsd on a machine busy with the rest of the tests
        // may take seconds to get there: wait up to 30 s, unless it has exited.
        let socket = arguments[arguments.firstIndex(of: "--socket")! + 1]
        socketPath = socket
        guard waitForSocket else { return }
        var status: Int32 = 0
        for _ in 0 ..< 1500 where access(socket, F_OK) != 0 {
            if waitpid(pid, &status, WNOHANG) == pid {
                exitStatus = status
                return nil
            }
            usleep(20_000)
        }
    }

    func openDescriptors() -> Int {
        guard let directory = opendir("/proc/\(pid)/fd") else { return -1 }
        defer { closedir(directory) }
        var count = 0
        while readdir(directory) != nil { count += 1 }
        return count
    }

    /// VmRSS from /proc/PID/status, in bytes.
    func residentBytes() -> Int {
        guard let file = fopen("/proc/\(pid)/status", "r") else { return -1 }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix("VmRSS:") {
                return (Int(text.split(separator: " ").dropFirst().first ?? "") ?? -1) * 1024
            }
        }
        return -1
    }

    /// Waits, without holding a thread, up to 30 s for the socket; false if itsd exits first.
    func waitUntilListening() async -> Bool {
        for _ in 0 ..< 1500 {
            if access(socketPath, F_OK) == 0 { return true }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                exitStatus = status
                return false
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    /// Set once the process has been waited for.
    private(set) var exitStatus: Int32?

    /// SIGTERM, then waits; itsd must exit 0 (docs/OPERATIONS.md), which every test that runs one
    /// checks through this.
    func stop(sourceLocation: SourceLocation = #_sourceLocation) {
        guard exitStatus == nil else { return }
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        exitStatus = status
        if status != 0, checksExit {
            Issue.record("itsd did not exit 0 after SIGTERM: wait status \(status)", sourceLocation: sourceLocation)
        }
    }

    /// Waits up to `seconds` for the process to exit; its wait status, or nil if it is still running.
    func waitForExit(seconds: Double) -> Int32? {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        for _ in 0 ..< Int(seconds * 100) {
            if waitpid(pid, &status, WNOHANG) == pid {
                exitStatus = status
                return status
            }
            usleep(10_000)
        }
        return nil
    }
}

final class GraceLog: @unchecked Sendable {
    var listed, beforeAttach, badToken, attached, afterAttach, foreignDestroy, destroyed: Frame?
}

extension ServerTests {
    /// SUBSCRIBE: an EVENT_VCPU_NOTIFY frame when the vCPU goes from nothing deliverable to
    /// something, at most one outstanding until HPPI, ACK or PENDING; EVENT_VM_GONE when the VM is
    /// destroyed; events numbered from 1.
    @Test func inBandNotifications() throws {
        let log = EventLog()
        try runServer("subscribe") { path in
            guard let client = TestClient(path: path) else { return }
            let vm = ClientVM(client: client)
            _ = vm.call(.hello(Hello(capabilities: [.errorReports], limits: .defaults)))
            guard vm.createVM() else { return }
            let id = vm.vm
            log.refused = vm.call(.subscribe(id, .vcpuNotify))
            guard let other = TestClient(path: path) else { return }
            let subscriber = ClientVM(client: other)
            _ = subscriber.call(.hello(Hello(capabilities: .defined, limits: .defaults)))
            guard case let .createVMReply(own, _)? = subscriber.call(.createVM(VMConfig(vcpuCount: 2, deviceIDBits: 16, eventIDBits: 16, intidBits: 16)))?.message else { return }
            subscriber.vm = own
            _ = subscriber.call(.addMemRegion(MemRegion(vm: own, guestAddress: 0, size: UInt64(ClientVM.ramSize), fileOffset: 0)), fds: [subscriber.memfd])
            _ = subscriber.programGuest()
            log.subscribed = subscriber.call(.subscribe(own, .vcpuNotify))
            _ = subscriber.call(.inject(own, Wire.DeviceID(rawValue: 7), Wire.EventID(rawValue: 0)))
            log.events.append(subscriber.client.receive())
            _ = subscriber.call(.inject(own, Wire.DeviceID(rawValue: 7), Wire.EventID(rawValue: 1)))
            log.acked = subscriber.drain(1)
            _ = subscriber.call(.inject(own, Wire.DeviceID(rawValue: 7), Wire.EventID(rawValue: 2)))
            log.events.append(subscriber.client.receive())
            // Destroying the VM: the reply, then EVENT_VM_GONE with the reason.
            _ = subscriber.call(.subscribe(own, [.vcpuNotify, .vmGone]))
            log.gone = subscriber.call(.destroyVM(own))
            log.goneEvent = subscriber.client.receive()
        }
        #expect(log.refused?.status == .capabilityNotAgreed)
        #expect(log.subscribed?.status == .ok)
        #expect(log.events.map { $0?.message } == [.vcpuNotify(VMID(rawValue: 2), Wire.VCPU(rawValue: 1)),
                                                    .vcpuNotify(VMID(rawValue: 2), Wire.VCPU(rawValue: 1))])
        #expect(log.events.map { $0?.messageID.rawValue } == [1, 2], "numbered from 1, one per edge")
        #expect(log.events.allSatisfy { $0?.flags.contains(.event) == true })
        #expect(log.acked == [8192, 8193])
        #expect(log.gone?.status == .ok)
        #expect(log.goneEvent?.message == .vmGone(VMID(rawValue: 2), reason: .destroyed))
        #expect(log.goneEvent?.messageID.rawValue == 3)
    }
}

final class EventLog: @unchecked Sendable {
    var refused, subscribed, gone, goneEvent: Frame?
    var events: [Frame?] = []
    var acked: [UInt32] = []
}

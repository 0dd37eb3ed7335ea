import Glibc
import ITSClient
import ITSWire
import Testing

/// `waitAcknowledge` and `wake` against a live itsd (Protocol/PROTOCOL.md, 6.16a): the waiting vCPU
/// thread has a connection of its own; MSIs and wakes come from other connections of the VM.
@Suite(.serialized) struct WaitAcknowledgeEndToEndTests {
    /// A VM whose device 7 maps event 0 to LPI 8192 on vCPU 0, and a second connection attached to it
    /// for the waiting vCPU thread.
    struct Setup {
        let server: LiveServer
        let owner: ITSConnection
        let vm: ITSVM
        let ram: GuestRAM
        let waiter: ITSConnection

        init() throws {
            server = try #require(LiveServer())
            owner = try ITSConnection(path: server.socketPath)
            vm = try owner.createVM(VMConfig(vcpuCount: 2, deviceIDBits: 16, eventIDBits: 16, intidBits: 16))
            ram = GuestRAM()
            try ram.attach(to: vm)
            try ram.mapDevice(7, events: 2, on: vm)
            waiter = try ITSConnection(path: server.socketPath)
        }

        func waitingVCPU() throws -> ITSVCPU { try waiter.attachVM(vm.id, token: vm.token).vcpu(0) }

        /// Runs `body` with a VM of its own connection, on another thread, after `seconds`.
        func fromAnotherConnection(after seconds: Double, _ body: @escaping @Sendable (ITSVM) throws -> Void) {
            let path = server.socketPath
            let id = vm.id
            let token = vm.token
            afterDelay(seconds) {
                guard let connection = try? ITSConnection(path: path),
                      let vm = try? connection.attachVM(id, token: token) else { return }
                try? body(vm)
            }
        }
    }

    static func seconds(since start: UInt64) -> Double {
        Double(ITSConnection.monotonicNanoseconds() - start) / 1e9
    }

    /// The shortest wait a 100 ms timeout may measure here: itsd counts from its loop's cached clock,
    /// which may read up to a loop iteration before the request arrived.
    static let hundredMilliseconds = 0.09

    @Test func anInjectedLPIEndsTheWaitAcknowledged() throws {
        let setup = try Setup()
        let cpu = try setup.waitingVCPU()
        setup.fromAnotherConnection(after: 0.1) { vm in
            _ = try vm.inject(deviceID: Wire.DeviceID(7), eventID: Wire.EventID(0))
        }
        let start = ITSConnection.monotonicNanoseconds()
        let lpi = try cpu.waitAcknowledge(timeout: .seconds(10))
        #expect(lpi == PendingLPI(intid: Wire.INTID(8192), priority: 0xA0, enabled: true))
        #expect(Self.seconds(since: start) < 9, "answered by the MSI, not the timeout")
        #expect(try setup.vm.vcpu(0).highestPriorityPending() == nil, "acknowledged: no longer pending")
    }

    @Test func aTimeoutReturnsNone() throws {
        let setup = try Setup()
        let cpu = try setup.waitingVCPU()
        let start = ITSConnection.monotonicNanoseconds()
        #expect(try cpu.waitAcknowledge(timeout: .milliseconds(100)) == nil)
        #expect(Self.seconds(since: start) >= Self.hundredMilliseconds)
    }

    @Test func zeroTimeoutIsAnAcknowledge() throws {
        let setup = try Setup()
        let cpu = try setup.waitingVCPU()
        #expect(try cpu.waitAcknowledge(timeout: .zero) == nil)
        #expect(try setup.vm.inject(deviceID: Wire.DeviceID(7), eventID: Wire.EventID(0)))
        #expect(try cpu.waitAcknowledge(timeout: .zero)?.intid == Wire.INTID(8192))
    }

    @Test func wakeEndsAWait() throws {
        let setup = try Setup()
        let cpu = try setup.waitingVCPU()
        setup.fromAnotherConnection(after: 0.1) { vm in try vm.vcpu(0).wake() }
        let start = ITSConnection.monotonicNanoseconds()
        #expect(try cpu.waitAcknowledge(timeout: .seconds(10)) == nil)
        #expect(Self.seconds(since: start) < 9, "ended by WAKE, not the timeout")
    }

    /// A WAKE with nobody waiting is latched: the next wait returns at once, and the one after waits.
    @Test func aWakeBeforeTheWaitIsLatched() throws {
        let setup = try Setup()
        let cpu = try setup.waitingVCPU()
        try setup.vm.vcpu(0).wake()
        var start = ITSConnection.monotonicNanoseconds()
        #expect(try cpu.waitAcknowledge(timeout: .seconds(10)) == nil)
        #expect(Self.seconds(since: start) < 9, "the latch answered at once")
        start = ITSConnection.monotonicNanoseconds()
        #expect(try cpu.waitAcknowledge(timeout: .milliseconds(100)) == nil)
        #expect(Self.seconds(since: start) >= Self.hundredMilliseconds, "the latch was cleared")
    }
}

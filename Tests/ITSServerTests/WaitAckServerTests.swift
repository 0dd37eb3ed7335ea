import CITSSupport
import Glibc
import ITSModel
import ITSWire
import Synchronization
import Testing
@testable import ITSServer

/// WAIT_ACK and WAKE over the socket (Protocol/PROTOCOL.md, WAIT_ACK): a vCPU connection waiting
/// is answered by an MSI from another connection, by its timeout, by WAKE or a latched WAKE; a
/// closed connection's wait takes nothing; destroying the VM ends a wait with NO_SUCH_VM; a
/// graceful shutdown ends it with 1023 without waiting for the deadline.
@Suite(.serialized) struct WaitAckServerTests {
    static let device = Wire.DeviceID(rawValue: 7)

    private static func waitAck(_ vm: VMID, vcpu: UInt16 = 1, timeout: UInt32) -> Message {
        .waitAck(vm, Wire.VCPU(rawValue: vcpu), priorityMask: 0xFF, timeoutMicroseconds: timeout)
    }

    private static func intid(_ frame: Frame?) -> UInt32? {
        guard case .waitAckReply(let lpi, _)? = frame?.message else { return nil }
        return lpi.intid.rawValue
    }

    @Test func waitsAreAnsweredByMSIsTimeoutsAndWakes() throws {
        let path = temporarySocketPath("wait-ack")
        let server = try Server(configuration: .init(socketPath: path, lanes: 2))
        let log = WaitAckLog()
        runLoop(server.loop) {
            // 7/0..3 -> 8192..8195 on vCPU 1.
            guard let vm = ClientVM.hello(path), vm.createProgrammedVM(), let waiter = vm.attachAnother(path) else { return }
            let id = vm.vm

            // Waiting, then an MSI from the other connection.
            waiter.client.send(Frame(Self.waitAck(id, timeout: .max), id: MessageID(rawValue: 100)))
            usleep(20_000)
            log.statuses.append(vm.call(.inject(id, Self.device, Wire.EventID(rawValue: 2)))?.status)
            log.taken.append(Self.intid(waiter.client.receive()))
            log.drained.append(vm.drain(1))

            // The timeout.
            var start = monotonicNanoseconds()
            log.taken.append(Self.intid(waiter.call(Self.waitAck(id, timeout: 30_000))))
            log.timeoutNanoseconds = monotonicNanoseconds() - start

            // WAKE from the other connection ends a wait.
            waiter.client.send(Frame(Self.waitAck(id, timeout: .max), id: MessageID(rawValue: 101)))
            usleep(20_000)
            log.statuses.append(vm.call(.wake(id, Wire.VCPU(rawValue: 1)))?.status)
            log.taken.append(Self.intid(waiter.client.receive()))

            // A WAKE with nobody waiting is latched: the next wait returns at once.
            log.statuses.append(vm.call(.wake(id, Wire.VCPU(rawValue: 1)))?.status)
            start = monotonicNanoseconds()
            log.taken.append(Self.intid(waiter.call(Self.waitAck(id, timeout: .max))))
            // Timeout 0 does not wait: an ACK.
            log.taken.append(Self.intid(waiter.call(Self.waitAck(id, timeout: 0))))
            log.immediateNanoseconds = monotonicNanoseconds() - start

            // A wait on a vCPU the VM does not have.
            log.statuses.append(waiter.call(Self.waitAck(id, vcpu: 5, timeout: .max))?.status)

            // SET_VCPU_NOTIFY while an LPI is deliverable writes the new eventfd at once.
            log.statuses.append(vm.call(.inject(id, Self.device, Wire.EventID(rawValue: 0)))?.status)
            let notify = its_eventfd(0, 1)
            log.statuses.append(vm.call(.setVCPUNotify(id, Wire.VCPU(rawValue: 1)), fds: [notify])?.status)
            var counter: UInt64 = 0
            log.notifiedAtOnce = read(notify, &counter, 8) == 8 && counter >= 1
            close(notify)
            log.drained.append(vm.drain(1))

            // The waiting connection closes: its wait takes nothing, and a later MSI stays pending.
            waiter.client.send(Frame(Self.waitAck(id, timeout: .max), id: MessageID(rawValue: 102)))
            usleep(20_000)
            log.waitingBeforeClose = vm.stat("wait_acks_waiting")
            shutdown(waiter.client.fd, Int32(SHUT_RDWR))   // the TestClient still owns and closes the descriptor
            usleep(50_000)
            log.statuses.append(vm.call(.inject(id, Self.device, Wire.EventID(rawValue: 3)))?.status)
            log.drained.append(vm.drain(1))
            log.waitingAfterClose = vm.stat("wait_acks_waiting")
            log.waitAcksTotal = vm.stat("wait_acks_total")
            log.wakesTotal = vm.stat("wakes_total")

            // Destroying the VM ends a wait with NO_SUCH_VM.
            guard let last = vm.attachAnother(path) else { return }
            last.client.send(Frame(Self.waitAck(id, vcpu: 0, timeout: .max), id: MessageID(rawValue: 103)))
            usleep(20_000)
            log.statuses.append(vm.call(.destroyVM(id))?.status)
            log.destroyedWait = last.client.receive()?.status
        }
        server.stop()
        #expect(log.statuses == [.ok, .ok, .ok, .noSuchVCPU, .ok, .ok, .ok, .ok])
        #expect(log.taken == [8194, 1023, 1023, 1023, 1023])
        #expect(log.drained == [[], [8192], [8195]], "what a wait took is not pending; a closed connection's wait took nothing")
        #expect(log.timeoutNanoseconds >= 29_000_000 && log.timeoutNanoseconds < 2_000_000_000, "\(log.timeoutNanoseconds) ns")
        #expect(log.immediateNanoseconds < 1_000_000_000, "a latched WAKE and timeout 0 do not wait")
        #expect(log.notifiedAtOnce, "SET_VCPU_NOTIFY wrote the eventfd of an already deliverable vCPU")
        #expect(log.waitingBeforeClose == 1)
        #expect(log.waitingAfterClose == 0)
        #expect(log.waitAcksTotal == 6)
        #expect(log.wakesTotal == 2)
        #expect(log.destroyedWait == .noSuchVM)
    }

    @Test func aGracefulShutdownEndsWaitsAtOnce() throws {
        let path = temporarySocketPath("wait-ack-shutdown")
        let server = try Server(configuration: .init(socketPath: path, lanes: 2))
        let log = WaitAckLog()
        let shutDown = Atomic<Bool>(false)
        let done = Atomic<Bool>(false)
        let client = startThread {
            defer { done.store(true, ordering: .releasing) }
            guard let connection = TestClient(path: path) else { return }
            let vm = ClientVM(client: connection)
            _ = vm.call(.hello(Hello(capabilities: .defined, limits: .defaults)))
            guard case let .createVMReply(id, _)? = vm.call(.createVM(VMConfig(vcpuCount: 2, deviceIDBits: 16, eventIDBits: 16, intidBits: 16)))?.message else { return }
            connection.send(Frame(Self.waitAck(id, timeout: .max), id: MessageID(rawValue: 100)))
            usleep(20_000)
            let start = monotonicNanoseconds()
            shutDown.store(true, ordering: .releasing)
            log.taken.append(Self.intid(connection.receive()))
            log.timeoutNanoseconds = monotonicNanoseconds() - start
        }
        var asked = false
        while !done.load(ordering: .acquiring) {
            if !asked, shutDown.load(ordering: .acquiring) {
                asked = true
                server.shutdown()
            }
            server.loop.runOnce()
            usleep(200)
        }
        pthread_join(client, nil)
        server.stop()
        #expect(log.taken == [1023])
        #expect(log.timeoutNanoseconds < 2_000_000_000, "answered at once, not at the 5 s deadline: \(log.timeoutNanoseconds) ns")
    }
}

final class WaitAckLog: @unchecked Sendable {
    var statuses: [WireStatus?] = []
    var taken: [UInt32?] = []
    var drained: [[UInt32]] = []
    var timeoutNanoseconds: UInt64 = 0
    var immediateNanoseconds: UInt64 = 0
    var notifiedAtOnce = false
    var waitingBeforeClose, waitingAfterClose, waitAcksTotal, wakesTotal: Int64?
    var destroyedWait: WireStatus?
}

extension WaitAckServerTests {
    /// A vCPU consumer waiting in WAIT_ACK while two connections inject into it, one with NO_REPLY
    /// bursts and one with replies: batches run on the loop (the lane idle) and on the lane (busy)
    /// by turns. Once the injectors are done and a wait has timed out, nothing is left pending: no
    /// LPI was stranded beside a waiting consumer. Run under ThreadSanitizer by `make test-race`.
    @Test func aWaitingConsumerMissesNothingWhileInjectorsRace() throws {
        let log = WaitAckStressLog()
        try runServer("wait-ack-stress") { path in
            guard let vm = ClientVM.hello(path), vm.createProgrammedVM(), let consumer = vm.attachAnother(path),
                  let bursts = vm.attachAnother(path), let replies = vm.attachAnother(path)
            else { return }
            let injectors = RacingInjectors(vm: vm.vm, bursts: bursts, replies: replies, seed: 0x57_7E55)
            let waiter = startThread {
                var quietAfterInjectors = false
                while !quietAfterInjectors {
                    let done = injectors.done
                    guard let intid = Self.intid(consumer.call(Self.waitAck(vm.vm, timeout: 50_000))) else {
                        log.consumerFailures += 1
                        return
                    }
                    if intid == 1023 {
                        quietAfterInjectors = done
                    } else {
                        log.taken[Int(intid) - 8192] += 1
                    }
                }
            }
            injectors.join()
            log.injectFailures = injectors.failures
            pthread_join(waiter, nil)
            log.left = vm.drain(1)
            log.batchesOnLoop = vm.stat("lane_batches_on_loop_total")
        }
        #expect(log.consumerFailures == 0 && log.injectFailures == 0)
        #expect(log.left == [], "nothing stays pending once the consumer has waited out a timeout")
        #expect(log.taken.allSatisfy { $0 > 0 }, "every LPI was taken: \(log.taken)")
        #expect((log.batchesOnLoop ?? 0) > 0, "some batches ran on the loop")
    }
}

final class WaitAckStressLog: @unchecked Sendable {
    // Each written by one thread (the consumer; the injector with replies), read after it is joined.
    var taken = [Int](repeating: 0, count: 4)
    var consumerFailures = 0
    var injectFailures = 0
    var left: [UInt32]?
    var batchesOnLoop: Int64?
}

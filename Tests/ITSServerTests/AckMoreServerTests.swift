import Glibc
import ITSModel
import ITSWire
import Testing
@testable import ITSServer

/// The `more` bit of ACK and WAIT_ACK replies over the socket (Protocol/PROTOCOL.md, section 6.16,
/// added in 1.2): set when another ACK with the same mask would take an LPI now, on connections
/// that agreed 1.2 only; computed after the vCPU's acknowledge slot has taken its own.
@Suite(.serialized) struct AckMoreServerTests {
    static let device = Wire.DeviceID(rawValue: 7)
    static let vcpu = Wire.VCPU(rawValue: 1)

    /// An ACK or WAIT_ACK reply as (INTID, more); nil for any other reply.
    struct Taken: Equatable, CustomStringConvertible {
        var intid: UInt32
        var more: Bool
        var description: String { "\(intid)\(more ? "+more" : "")" }
    }

    private static func taken(_ frame: Frame?) -> Taken? {
        switch frame?.message {
        case .ackReply(let lpi, let more)?, .waitAckReply(let lpi, let more)?: Taken(intid: lpi.intid.rawValue, more: more)
        default: nil
        }
    }

    private static func ack(_ vm: ClientVM, mask: UInt8 = 0xFF) -> Taken? {
        taken(vm.call(.ack(vm.vm, vcpu, priorityMask: mask)))
    }

    private static func waitAck(_ vm: ClientVM, timeout: UInt32) -> Message {
        .waitAck(vm.vm, vcpu, priorityMask: 0xFF, timeoutMicroseconds: timeout)
    }

    private static func inject(_ vm: ClientVM, _ events: UInt32...) -> [WireStatus?] {
        events.map { vm.call(.inject(vm.vm, device, Wire.EventID(rawValue: $0)))?.status }
    }

    /// A client that agreed `minor`, with a VM whose events 7/0..3 go to LPIs 8192..8195 on vCPU 1
    /// (priority 0xA0).
    private static func programmedVM(_ path: String, minor: UInt16 = Wire.minorVersion) -> ClientVM? {
        guard let client = TestClient(path: path) else { return nil }
        let vm = ClientVM(client: client)
        guard case .helloReply(let agreed)? = vm.call(.hello(Hello(minor: minor, capabilities: .defined, limits: .defaults)))?.message,
              agreed.minor == minor, vm.createProgrammedVM()
        else { return nil }
        return vm
    }

    @Test func ackSaysMoreWhileAnotherLPIIsDeliverable() throws {
        let log = MoreLog()
        _ = try runServer("ack-more") { path in
            guard let vm = Self.programmedVM(path) else { return }
            log.statuses += Self.inject(vm, 0, 1)
            log.taken += [Self.ack(vm), Self.ack(vm), Self.ack(vm)]
        }
        #expect(log.statuses == [.ok, .ok])
        #expect(log.taken == [Taken(intid: 8192, more: true), Taken(intid: 8193, more: false), Taken(intid: 1023, more: false)])
    }

    /// An LPI whose priority is not above the mask is not "more": another ACK with that mask would
    /// not take it.
    @Test func moreHonoursTheMask() throws {
        let log = MoreLog()
        _ = try runServer("ack-more-mask") { path in
            guard let vm = Self.programmedVM(path) else { return }
            vm.reconfigure(event: 3, 0x13)   // 8195: priority 0x10
            log.statuses += Self.inject(vm, 0, 3)
            log.taken += [Self.ack(vm, mask: 0x20), Self.ack(vm, mask: 0x20), Self.ack(vm, mask: 0xFF)]
        }
        #expect(log.statuses == [.ok, .ok])
        #expect(log.taken == [Taken(intid: 8195, more: false), Taken(intid: 1023, more: false), Taken(intid: 8192, more: false)])
    }

    /// A client that agreed 1.1 (or 1.0) knows no bit 1: the server never sets it there.
    @Test(arguments: [UInt16(0), 1])
    func olderClientsNeverSeeTheBit(minor: UInt16) throws {
        let log = MoreLog()
        _ = try runServer("ack-more-old-\(minor)") { path in
            guard let vm = Self.programmedVM(path, minor: minor) else { return }
            log.statuses += Self.inject(vm, 0, 1, 2)
            log.taken.append(Self.ack(vm))
            if minor >= 1 { log.taken.append(Self.taken(vm.call(Self.waitAck(vm, timeout: .max)))) }
        }
        #expect(log.statuses == [.ok, .ok, .ok])
        let expected = [Taken(intid: 8192, more: false), Taken(intid: 8193, more: false)]
        #expect(log.taken == Array(expected.prefix(minor >= 1 ? 2 : 1)))
    }

    @Test func waitAckSaysMoreWhenAnotherIsPending() throws {
        let log = MoreLog()
        _ = try runServer("wait-ack-more") { path in
            guard let vm = Self.programmedVM(path), let waiter = vm.attachAnother(path) else { return }
            // Deliverable when WAIT_ACK arrives.
            log.statuses += Self.inject(vm, 0, 1)
            log.taken.append(Self.taken(waiter.call(Self.waitAck(waiter, timeout: .max))))
            log.taken.append(Self.taken(waiter.call(Self.waitAck(waiter, timeout: 0))))
            // Becoming deliverable while WAIT_ACK waits: both LPIs reach the lane in one batch, the
            // wait takes the first.
            waiter.client.send(Frame(Self.waitAck(waiter, timeout: .max), id: MessageID(rawValue: 100)))
            usleep(20_000)
            let batch = InjectBatch(vm: vm.vm, entries: [InjectEntry(deviceID: Self.device, eventID: Wire.EventID(rawValue: 2)),
                                                         InjectEntry(deviceID: Self.device, eventID: Wire.EventID(rawValue: 3))])
            log.statuses.append(vm.call(.injectBatch(batch))?.status)
            log.taken.append(Self.taken(waiter.client.receive()))
            log.taken.append(Self.ack(vm))
        }
        #expect(log.statuses == [.ok, .ok, .ok])
        #expect(log.taken == [Taken(intid: 8192, more: true), Taken(intid: 8193, more: false),
                              Taken(intid: 8194, more: true), Taken(intid: 8195, more: false)])
    }

    /// `more` is what the acknowledge slot leaves: an LPI the slot takes as the ACK is served is not
    /// there for another ACK.
    @Test func moreComesAfterTheSlotTookItsLPI() throws {
        let log = MoreLog()
        _ = try runServer("ack-more-slot") { path in
            guard let vm = Self.programmedVM(path), let slot = SharedSlot() else { return }
            log.statuses.append(vm.call(.setAckSlot(vm.vm, Self.vcpu, offset: UInt64(SharedSlot.offset)), fds: [slot.fd])?.status)
            log.statuses += Self.inject(vm, 0, 1)
            // The VMM arms the slot; the server sees it at its next operation on the vCPU: this ACK.
            slot.store(.armed(priorityMask: 0xFF))
            log.taken.append(Self.ack(vm))
            log.word = slot.value
        }
        #expect(log.statuses == [.ok, .ok, .ok])
        #expect(log.taken == [Taken(intid: 8192, more: false)])
        #expect(log.word == .delivered(intid: 8193, priority: 0xA0))
    }
}

final class MoreLog: @unchecked Sendable {
    var statuses: [WireStatus?] = []
    var taken: [AckMoreServerTests.Taken?] = []
    var word: AckSlotWord?
}

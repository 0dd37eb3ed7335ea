@testable import ITSClient
import ITSWire
import Synchronization
import Testing

/// ACK's and WAIT_ACK's `more` as the client reports it (Protocol/PROTOCOL.md, 6.16, added in 1.2):
/// `acknowledgeAll` stops at the reply that says nothing is left, one ACK fewer than draining until
/// 1023; on a connection that agreed 1.1 the server does not say, and the client asks until 1023.
@Suite(.serialized) struct AcknowledgeMoreTests {
    static let lpi8192 = PendingLPI(intid: Wire.INTID(8192), priority: 0xA0, enabled: true)
    static let lpi8193 = PendingLPI(intid: Wire.INTID(8193), priority: 0xA0, enabled: true)

    /// Answers the fake server's ACKs from a script, then with none.
    final class Script: Sendable {
        let replies: Mutex<[(PendingLPI, Bool)]>
        init(_ replies: [(PendingLPI, Bool)]) { self.replies = Mutex(replies) }

        func answer(minor: UInt16) -> @Sendable (Message) -> Message? {
            { [self] message in
                switch message {
                case .hello: return .helloReply(Hello(minor: minor, capabilities: [], limits: .defaults))
                case .createVM: return .createVMReply(VMID(1), token: VMToken(high: 1, low: 2))
                case .ack:
                    let (lpi, more) = replies.withLock { $0.isEmpty ? (PendingLPI.none, false) : $0.removeFirst() }
                    return .ackReply(lpi, more: more)
                default: return nil
                }
            }
        }
    }

    static let config = VMConfig(vcpuCount: 1, deviceIDBits: 16, eventIDBits: 16, intidBits: 16)

    static func acks(_ server: FakeServer) -> Int {
        server.received.filter { if case .ack = $0 { true } else { false } }.count
    }

    /// A 1023 reply ends a drain whatever its `more` bit says, on every version: a server that set
    /// it must not keep the client asking.
    @Test func noneHasNothingMoreWhateverTheBit() {
        for minor: UInt16 in [0, 1, 2] {
            #expect(Acknowledgement(.none, more: true, agreedMinor: minor).more == false, "1.\(minor)")
            #expect(Acknowledgement(Self.lpi8192, more: false, agreedMinor: minor).more == (minor < 2), "1.\(minor)")
            #expect(Acknowledgement(Self.lpi8192, more: true, agreedMinor: minor).more, "1.\(minor)")
        }
    }

    @Test func acknowledgeAllStopsAtTheReplyWithoutMore() throws {
        let script = Script([(Self.lpi8192, true), (Self.lpi8193, false)])
        let server = try #require(FakeServer(answer: script.answer(minor: 2)))
        let connection = try ITSConnection(path: server.socketPath)
        let cpu = try connection.createVM(Self.config).vcpu(0)
        var taken: [PendingLPI] = []
        #expect(try cpu.acknowledgeAll { taken.append($0) } == 2)
        #expect(taken == [Self.lpi8192, Self.lpi8193])
        #expect(Self.acks(server) == 2, "no ACK only to learn that nothing is left")
    }

    /// A slot word with `more` makes `takeAcknowledged` drain, and the drain ends at the reply
    /// without `more`: one ACK for one LPI left.
    @Test func takeAcknowledgedDrainsUntilTheReplyWithoutMore() throws {
        let script = Script([(Self.lpi8193, false)])
        let server = try #require(FakeServer(answer: script.answer(minor: 2)))
        let connection = try ITSConnection(path: server.socketPath)
        let cpu = try connection.createVM(Self.config).vcpu(0)
        let slots = try AcknowledgeSlots(count: 1)
        var slot = slots[0]
        _ = try slot.arm()
        // What the server writes: 8192 delivered, and more found deliverable.
        slot.word.pointee = AckSlotWord.delivered(intid: 8192, priority: 0xA0).withMore.rawValue
        var taken: [PendingLPI] = []
        #expect(try cpu.takeAcknowledged(from: &slot) { taken.append($0) } == 2)
        #expect(taken == [Self.lpi8192, Self.lpi8193])
        #expect(Self.acks(server) == 1)
        #expect(slot.load() == .armed(priorityMask: 0xFF))
    }

    /// A 1.1 server sends no `more`: a taken LPI means "ask again", and only 1023 ends the drain.
    @Test func onOneOneTheClientAsksUntilNone() throws {
        let script = Script([(Self.lpi8192, false), (Self.lpi8193, false)])
        let server = try #require(FakeServer(answer: script.answer(minor: 1)))
        let connection = try ITSConnection(path: server.socketPath)
        let cpu = try connection.createVM(Self.config).vcpu(0)
        #expect(try cpu.acknowledgeReportingMore() == Acknowledgement(lpi: Self.lpi8192, more: true))
        var taken: [PendingLPI] = []
        #expect(try cpu.acknowledgeAll { taken.append($0) } == 1)
        #expect(taken == [Self.lpi8193])
        #expect(try cpu.acknowledgeReportingMore() == Acknowledgement(lpi: nil, more: false))
        #expect(Self.acks(server) == 4)
    }

    /// Against itsd: two LPIs pending, the first ACK says more and the second does not; WAIT_ACK the same.
    @Test func liveServerReportsMore() throws {
        let server = try #require(LiveServer())
        let connection = try ITSConnection(path: server.socketPath)
        let vm = try connection.createVM(Self.config)
        let ram = GuestRAM()
        try ram.attach(to: vm)
        try ram.mapDevice(7, events: 2, on: vm)
        let cpu = vm.vcpu(0)
        for event: UInt32 in [0, 1] { #expect(try vm.inject(deviceID: Wire.DeviceID(7), eventID: Wire.EventID(event))) }
        #expect(try cpu.acknowledgeReportingMore() == Acknowledgement(lpi: Self.lpi8192, more: true))
        #expect(try cpu.acknowledgeReportingMore() == Acknowledgement(lpi: Self.lpi8193, more: false))
        for event: UInt32 in [0, 1] { #expect(try vm.inject(deviceID: Wire.DeviceID(7), eventID: Wire.EventID(event))) }
        #expect(try cpu.waitAcknowledgeReportingMore(timeout: .seconds(5)) == Acknowledgement(lpi: Self.lpi8192, more: true))
        #expect(try cpu.waitAcknowledgeReportingMore(timeout: .zero) == Acknowledgement(lpi: Self.lpi8193, more: false))
        #expect(try cpu.waitAcknowledgeReportingMore(timeout: .zero) == Acknowledgement(lpi: nil, more: false))
    }
}

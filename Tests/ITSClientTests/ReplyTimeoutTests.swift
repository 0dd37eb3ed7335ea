import Glibc
@testable import ITSClient
import ITSWire
import Testing

/// The connection's reply timeout against a fake server that stops answering: the call throws
/// `.timedOut` within bounds and the connection is closed; WAIT_ACK's reply may take its own timeout
/// on top. Also the WAIT_ACK and WAKE requests as the client encodes them, and their refusal on 1.0.
@Suite struct ReplyTimeoutTests {
    static let token = VMToken(high: 1, low: 2)
    static let config = VMConfig(vcpuCount: 2, deviceIDBits: 16, eventIDBits: 16, intidBits: 16)

    /// Answers HELLO (with `minor`) and CREATE_VM, WAIT_ACK and WAKE when `vcpu` calls are answered;
    /// nothing else.
    static func answering(minor: UInt16 = Wire.minorVersion, vcpuCalls: Bool = false) -> @Sendable (Message) -> Message? {
        { message in
            switch message {
            case .hello: .helloReply(Hello(minor: minor, capabilities: [], limits: .defaults))
            case .createVM: .createVMReply(VMID(1), token: token)
            case .waitAck(_, let vcpu, _, _) where vcpuCalls:
                .waitAckReply(vcpu.rawValue == 0 ? .none : PendingLPI(intid: Wire.INTID(8193), priority: 0x80, enabled: true), more: false)
            case .wake where vcpuCalls: .done(.wake)
            default: nil
            }
        }
    }

    static func seconds(since start: UInt64) -> Double {
        Double(ITSConnection.monotonicNanoseconds() - start) / 1e9
    }

    @Test func unansweredHelloTimesOut() throws {
        let server = try #require(FakeServer { _ in nil })
        let start = ITSConnection.monotonicNanoseconds()
        #expect(throws: ITSClientError.timedOut(after: .milliseconds(200))) {
            _ = try ITSConnection(path: server.socketPath, replyTimeout: .milliseconds(200))
        }
        let elapsed = Self.seconds(since: start)
        #expect(elapsed >= 0.2 && elapsed < 5, "\(elapsed) s")
    }

    @Test func aSilentServerTimesOutAndTheConnectionCloses() throws {
        let server = try #require(FakeServer(answer: Self.answering()))
        let connection = try ITSConnection(path: server.socketPath, replyTimeout: .milliseconds(150))
        #expect(connection.replyTimeout == .milliseconds(150))
        let start = ITSConnection.monotonicNanoseconds()
        #expect(throws: ITSClientError.timedOut(after: .milliseconds(150))) { _ = try connection.ping() }
        let elapsed = Self.seconds(since: start)
        #expect(elapsed >= 0.15 && elapsed < 5, "\(elapsed) s")
        #expect(throws: ITSClientError.connectionClosed) { _ = try connection.ping() }
        #expect(ITSClientError.timedOut(after: .seconds(30)).description.contains("open a new connection"))
    }

    @Test func theDefaultIsThirtySecondsAndNilWaitsForEver() throws {
        let server = try #require(FakeServer(answer: Self.answering()))
        let connection = try ITSConnection(path: server.socketPath)
        #expect(ITSConnection.defaultReplyTimeout == .seconds(30))
        #expect(connection.replyTimeout == .seconds(30))
        connection.replyTimeout = nil
        _ = try connection.createVM(Self.config)
    }

    /// A WAIT_ACK's reply may take the wait plus the reply timeout: 300 ms + 200 ms here.
    @Test func waitAcknowledgeAddsItsTimeoutToTheReplyTimeout() throws {
        let server = try #require(FakeServer(answer: Self.answering()))
        let connection = try ITSConnection(path: server.socketPath, replyTimeout: .milliseconds(200))
        let cpu = try connection.createVM(Self.config).vcpu(1)
        let start = ITSConnection.monotonicNanoseconds()
        #expect(throws: ITSClientError.timedOut(after: .milliseconds(500))) {
            _ = try cpu.waitAcknowledge(priorityMask: 0xF0, timeout: .milliseconds(300))
        }
        let elapsed = Self.seconds(since: start)
        #expect(elapsed >= 0.5 && elapsed < 5, "\(elapsed) s")
        #expect(server.received.last == .waitAck(VMID(1), Wire.VCPU(1), priorityMask: 0xF0, timeoutMicroseconds: 300_000))
    }

    @Test func waitAcknowledgeAndWakeOnTheWire() throws {
        let server = try #require(FakeServer(answer: Self.answering(vcpuCalls: true)))
        let connection = try ITSConnection(path: server.socketPath)
        let vm = try connection.createVM(Self.config)
        #expect(try vm.vcpu(0).waitAcknowledge(timeout: nil) == nil, "1023 is nil")
        #expect(try vm.vcpu(1).waitAcknowledge(timeout: .nanoseconds(1500))
                    == PendingLPI(intid: Wire.INTID(8193), priority: 0x80, enabled: true))
        try vm.vcpu(1).wake()
        #expect(Array(server.received.dropFirst(2)) == [
            .waitAck(VMID(1), Wire.VCPU(0), priorityMask: 0xFF, timeoutMicroseconds: Message.noTimeout),
            .waitAck(VMID(1), Wire.VCPU(1), priorityMask: 0xFF, timeoutMicroseconds: 2),
            .wake(VMID(1), Wire.VCPU(1)),
        ])
    }

    @Test func aServerOfVersionOneZeroIsNotAskedToWait() throws {
        let server = try #require(FakeServer(answer: Self.answering(minor: 0)))
        let connection = try ITSConnection(path: server.socketPath)
        #expect(connection.agreed.minor == 0)
        let cpu = try connection.createVM(Self.config).vcpu(0)
        let refused = ITSClientError.versionNotAgreed(request: .waitAck, needs: 1, agreed: 0)
        #expect(throws: refused) { _ = try cpu.waitAcknowledge(timeout: .seconds(1)) }
        #expect(throws: ITSClientError.versionNotAgreed(request: .wake, needs: 1, agreed: 0)) { try cpu.wake() }
        #expect(refused.description.contains("upgrade itsd"))
        #expect(server.received.count == 2, "HELLO and CREATE_VM only")
    }

    @Test func timeoutsOnTheWire() {
        #expect(ITSVCPU.timeoutMicroseconds(nil) == Message.noTimeout)
        #expect(ITSVCPU.timeoutMicroseconds(.zero) == 0)
        #expect(ITSVCPU.timeoutMicroseconds(.milliseconds(-3)) == 0)
        #expect(ITSVCPU.timeoutMicroseconds(.nanoseconds(1)) == 1, "rounded up: not 0, which does not wait")
        #expect(ITSVCPU.timeoutMicroseconds(.microseconds(250)) == 250)
        #expect(ITSVCPU.timeoutMicroseconds(.seconds(4295)) == Message.noTimeout - 1, "clamped below no-timeout")
        #expect(ITSVCPU.timeoutMicroseconds(.seconds(Int64.max)) == Message.noTimeout - 1)
        #expect(ITSVCPU.replyTimeout(waiting: Message.noTimeout, reply: .seconds(30)) == nil)
        #expect(ITSVCPU.replyTimeout(waiting: 1000, reply: nil) == nil)
        #expect(ITSVCPU.replyTimeout(waiting: 1000, reply: .seconds(30)) == .seconds(30) + .milliseconds(1))
        #expect(ITSConnection.nanoseconds(.seconds(Int64.max)) == .max)
        #expect(ITSConnection.nanoseconds(.milliseconds(1)) == 1_000_000)
    }
}

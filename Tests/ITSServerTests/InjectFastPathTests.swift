import CITSSupport
import Glibc
import ITSModel
import ITSWire
import Testing
@testable import ITSServer

/// The loop reads NO_REPLY INJECT frames straight from the receive buffer (``InjectRequest``):
/// what it does for them must be what the general path does, and anything the fast path does not
/// recognise must still reach the decoder and get its error.
@Suite struct InjectFastPathTests {
    final class Log: @unchecked Sendable {
        var pipelined: [Frame?] = []
        var acked: [UInt32] = []
        var quiet: Frame?
        var beforeHello: Frame?
    }

    static func noReplyInject(_ vm: VMID, _ device: UInt32, _ event: UInt32, id: UInt32) -> [UInt8] {
        Frame(.inject(vm, Wire.DeviceID(rawValue: device), Wire.EventID(rawValue: event)), id: MessageID(id), noReply: true).encoded
    }

    /// Only an INJECT frame with exactly NO_REPLY, a zero status and a zero reserved word is taken.
    @Test func recognisesOnlyWellFormedNoReplyInjects() {
        let good = Self.noReplyInject(VMID(3), 7, 9, id: 5)
        let request = InjectRequest(good, at: 0)
        #expect(request?.vm == VMID(3) && request?.device == Wire.DeviceID(7) && request?.event == Wire.EventID(9))
        #expect(request?.messageID == MessageID(5))
        var reserved = good
        reserved[28] = 1
        var status = good
        status[12] = 1
        var flags = good
        flags[6] = 0
        let replying = Frame(.inject(VMID(3), Wire.DeviceID(7), Wire.EventID(9)), id: MessageID(5)).encoded
        let batch = Frame(.injectBatch(InjectBatch(vm: VMID(3), entries: [InjectEntry(deviceID: Wire.DeviceID(7), eventID: Wire.EventID(9)),
                                                                          InjectEntry(deviceID: Wire.DeviceID(7), eventID: Wire.EventID(9))])),
                          id: MessageID(5), noReply: true).encoded
        for bytes in [reserved, status, flags, replying, Array(batch.prefix(InjectRequest.frameLength))] {
            #expect(InjectRequest(bytes, at: 0) == nil)
        }
        #expect(InjectRequest([0, 0] + good, at: 2) != nil, "read at the offset given")
    }

    /// Pipelined NO_REPLY INJECTs with ERROR_REPORTS: the delivered one says nothing, a blocked one
    /// and one naming another VM get their errors, one with a nonzero reserved word gets the
    /// decoder's, all in request order; without ERROR_REPORTS a blocked one says nothing; before
    /// HELLO one is refused as the first request.
    @Test func answersAsTheGeneralPathDoes() throws {
        let log = Log()
        let server = try runServer("inject-fast") { path in
            guard let client = TestClient(path: path) else { return }
            let vm = ClientVM(client: client)
            guard let id = vm.helloAndProgrammedVM(capabilities: [.errorReports]) else { return }
            var nonzeroReserved = Self.noReplyInject(id, 7, 1, id: 13)
            nonzeroReserved[28] = 1
            client.sendBytes(Self.noReplyInject(id, 7, 0, id: 10) + Self.noReplyInject(id, 9, 0, id: 11)
                + Self.noReplyInject(VMID(999), 7, 0, id: 12) + nonzeroReserved + Frame(.ping(nonce: 4), id: MessageID(14)).encoded)
            for _ in 0 ..< 4 { log.pipelined.append(client.receive()) }
            for _ in 0 ..< 2 {
                if case .ackReply(let lpi, _)? = vm.call(.ack(id, Wire.VCPU(rawValue: 1), priorityMask: 0xFF))?.message { log.acked.append(lpi.intid.rawValue) }
            }

            guard let other = TestClient(path: path) else { return }
            let quiet = ClientVM(client: other)
            _ = quiet.call(.hello(Hello(capabilities: [], limits: .defaults)))
            _ = quiet.call(.attachVM(id, token: .operatorAttachToken))
            other.sendBytes(Self.noReplyInject(id, 9, 0, id: 20) + Frame(.ping(nonce: 5), id: MessageID(21)).encoded)
            log.quiet = other.receive()

            guard let third = TestClient(path: path) else { return }
            third.sendBytes(Self.noReplyInject(id, 7, 2, id: 30))
            log.beforeHello = third.receive()
        }
        #expect(log.pipelined.map { $0?.messageID.rawValue } == [11, 12, 13, 14])
        #expect(log.pipelined.map { $0?.status } == [.translationBlocked, .noSuchVM, .nonzeroPadding, .ok])
        #expect(log.pipelined.first??.message == .error(.inject, ErrorReport(.translationBlocked)))
        #expect(log.acked == [8192, 1023], "the delivered INJECT made 8192 pending; the refused one nothing")
        #expect(log.quiet?.message == .pingReply(nonce: 5), "no error without ERROR_REPORTS")
        #expect(log.beforeHello?.status == .notHelloFirst)
        #expect(log.beforeHello?.messageID == MessageID(30))
        #expect(server.counters.requests >= 5)
    }
}

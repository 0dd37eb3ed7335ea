import Glibc
import ITSModel
import ITSWire
import Testing
@testable import ITSServer

/// Operator attach (Protocol/PROTOCOL.md, 6.4): ATTACH_VM with 16 zero bytes as token attaches a
/// Unix-socket peer whose uid is an operator's to any VM; anyone else gets BAD_TOKEN.
@Suite struct OperatorTests {
    static let zero = VMToken(high: 0, low: 0)

    /// With the default operators (root and itsd's own uid, which the test shares), a second
    /// connection attaches to a VM it did not create with the zero token and drives it: it
    /// injects an MSI the creator then acknowledges, and takes a snapshot. An unknown VM is still
    /// NO_SUCH_VM.
    @Test func anOperatorAttachesWithTheZeroToken() throws {
        let (itsd, path) = try #require(startItsd("operator"), "the itsd executable next to the test bundle")
        defer { itsd.stop() }
        let owner = try #require(ClientVM.hello(path))
        #expect(owner.createProgrammedVM())
        let tool = try #require(ClientVM.hello(path))
        let attached = tool.call(.attachVM(owner.vm, token: Self.zero))
        #expect(attached?.message == .attachVMReply(owner.vm, VMConfig(vcpuCount: 2, deviceIDBits: 16, eventIDBits: 16, intidBits: 16)),
                "\(String(describing: attached))")
        tool.vm = owner.vm
        #expect(tool.call(.inject(owner.vm, Wire.DeviceID(rawValue: 7), Wire.EventID(rawValue: 2)))?.status == .ok)
        #expect(owner.drain(1) == [8194])
        guard case .snapshotReply(let chunk)? = tool.call(.snapshotVM(owner.vm, offset: 0, maxBytes: 0))?.message else {
            Issue.record("SNAPSHOT_VM by the operator")
            return
        }
        #expect(chunk.totalLength > 0)
        #expect(tool.call(.attachVM(VMID(rawValue: 999), token: Self.zero))?.errorReport?.status == .noSuchVM)
    }

    /// itsd with operators that do not include the test's uid, by flag and by configuration file:
    /// the zero token is BAD_TOKEN, the VM's own token still attaches.
    @Test func aPeerThatIsNotAnOperatorGetsBadToken() throws {
        let file = try TemporaryFile("operator_uids = [12345]\n")
        for arguments in [["--operator-uid", "12345", "--operator-uid", "23456"], ["--config", file.path]] {
            let (itsd, path) = try #require(startItsd("not-operator", arguments), "the itsd executable next to the test bundle")
            defer { itsd.stop() }
            let owner = try #require(ClientVM.hello(path))
            guard case let .createVMReply(id, token)? = owner.call(.createVM(VMConfig(vcpuCount: 1, deviceIDBits: 8, eventIDBits: 8, intidBits: 16)))?.message else {
                Issue.record("CREATE_VM")
                return
            }
            #expect(token != Self.zero)
            let other = try #require(ClientVM.hello(path))
            let refused = other.call(.attachVM(id, token: Self.zero))
            #expect(refused?.errorReport?.status == .badToken, "\(arguments): \(String(describing: refused))")
            #expect(other.call(.inject(id, Wire.DeviceID(rawValue: 1), Wire.EventID(rawValue: 1)))?.errorReport?.status == .notAttached)
            #expect(other.call(.attachVM(id, token: token))?.status == .ok, "the VM's token works for anyone admitted")
        }
    }

    /// A TCP peer is never an operator, whatever uids are configured.
    @Test func aTCPPeerIsNeverAnOperator() throws {
        let path = temporarySocketPath("operator-tcp")
        var configuration = Server.Configuration(socketPath: path, lanes: 1)
        configuration.tcp = (try #require(TCPListener.Endpoint("127.0.0.1:0")), TCPTests.secret)
        configuration.operatorUIDs = [0, getuid(), .max]
        let server = try Server(configuration: configuration)
        let port = try #require(server.tcpListener?.port)
        let log = OperatorLog()
        runLoop(server.loop) {
            guard let local = ClientVM.hello(path), local.createVM(), let client = TCPTests.connectTCP(port: port) else { return }
            let remote = ClientVM(client: client)
            _ = remote.call(.hello(Hello(capabilities: .defined, limits: .defaults)))
            log.authenticated = remote.call(.authenticate(secret: TCPTests.secret))?.status
            log.tcpAttach = remote.call(.attachVM(local.vm, token: Self.zero))?.errorReport?.status
            log.unixAttach = ClientVM.hello(path)?.call(.attachVM(local.vm, token: Self.zero))?.status
        }
        server.stop()
        #expect(log.authenticated == .ok)
        #expect(log.tcpAttach == .badToken)
        #expect(log.unixAttach == .ok, "the same server takes the zero token from a Unix-socket operator")
    }
}

final class OperatorLog: @unchecked Sendable {
    var authenticated, tcpAttach, unixAttach: WireStatus?
}

import CITSSupport
import Glibc
import ITSModel
import ITSWire
import Testing
@testable import ITSServer

/// The TCP listener: a client must AUTHENTICATE with the secret before anything else; requests that
/// need a descriptor are refused there; the Unix socket is unaffected.
@Suite(.serialized) struct TCPTests {
    static let secret = Array("correct horse battery staple".utf8)

    static func connectTCP(port: UInt16) -> TestClient? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        return TestClient(connected: fd)
    }

    @Test func secretGuardsTheListener() throws {
        let path = temporarySocketPath("tcp")
        var configuration = Server.Configuration(socketPath: path, lanes: 1)
        configuration.tcp = (try #require(TCPListener.Endpoint("127.0.0.1:0")), Self.secret)
        let server = try Server(configuration: configuration)
        let port = try #require(server.tcpListener?.port)
        let log = TCPLog()
        runLoop(server.loop) {
            let hello = Message.hello(Hello(capabilities: .defined, limits: .defaults))
            // No secret: the first request after HELLO is refused and the connection closed.
            if let client = Self.connectTCP(port: port) {
                let vm = ClientVM(client: client)
                log.helloWithoutSecret = vm.call(hello)?.status
                log.withoutSecret = vm.call(.listVMs)?.status
                log.closedAfterRefusal = vm.client.closesWithoutMore()
            }
            // A wrong secret: refused, closed.
            if let client = Self.connectTCP(port: port) {
                let vm = ClientVM(client: client)
                _ = vm.call(hello)
                log.wrongSecret = vm.call(.authenticate(secret: Array("guess".utf8)))?.status
                log.closedAfterWrongSecret = vm.client.closesWithoutMore()
            }
            // The secret: requests work, except those that need a descriptor.
            if let client = Self.connectTCP(port: port) {
                let vm = ClientVM(client: client)
                _ = vm.call(hello)
                log.rightSecret = vm.call(.authenticate(secret: Self.secret))?.status
                log.ping = vm.call(.ping(nonce: 7))?.message
                if case let .createVMReply(id, _)? = vm.call(.createVM(VMConfig(vcpuCount: 1, deviceIDBits: 8, eventIDBits: 8, intidBits: 16)))?.message {
                    log.created = true
                    log.memory = vm.call(.addMemRegion(MemRegion(vm: id, guestAddress: 0, size: 4096, fileOffset: 0)))?.status
                    log.read = vm.call(.mmioRead(MMIOAccess(vm: id, frame: .its, width: .doubleword, offset: ITS.Offset.typer)))?.message
                }
            }
            // The Unix socket needs no secret, and AUTHENTICATE there changes nothing.
            if let client = TestClient(path: path) {
                let vm = ClientVM(client: client)
                _ = vm.call(hello)
                log.unixAuthenticate = vm.call(.authenticate(secret: Array("anything".utf8)))?.status
                log.unixList = vm.call(.listVMs)?.message
            }
        }
        server.stop()
        #expect(log.helloWithoutSecret == .ok, "HELLO comes first, on TCP too")
        #expect(log.withoutSecret == .permissionDenied)
        #expect(log.closedAfterRefusal)
        #expect(log.wrongSecret == .permissionDenied)
        #expect(log.closedAfterWrongSecret)
        #expect(log.rightSecret == .ok)
        #expect(log.ping == .pingReply(nonce: 7))
        #expect(log.created)
        #expect(log.memory == .fdNotAllowedOnTCP)
        if case .mmioReadReply(let typer)? = log.read { #expect(typer & 1 == 1, "GITS_TYPER.Physical") } else { Issue.record("MMIO_READ over TCP") }
        #expect(log.unixAuthenticate == .ok)
        if case .listVMsReply(let vms)? = log.unixList { #expect(vms.count == 1) } else { Issue.record("LIST_VMS") }
    }

    @Test func endpoints() {
        #expect(TCPListener.Endpoint("127.0.0.1:7300") == TCPListener.Endpoint("127.0.0.1:7300"))
        #expect(TCPListener.Endpoint("127.0.0.1:7300")?.isLoopback == true)
        #expect(TCPListener.Endpoint("[::1]:7300")?.host == "::1")
        #expect(TCPListener.Endpoint("[::1]:7300")?.description == "[::1]:7300")
        #expect(TCPListener.Endpoint("0.0.0.0:7300")?.isLoopback == false)
        #expect(TCPListener.Endpoint("localhost:7300") == nil, "numeric addresses only")
        #expect(TCPListener.Endpoint("127.0.0.1") == nil)
        #expect(TCPListener.Endpoint("127.0.0.1:70000") == nil)
        #expect(TCPListener.Endpoint("::1:7300") == nil, "IPv6 in brackets")
    }
}

final class TCPLog: @unchecked Sendable {
    var helloWithoutSecret, withoutSecret, wrongSecret, rightSecret, memory, unixAuthenticate: WireStatus?
    var closedAfterRefusal = false, closedAfterWrongSecret = false, created = false
    var ping, read, unixList: Message?
}

import Glibc
import ITSClient
import ITSWire
import Testing

/// itsctl's ping, vm list and its errors, against a live itsd.
@Suite(.serialized) struct ItsctlBasicTests {
    @Test func pingReportsTheAgreedProtocol() throws {
        let server = try #require(LiveServer())
        let result = itsctl(["ping", "--socket", server.socketPath, "-c", "3"])
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output.contains("itsd at \(server.socketPath): protocol 1.2, capabilities ERROR_REPORTS|EVENTS|SNAPSHOT"))
        #expect(result.output.split(separator: "\n").filter { $0.hasPrefix("ping ") }.count == 3)
    }

    @Test func aMissingServerNamesThePathAndHowToStartIt() {
        let path = temporaryPath("nothing.sock")
        for arguments in [["ping"], ["vm", "list"], ["stats", "--once"], ["dump", "1"], ["inject", "1", "2", "3"],
                          ["snapshot", "1", path + ".snap"], ["top", "-n", "1"]] {
            let result = itsctl(arguments + ["--socket", path])
            #expect(result.status == 69, "\(arguments): exit \(result.status), \(result.errors)")
            #expect(result.errors.contains("itsctl: no itsd socket at \(path): start itsd with `itsd --socket \(path)`"),
                    "\(arguments): \(result.errors)")
            #expect(result.output.isEmpty)
        }
        // The socket comes from $ITSD_SOCKET when --socket is not given.
        let fromEnvironment = itsctl(["ping"], environment: ["ITSD_SOCKET": path, "NO_COLOR": "1"])
        #expect(fromEnvironment.status == 69)
        #expect(fromEnvironment.errors.contains("no itsd socket at \(path)"))
    }

    @Test func aStaleSocketFileSaysNothingListens() throws {
        let path = temporaryPath("stale.sock")
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path.utf8) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        close(fd)
        defer { unlink(path) }
        try #require(bound == 0)
        let result = itsctl(["vm", "list", "--socket", path])
        #expect(result.status == 69)
        #expect(result.errors.contains("nothing is listening on \(path) (a stale socket file"))
    }

    @Test func vmListShowsEveryVM() throws {
        let server = try #require(LiveServer())
        let connection = try ITSConnection(path: server.socketPath)
        let first = try connection.createVM(VMConfig(vcpuCount: 4, deviceIDBits: 16, eventIDBits: 12, intidBits: 16))
        let second = try connection.createVM(VMConfig(vcpuCount: 1, deviceIDBits: 8, eventIDBits: 8, intidBits: 14))
        let table = itsctl(["vm", "list", "--socket", server.socketPath])
        #expect(table.status == 0)
        let lines = table.output.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(lines.first == ["VM", "VCPUS", "DEVBITS", "EVBITS", "INTIDBITS", "STATE", "CONNS"])
        #expect(lines.dropFirst().map { $0 } == [["\(first.id)", "4", "16", "12", "16", "attached", "1"],
                                                  ["\(second.id)", "1", "8", "8", "14", "attached", "1"]])
        let json = itsctl(["vm", "list", "--json", "--socket", server.socketPath])
        #expect(json.status == 0)
        let objects = json.output.split(separator: "\n").map { JSONValue.parse(String($0)) }
        #expect(objects.count == 2)
        #expect(objects[0]?["vm"]?.number == Double(first.id.rawValue))
        #expect(objects[0]?["vcpus"]?.number == 4)
        #expect(objects[1]?["intid_bits"]?.number == 14)
        #expect(objects[1]?["state"]?.string == "attached")
    }

    @Test func everySubcommandHasHelp() {
        for command in [[], ["stats"], ["top"], ["vm"], ["vm", "list"], ["dump"], ["inject"], ["snapshot"], ["restore"], ["ping"], ["demo"]] {
            let result = itsctl(command + ["--help"])
            #expect(result.status == 0, "\(command)")
            #expect(result.output.contains("USAGE: itsctl"), "\(command): \(result.output)")
            if !command.isEmpty, command != ["vm"] { #expect(result.output.contains("--socket <path>"), "\(command)") }
        }
        for shell in ["bash", "zsh", "fish"] {
            let script = itsctl(["--generate-completion-script", shell])
            #expect(script.status == 0)
            #expect(script.output.contains("itsctl"))
            #expect(script.output.contains("snapshot") && script.output.contains("prometheus"), "\(shell)")
        }
    }
}

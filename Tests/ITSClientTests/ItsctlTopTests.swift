import Glibc
import ITSClient
import ITSWire
import Testing

/// `itsctl top` in a real terminal (tmux): the frame's rows, a resize, and q and Ctrl-C putting the
/// terminal back; and plain snapshots when standard output is not a terminal.
@Suite(.serialized) struct ItsctlTopTests {
    /// tmux on a private server socket, so the test touches no other tmux session.
    struct Tmux {
        let executable: String
        let name = "itsctl-\(getpid())-\(UInt32.random(in: 0 ... .max))"

        @discardableResult
        func run(_ arguments: [String]) -> CommandResult {
            guard let child = ChildProcess(executable, ["-L", name] + arguments) else {
                return CommandResult(status: -1, output: "", errors: "spawn")
            }
            let status = child.wait(seconds: 20) ?? -2
            return CommandResult(status: status, output: child.output, errors: child.errors)
        }

        func capture() -> String { run(["capture-pane", "-p", "-t", name]).output }

        func kill() { run(["kill-server"]) }
    }

    func tmux() throws -> Tmux {
        guard let executable = findExecutable("tmux") ?? findExecutable("/usr/bin/tmux") else {
            try Test.cancel("tmux is not installed (make test-deps installs Debian's tmux)")
        }
        return Tmux(executable: executable)
    }

    @Test func topDrawsTheViewResizesAndRestoresTheTerminal() throws {
        let tmux = try tmux()
        let server = try #require(LiveServer())
        let traffic = try TrafficVM(socket: server.socketPath)
        let idle = try traffic.connection.createVM(VMConfig(vcpuCount: 3, deviceIDBits: 8, eventIDBits: 8, intidBits: 14))
        let sttyAfter = temporaryPath("stty")
        defer { unlink(sttyAfter); tmux.kill() }
        let command = "NO_COLOR=1 \(productDirectory())/itsctl top -d 0.2 --socket \(server.socketPath); "
            + "echo \"exit $?\" > \(sttyAfter); stty -a >> \(sttyAfter); sleep 30"
        let started = tmux.run(["new-session", "-d", "-s", tmux.name, "-x", "120", "-y", "40", "sh", "-c", command])
        try #require(started.status == 0, "tmux new-session: \(started.errors)")

        var frame = ""
        let deadline = ITSConnection.monotonicNanoseconds() + 20_000_000_000
        while ITSConnection.monotonicNanoseconds() < deadline {
            try traffic.burst()
            usleep(20_000)
            frame = tmux.capture()
            let rows = frame.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
            let vmRow = rows.first { $0.first == "\(traffic.vm.id)" && $0.contains("attached") }
            if let vmRow, vmRow.count == 10, vmRow[4] != "-", vmRow[4] != "0" { break }
        }
        let lines = frame.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.first?.hasPrefix("itsd top \(server.socketPath)  up 0:00:") == true, "\(frame)")
        #expect(lines.first?.contains("  VMs 2  connections 2  loop ") == true, "top's and the traffic's connections: \(frame)")
        #expect(lines.count > 1 && lines[1].hasPrefix("MSIs ") && !lines[1].hasPrefix("MSIs -/s"), "\(frame)")
        let rows = lines.map { $0.split(separator: " ").map(String.init) }
        #expect(rows.contains(["VM", "VCPUS", "STATE", "CONNS", "MSI/s", "LPI/s", "ACK/s", "BLK/s", "CMD/s", "PEND"]), "\(frame)")
        let vmRows = rows.filter { $0.count == 10 && ($0[2] == "attached" || $0[2] == "orphaned") }
        #expect(vmRows.map(\.first) == ["\(traffic.vm.id)", "\(idle.id)"], "the busy VM sorts first: \(frame)")
        #expect(vmRows.first.map { $0[4] != "-" && $0[4] != "0" } == true, "MSIs per second: \(frame)")
        #expect(rows.contains(["VM", "VCPU", "LPI/s", "COAL/s", "ACK/s", "DROP/s", "PEND"]), "\(frame)")
        let vcpuRows = rows.filter { $0.count == 7 && $0[0] == "\(traffic.vm.id)" }
        #expect(Set(vcpuRows.map { $0[1] }) == ["0", "1"], "\(frame)")
        #expect(rows.filter { $0.count == 7 && $0[0] == "\(idle.id)" }.count == 3, "the idle VM's vCPUs: \(frame)")
        #expect(rows.contains(["VM", "DEVICE", "MSI/s", "BLK/s"]), "\(frame)")
        let deviceRows = rows.filter { $0.count == 4 && $0[0] == "\(traffic.vm.id)" }
        #expect(deviceRows.map { $0[1] } == ["7", "9"], "device 7 has four times the MSIs of device 9: \(frame)")

        // A resize redraws at the new size.
        tmux.run(["resize-window", "-t", tmux.name, "-x", "50", "-y", "12"])
        var resized = ""
        #expect(eventually(seconds: 5) {
            resized = tmux.capture()
            let shown = resized.split(separator: "\n")
            return shown.count <= 12 && shown.allSatisfy { $0.count <= 50 } && shown.first?.hasPrefix("itsd top") == true
        }, "\(resized)")

        // q quits with 0 and the terminal is back in canonical mode with echo.
        tmux.run(["send-keys", "-t", tmux.name, "q"])
        var after = ""
        #expect(eventually(seconds: 10) { after = readText(sttyAfter); return after.contains("speed") })
        #expect(after.hasPrefix("exit 0\n"), "\(after)")
        #expect(after.contains(" icanon") && after.contains(" echo") && !after.contains("-icanon"), "\(after)")
        #expect(!tmux.capture().contains("VCPUS"), "the alternate screen is gone")
    }

    @Test func ctrlCQuitsAndRestoresTheTerminal() throws {
        let tmux = try tmux()
        let server = try #require(LiveServer())
        let after = temporaryPath("stty")
        defer { unlink(after); tmux.kill() }
        let command = "\(productDirectory())/itsctl top -d 0.2 --socket \(server.socketPath); echo \"exit $?\" > \(after); "
            + "stty -a >> \(after); sleep 30"
        try #require(tmux.run(["new-session", "-d", "-s", tmux.name, "-x", "100", "-y", "30", "sh", "-c", command]).status == 0)
        #expect(eventually(seconds: 10) { tmux.capture().contains("itsd top") })
        tmux.run(["send-keys", "-t", tmux.name, "C-c"])
        var text = ""
        #expect(eventually(seconds: 10) { text = readText(after); return text.contains("speed") })
        #expect(text.hasPrefix("exit 0\n"), "\(text)")
        #expect(text.contains(" icanon") && !text.contains("-icanon"), "\(text)")
    }

    @Test func aServerThatGoesAwayEndsTopWithTheTerminalRestored() throws {
        let tmux = try tmux()
        let server = try #require(LiveServer())
        let after = temporaryPath("stty")
        let errors = after + ".err"
        defer { unlink(after); unlink(errors); tmux.kill() }
        let command = "\(productDirectory())/itsctl top -d 0.2 --socket \(server.socketPath) 2> \(errors); "
            + "echo \"exit $?\" > \(after); stty -a >> \(after); sleep 30"
        try #require(tmux.run(["new-session", "-d", "-s", tmux.name, "-x", "100", "-y", "30", "sh", "-c", command]).status == 0)
        #expect(eventually(seconds: 10) { tmux.capture().contains("itsd top") })
        #expect(server.process.stop() == 0)
        var text = ""
        #expect(eventually(seconds: 10) { text = readText(after); return text.contains("speed") })
        #expect(text.hasPrefix("exit 69\n"), "\(text)")
        #expect(text.contains(" icanon") && !text.contains("-icanon"), "\(text)")
        #expect(readText(errors).hasPrefix("itsctl: itsd at \(server.socketPath) closed the connection"), "\(readText(errors))")
    }

    @Test func plainSnapshotsWhenNotATerminal() throws {
        let server = try #require(LiveServer())
        let traffic = try TrafficVM(socket: server.socketPath)
        let child = try #require(startItsctl(["top", "-d", "0.2", "-n", "2", "--socket", server.socketPath]))
        let result = try traffic.drive(child)
        #expect(result.status == 0, "\(result.errors)")
        #expect(!result.output.contains("\u{1B}"), "no escape sequences")
        let frames = result.output.split(separator: "\n\n", omittingEmptySubsequences: false)
        #expect(frames.count == 2, "\(result.output)")
        for frame in frames {
            #expect(frame.hasPrefix("itsd top \(server.socketPath)"))
            #expect(frame.contains("\n\(traffic.vm.id)  ") || frame.contains("\n\(traffic.vm.id) "), "\(frame)")
        }
    }
}

/// The table view on a terminal: its header every 20 rows, in bold unless NO_COLOR is set; and no
/// escape sequences at all when the output is a file.
@Suite(.serialized) struct ItsctlTerminalOutputTests {
    @Test func statsRepeatsItsHeaderAndColoursOnlyATerminal() throws {
        guard let executable = findExecutable("tmux") else {
            try Test.cancel("tmux is not installed (make test-deps installs Debian's tmux)")
        }
        let tmux = ItsctlTopTests.Tmux(executable: executable)
        defer { tmux.kill() }
        let server = try #require(LiveServer())
        let command = "env -u NO_COLOR \(productDirectory())/itsctl stats 0.05 25 --socket \(server.socketPath); sleep 30"
        try #require(tmux.run(["new-session", "-d", "-s", tmux.name, "-x", "150", "-y", "60", "sh", "-c", command]).status == 0)
        var screen = ""
        #expect(eventually(seconds: 20) {
            screen = tmux.run(["capture-pane", "-e", "-p", "-t", tmux.name]).output
            return screen.split(separator: "\n").filter { !$0.isEmpty }.count >= 27
        }, "\(screen)")
        let lines = screen.split(separator: "\n").filter { !$0.isEmpty }
        let headers = lines.enumerated().filter { $0.element.contains("msi/s") }.map(\.offset)
        #expect(headers == [0, 21], "a header, 20 rows, the header again: \(headers)")
        #expect(lines[0].hasPrefix("\u{1B}[1m"), "bold on a terminal: \(lines[0].debugDescription)")

        let plainCommand = "NO_COLOR=1 \(productDirectory())/itsctl stats 0.05 2 --socket \(server.socketPath); sleep 30"
        tmux.run(["kill-session", "-t", tmux.name])
        try #require(tmux.run(["new-session", "-d", "-s", tmux.name, "-x", "150", "-y", "20", "sh", "-c", plainCommand]).status == 0)
        #expect(eventually(seconds: 10) {
            screen = tmux.run(["capture-pane", "-e", "-p", "-t", tmux.name]).output
            return screen.split(separator: "\n").filter { !$0.isEmpty }.count >= 3
        })
        #expect(!screen.contains("\u{1B}[1m"), "NO_COLOR: \(screen.debugDescription)")

        let piped = itsctl(["stats", "0.05", "2", "--socket", server.socketPath], environment: ["TERM": "xterm"])
        #expect(piped.status == 0)
        #expect(!piped.output.contains("\u{1B}"), "not a terminal: no escape sequences")
        #expect(piped.output.split(separator: "\n").filter { $0.contains("msi/s") }.count == 1)
    }
}

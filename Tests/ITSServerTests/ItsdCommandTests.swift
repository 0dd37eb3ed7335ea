import CITSSupport
import Glibc
import ITSModel
import ITSWire
import Testing

/// The itsd executable: its configuration file and flags, its exit codes, its logs.
@Suite(.serialized) struct ItsdCommandTests {
    @Test func configurationFileAndFlags() throws {
        let path = temporarySocketPath("config")
        let config = try TemporaryFile("lanes = 3\nsocket = \"\(path)\"\ngrace_period = 0.5\nlog_level = \"debug\"\n")
        let started = try #require(ItsdRun(["--config", config.path]))
        #expect(started.waitForOutput("itsd listening on \(path) (3 lanes)"))
        #expect(access(path, F_OK) == 0)
        #expect(started.stop() == 0, "a clean shutdown exits 0")
        #expect(access(path, F_OK) != 0, "the socket file is removed")
        #expect(started.output.contains("itsd stopped"))
        #expect(started.errors.contains("signal 15: stopping"), "log_level debug shows the info line")

        let overridden = try #require(ItsdRun(["--config", config.path, "--lanes", "1"]))
        #expect(overridden.waitForOutput("itsd listening on \(path) (1 lane)"), "a flag wins over the file")
        #expect(overridden.stop() == 0)
    }

    @Test(arguments: [
        ("lanse = 2\n", "unknown key 'lanse'"),
        ("lanes = \"two\"\n", "'lanes' must be an integer in 1 ... 256"),
        ("lanes = 999\n", "'lanes' must be an integer in 1 ... 256"),
        ("log_level = \"loud\"\n", "'log_level' must be one of trace, debug"),
        ("socket_mode = \"0999\"\n", "'socket_mode' must be octal"),
        ("allowed_uids = [\"root\"]\n", "'allowed_uids' must be an array of numeric ids"),
        ("lanes = [\n", "line 1"),
    ])
    func badConfigurationExits78(text: String, message: String) throws {
        let config = try TemporaryFile(text)
        let run = try #require(ItsdRun(["--config", config.path, "--socket", temporarySocketPath("badconfig")]))
        #expect(run.wait() == 78)
        #expect(run.errors.contains(message), "stderr: \(run.errors)")
    }

    @Test func exitCodes() throws {
        let missing = try #require(ItsdRun(["--config", "/nonexistent/itsd.toml"]))
        #expect(missing.wait() == 78)
        #expect(missing.errors.contains("/nonexistent/itsd.toml: No such file or directory"))
        let usage = try #require(ItsdRun(["--lanes", "0"]))
        #expect(usage.wait() == 64)
        let path = temporarySocketPath("busy")
        let first = try #require(ItsdRun(["--socket", path]))
        #expect(first.waitForOutput("listening"))
        let second = try #require(ItsdRun(["--socket", path]))
        #expect(second.wait() == 1, "the socket is in use")
        #expect(second.errors.contains("cannot listen on \(path)"))
        #expect(first.stop() == 0)
    }

    /// Guest errors at the ITS are logged as warnings, at most guest_error_log_burst per window.
    @Test func guestErrorsAreLoggedWithARateLimit() throws {
        let path = temporarySocketPath("guestlog")
        let config = try TemporaryFile("guest_error_log_burst = 2\n")
        let itsd = try #require(ItsdRun(["--config", config.path, "--socket", path, "--log-level", "warning"]))
        #expect(itsd.waitForOutput("listening"))
        let client = try #require(TestClient(path: path))
        let vm = ClientVM(client: client)
        guard vm.helloAndProgrammedVM() != nil else { return #expect(Bool(false), "CREATE_VM") }
        // Five commands, each on its own CWRITER write, each skipped with an error (device 9 is not mapped).
        for index in 0 ..< 5 {
            let command = ITSCommand.int(DeviceID(9), EventID(UInt32(index)))
            let words = command.encoded
            let slot = UInt64(6 + index) * 32
            for (word, value) in [words.0, words.1, words.2, words.3].enumerated() { vm.write64(value, at: 0x40_0000 + slot + UInt64(word * 8)) }
            _ = vm.mmioWrite(.its, ITS.Offset.cwriter, slot + 32)
        }
        _ = vm.call(.ping(nonce: 1))
        #expect(itsd.stop() == 0)
        let lines = itsd.errors.split(separator: "\n").filter { $0.contains("guest:") }
        #expect(lines.count == 2, "burst 2: \(itsd.errors)")
        #expect(lines.allSatisfy { $0.contains("warning") && $0.contains("E_ITS 0x10304") }, "INT to an unmapped device: E_ITS_INT_UNMAPPED_DEVICE; \(lines)")
    }
}

/// A file with `text` in /tmp, removed when the value goes.
final class TemporaryFile {
    let path: String
    init(_ text: String) throws {
        var template = Array("/tmp/itsd-test-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw SystemCallFailed() }
        path = String(cString: template)
        var text = text
        text.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }
    deinit { unlink(path) }
}

struct SystemCallFailed: Error {}

/// itsd as a child process with its standard output and error in files.
final class ItsdRun {
    let pid: pid_t
    private let outputPath: String
    private let errorPath: String
    private var status: Int32?

    /// Runs itsd with `arguments`, through `launcher` (a program that execs the command line it is
    /// given, such as systemd-socket-activate) when one is named.
    init?(_ arguments: [String], launcher: [String] = []) {
        guard let binary = itsdExecutablePath() else { return nil }
        outputPath = "/tmp/itsd-test-\(getpid())-\(UInt32.random(in: 0 ... .max)).out"
        errorPath = outputPath + ".err"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        // Nothing else of the test process: an itsd left behind by a crashed test must not hold the
        // test runner's pipes open, or the runner waits for it instead of reporting the crash.
        let closing = its_spawn_close_from(&actions, 3)
        assert(closing == 0, "posix_spawn_file_actions_addclosefrom_np: \(closing)")
        var pid: pid_t = 0
        let argv = (launcher + [binary] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // The test's thread may have signals blocked, and a child inherits the mask: a launcher
        // that does not unblock SIGTERM itself (systemd-socket-activate) would then never stop.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        guard posix_spawn(&pid, launcher.first ?? binary, &actions, &attributes, argv, environ) == 0 else { return nil }
        self.pid = pid
    }

    deinit {
        if status == nil { _ = stop() }
        unlink(outputPath)
        unlink(errorPath)
    }

    var output: String { readTextFile(outputPath) }
    var errors: String { readTextFile(errorPath) }

    /// Waits up to 30 s (a busy machine starts a debug itsd slowly) for `text` on standard output.
    func waitForOutput(_ text: String) -> Bool {
        for _ in 0 ..< 1500 {
            if output.contains(text) { return true }
            usleep(20_000)
        }
        return false
    }

    /// The exit code (128 + the signal if one ended it).
    func wait() -> Int32 {
        if let status { return status }
        var raw: Int32 = 0
        waitpid(pid, &raw, 0)
        let code = raw & 0x7F == 0 ? (raw >> 8) & 0xFF : 128 + (raw & 0x7F)
        status = code
        return code
    }

    /// SIGTERM, then the exit code.
    func stop() -> Int32 {
        if status == nil { kill(pid, SIGTERM) }
        return wait()
    }
}

extension ItsdCommandTests {
    /// The commented sample in deploy/ is a valid configuration.
    @Test func sampleConfigurationIsValid() throws {
        let sample = String(#filePath.split(separator: "/", omittingEmptySubsequences: false).dropLast(3).joined(separator: "/")) + "/deploy/itsd.toml"
        #expect(access(sample, R_OK) == 0, "\(sample)")
        let path = temporarySocketPath("sample")
        let run = try #require(ItsdRun(["--config", sample, "--socket", path, "--lanes", "1"]))
        #expect(run.waitForOutput("itsd listening on \(path) (1 lane)"), "stderr: \(run.errors)")
        #expect(run.stop() == 0)
    }
}

extension ItsdCommandTests {
    /// --tcp needs a secret file that only its owner can read.
    @Test func tcpListenerNeedsAPrivateSecret() throws {
        let path = temporarySocketPath("tcpflag")
        let secret = try TemporaryFile("s3cret\n")
        let run = try #require(ItsdRun(["--socket", path, "--tcp", "127.0.0.1:0", "--tcp-secret-file", secret.path]))
        #expect(run.waitForOutput("itsd listening on TCP 127.0.0.1:"), "stderr: \(run.errors)")
        #expect(run.stop() == 0)

        let noSecret = try #require(ItsdRun(["--socket", path, "--tcp", "127.0.0.1:0"]))
        #expect(noSecret.wait() == 78)
        #expect(noSecret.errors.contains("needs a secret"))
        chmod(secret.path, 0o644)
        let open = try #require(ItsdRun(["--socket", path, "--tcp", "127.0.0.1:0", "--tcp-secret-file", secret.path]))
        #expect(open.wait() == 78)
        #expect(open.errors.contains("must not be open to group or others"))
        let badAddress = try #require(ItsdRun(["--socket", path, "--tcp", "localhost:7300", "--tcp-secret-file", secret.path]))
        #expect(badAddress.wait() == 64)
    }
}

extension ItsdCommandTests {
    /// systemd socket activation: itsd serves the listening socket passed as LISTEN_FDS and leaves
    /// its file to the service manager.
    @Test func socketActivation() throws {
        let launcher = "/usr/bin/systemd-socket-activate"
        try #require(access(launcher, X_OK) == 0, "systemd-socket-activate (Debian's systemd package; make test installs it)")
        let path = temporarySocketPath("activated")
        unlink(path)
        let run = try #require(ItsdRun(["--lanes", "1"], launcher: [launcher, "-l", path]))
        // The file appears at bind(), a moment before listen(): retry the connection meanwhile.
        var connected: TestClient?
        for _ in 0 ..< 500 where connected == nil {
            connected = TestClient(path: path)
            if connected == nil { usleep(20_000) }
        }
        let client = try #require(connected)
        let vm = ClientVM(client: client)
        let hello = vm.call(.hello(Hello(capabilities: .defined, limits: .defaults)))
        #expect(hello.map { if case .helloReply = $0.message { true } else { false } } == true)
        #expect(vm.call(.ping(nonce: 42))?.message == .pingReply(nonce: 42))
        #expect(run.waitForOutput("itsd listening on \(path) (1 lane, socket activation)"), "stdout: \(run.output)")
        #expect(run.stop() == 0)
        #expect(access(path, F_OK) == 0, "the socket file belongs to the service manager")
        unlink(path)
    }
}

extension ItsdCommandTests {
    /// `--socket-mode 0660 --socket-group GID` makes the socket file group-accessible to that
    /// group (the default, 0600 with the server's group, is checked in ConnectionTests).
    @Test func socketModeAndGroup() throws {
        let path = temporarySocketPath("group")
        let group: gid_t = 4242
        let run = try #require(ItsdRun(["--socket", path, "--socket-mode", "0660", "--socket-group", "\(group)", "--lanes", "1"]))
        #expect(run.waitForOutput("itsd listening on \(path)"))
        var status = stat()
        #expect(stat(path, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o660, "mode \(String(status.st_mode & 0o777, radix: 8))")
        #expect(status.st_gid == group)
        #expect(run.stop() == 0)
    }
}

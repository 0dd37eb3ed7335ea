import CITSSupport
import Glibc

/// The directory of the build products (itsd, itsctl sit next to the test bundle).
func productDirectory() -> String {
    var executable = [CChar](repeating: 0, count: 4096)
    let length = readlink("/proc/self/exe", &executable, executable.count - 1)
    precondition(length > 0, "readlink /proc/self/exe")
    let path = String(decoding: executable[0 ..< length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var parts = path.split(separator: "/", omittingEmptySubsequences: false)
    // The test runner is .build/debug/itsdPackageTests.xctest (a file) on Linux.
    parts.removeLast()
    return parts.joined(separator: "/")
}

/// A unique path under /tmp for this test process.
func temporaryPath(_ name: String) -> String {
    "/tmp/itsctl-test-\(getpid())-\(UInt32.random(in: 0 ... .max))-\(name)"
}

/// Reads a whole file as text ("" when it cannot be read).
func readText(_ path: String) -> String {
    guard let file = fopen(path, "r") else { return "" }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while case let count = fread(&buffer, 1, buffer.count, file), count > 0 { bytes += buffer[0 ..< count] }
    return String(decoding: bytes, as: UTF8.self)
}

/// A program run as a child with its standard output and error in files, standard input from
/// /dev/null, and the environment given.
final class ChildProcess {
    let pid: pid_t
    let outputPath: String
    let errorPath: String
    private var status: Int32?

    init?(_ executable: String, _ arguments: [String], environment: [String: String] = [:], stdinPath: String = "/dev/null") {
        outputPath = temporaryPath("out")
        errorPath = outputPath + ".err"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdinPath, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        // Nothing else of the test process: a child left behind by a crashed test must not hold the
        // test runner's pipes open, or the runner waits for it instead of reporting the crash.
        let closing = its_spawn_close_from(&actions, 3)
        assert(closing == 0, "posix_spawn_file_actions_addclosefrom_np: \(closing)")
        var merged: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") { merged[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
            entry += 1
        }
        for (key, value) in environment { merged[key] = value }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        guard posix_spawn(&pid, executable, &actions, nil, argv, envp) == 0 else { return nil }
        self.pid = pid
    }

    deinit {
        if status == nil { _ = stop() }
        unlink(outputPath)
        unlink(errorPath)
    }

    var output: String { readText(outputPath) }
    var errors: String { readText(errorPath) }

    /// Waits up to `seconds` for the exit code (128 + the signal if one ended it); nil on a timeout.
    func wait(seconds: Double = 30) -> Int32? {
        if let status { return status }
        var raw: Int32 = 0
        for _ in 0 ... Int(seconds * 100) {
            if waitpid(pid, &raw, WNOHANG) == pid {
                let code = raw & 0x7F == 0 ? (raw >> 8) & 0xFF : 128 + (raw & 0x7F)
                status = code
                return code
            }
            usleep(10_000)
        }
        return nil
    }

    /// SIGTERM, then the exit code (SIGKILL after 10 s).
    func stop() -> Int32 {
        if status != nil { return status! }
        kill(pid, SIGTERM)
        if let code = wait(seconds: 10) { return code }
        kill(pid, SIGKILL)
        return wait(seconds: 10) ?? -1
    }
}

/// itsd from the build products on a temporary socket, started for one test.
final class LiveServer {
    let socketPath: String
    let process: ChildProcess

    init?(lanes: Int = 2, extra: [String] = []) {
        socketPath = temporaryPath("itsd.sock")
        guard let process = ChildProcess(productDirectory() + "/itsd",
                                         ["--socket", socketPath, "--lanes", String(lanes), "--grace-period", "30"] + extra)
        else { return nil }
        self.process = process
        for _ in 0 ..< 500 {
            if access(socketPath, F_OK) == 0 { return }
            if process.wait(seconds: 0.01) != nil { return nil }
        }
        return nil
    }

    deinit { _ = process.stop() }
}

/// The result of one itsctl run.
struct CommandResult {
    var status: Int32
    var output: String
    var errors: String
}

/// Runs itsctl from the build products with `arguments` and waits for it (at most `timeout` s).
func itsctl(_ arguments: [String], environment: [String: String] = ["NO_COLOR": "1"], timeout: Double = 60) -> CommandResult {
    guard let child = ChildProcess(productDirectory() + "/itsctl", arguments, environment: environment) else {
        return CommandResult(status: -1, output: "", errors: "cannot spawn itsctl")
    }
    let status = child.wait(seconds: timeout) ?? { _ = child.stop(); return -2 }()
    return CommandResult(status: status, output: child.output, errors: child.errors)
}

/// Finds a program on PATH (or at an absolute path) that can be executed.
func findExecutable(_ name: String) -> String? {
    if name.hasPrefix("/") { return access(name, X_OK) == 0 ? name : nil }
    let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":") where access("\(directory)/\(name)", X_OK) == 0 {
        return "\(directory)/\(name)"
    }
    return nil
}

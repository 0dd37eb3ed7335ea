import Glibc

/// A program the demo starts (qemu-storage-daemon, itsd) with its output in a log file. The demo
/// stops it with SIGTERM, or kills it with SIGKILL to play a crash.
final class ChildProcess {
    let name: String
    let logPath: String
    private(set) var pid: pid_t = 0
    private var exitStatus: Int32?

    /// Starts `arguments[0]` (looked up in PATH when it has no slash) with standard output and
    /// error appended to `logPath`.
    init(_ arguments: [String], logPath: String) throws(DemoError) {
        name = arguments[0]
        self.logPath = logPath
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // The child starts with no signal blocked and SIGTERM, SIGINT and SIGPIPE at their defaults,
        // whatever this process (or whoever started it) blocked or ignored: SIGTERM must stop it.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let result = posix_spawnp(&child, name, &actions, &attributes, argv, environ)
        guard result == 0 else {
            throw DemoError("cannot start \(name): \(String(cString: strerror(result)))")
        }
        pid = child
    }

    deinit { kill() }

    /// Whether the process has not exited yet (reaping it if it has).
    var isRunning: Bool {
        guard exitStatus == nil else { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            exitStatus = status
            return false
        }
        return true
    }

    /// The log so far, for error messages.
    var log: String {
        guard let file = fopen(logPath, "r") else { return "" }
        defer { fclose(file) }
        var text = ""
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            guard count > 0 else { break }
            text += String(decoding: chunk[0 ..< count], as: UTF8.self)
        }
        return text
    }

    /// Waits up to `timeoutMilliseconds` for `ready()`; fails when the process exits first.
    func waitUntil(_ what: String, timeoutMilliseconds: Int, _ ready: () -> Bool) throws(DemoError) {
        let deadline = monotonicNanoseconds() + UInt64(timeoutMilliseconds) * 1_000_000
        while !ready() {
            guard isRunning else { throw DemoError("\(name) exited before \(what); its log:\n\(log)") }
            guard monotonicNanoseconds() < deadline else {
                throw DemoError("\(name) did not reach \(what) within \(timeoutMilliseconds) ms; its log:\n\(log)")
            }
            sleepMilliseconds(5)
        }
    }

    /// SIGTERM, then waits up to 10 s; returns the exit code (128 + n for a signal n).
    @discardableResult
    func terminate() throws(DemoError) -> Int32 {
        if exitStatus == nil {
            Glibc.kill(pid, SIGTERM)
            let deadline = monotonicNanoseconds() + 10_000_000_000
            while isRunning {
                guard monotonicNanoseconds() < deadline else {
                    kill()
                    throw DemoError("\(name) did not exit within 10 s of SIGTERM")
                }
                sleepMilliseconds(5)
            }
        }
        return Self.code(exitStatus ?? 0)
    }

    /// SIGKILL and reap: the process dies without cleaning up, as in a crash.
    func kill() {
        guard pid > 0, exitStatus == nil else { return }
        Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        exitStatus = status
    }

    private static func code(_ status: Int32) -> Int32 {
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }
}

/// A private temporary directory for sockets, pid files, logs and the disk image, removed with its
/// files when the demo ends.
final class ScratchDirectory {
    let path: String

    init() throws(DemoError) {
        var template = Array("/tmp/its-vhost-demo.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw .system("mkdtemp") }
        path = String(cString: made)
    }

    deinit {
        if let directory = opendir(path) {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { unlink(path + "/" + name) }
            }
            closedir(directory)
        }
        rmdir(path)
    }

    func file(_ name: String) -> String { path + "/" + name }
}

/// Whether `path` exists.
func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

// A program a tool starts for itself (itsd, qemu-storage-daemon), waits for and stops.
import CITSSupport
import Glibc

/// A child process with its standard output and error in a log file. The tool waits until it is
/// ready, stops it with SIGTERM, or kills it with SIGKILL (to play a crash); the deinit kills and
/// reaps one still running, so no child outlives its owner.
/// - Context: one thread owns it (the reaping state is not shared).
public final class ChildProcess {
    /// The program as started (`arguments[0]`).
    public let name: String
    public let logPath: String
    public private(set) var pid: pid_t = 0
    private var exitStatus: Int32?

    /// Starts `arguments[0]` (looked up in PATH when it has no slash) with standard output and
    /// error appended to `logPath`.
    public init(_ arguments: [String], logPath: String) throws(ToolError) {
        name = arguments[0]
        self.logPath = logPath
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // The child gets none of this process's other descriptors (sockets, eventfds, pipes).
        let closing = its_spawn_close_from(&actions, 3)
        assert(closing == 0, "posix_spawn_file_actions_addclosefrom_np: \(closing)")
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
            throw ToolError("cannot start \(name): \(String(cString: strerror(result)))")
        }
        pid = child
    }

    deinit { kill() }

    /// Whether the process has not exited yet (reaping it if it has).
    public var isRunning: Bool {
        guard exitStatus == nil else { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            exitStatus = status
            return false
        }
        return true
    }

    /// The log so far, for error messages.
    public var log: String {
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

    /// Waits up to `timeoutMilliseconds` for `ready()`, asking every 5 ms; fails when the process
    /// exits first or the time runs out, with `what` and the log in the message.
    public func waitUntil(_ what: String, timeoutMilliseconds: Int, _ ready: () -> Bool) throws(ToolError) {
        let deadline = monotonicNanoseconds() + UInt64(timeoutMilliseconds) * 1_000_000
        while !ready() {
            guard isRunning else { throw ToolError("\(name) exited before \(what); its log:\n\(log)") }
            guard monotonicNanoseconds() < deadline else {
                throw ToolError("\(name) did not reach \(what) within \(timeoutMilliseconds) ms; its log:\n\(log)")
            }
            sleepMilliseconds(5)
        }
    }

    /// SIGTERM, then waits up to 10 s (SIGKILL after that, and an error); returns the exit code
    /// (128 + n for a signal n).
    @discardableResult
    public func terminate() throws(ToolError) -> Int32 {
        if exitStatus == nil {
            Glibc.kill(pid, SIGTERM)
            let deadline = monotonicNanoseconds() + 10_000_000_000
            while isRunning {
                guard monotonicNanoseconds() < deadline else {
                    kill()
                    throw ToolError("\(name) did not exit within 10 s of SIGTERM")
                }
                sleepMilliseconds(5)
            }
        }
        return Self.code(exitStatus ?? 0)
    }

    /// SIGKILL and reap: the process dies without cleaning up, as in a crash.
    public func kill() {
        guard pid > 0, exitStatus == nil else { return }
        Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        exitStatus = status
    }

    /// The shell's exit code of a wait status: the exit code, or 128 + n for a signal n.
    private static func code(_ status: Int32) -> Int32 {
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }
}

// The itsd that its-load starts for itself: the binary next to its own, on a socket in a fresh
// temporary directory, stopped with SIGTERM when the run ends.
import CITSLoad
import Glibc

final class ServerProcess {
    let pid: Int32
    let socketPath: String
    private let directory: String

    init(lanes: Int?) throws {
        var template = Array("/tmp/its-load.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw LoadError.system("mkdtemp") }
        directory = String(cString: made)
        socketPath = directory + "/itsd.sock"
        let binary = executableDirectory() + "/itsd"
        var arguments = [binary, "--socket", socketPath, "--log-level", "warning"]
        if let lanes { arguments += ["--lanes", String(lanes)] }
        let log = open(directory + "/itsd.log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        pid = its_load_spawn(binary, &argv, log)
        close(log)
        guard pid > 0 else { throw LoadError.system("spawn \(binary)") }
        // Up to 10 s for the socket to accept connections.
        for _ in 0 ..< 1000 {
            if access(socketPath, F_OK) == 0, (try? WireConnection(path: socketPath)) != nil { return }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                throw LoadError("itsd exited at start: \(ProcessStats.readFile(directory + "/itsd.log") ?? "")")
            }
            usleep(10_000)
        }
        stop()
        throw LoadError("itsd did not listen on \(socketPath) within 10 s")
    }

    /// SIGTERM, then waits for the exit; removes the temporary directory.
    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        unlink(directory + "/itsd.log")
        unlink(socketPath)
        rmdir(directory)
    }
}

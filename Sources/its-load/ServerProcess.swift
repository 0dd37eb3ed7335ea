// The itsd that its-load starts for itself: the binary next to its own, on a socket in a fresh
// temporary directory, stopped with SIGTERM when the run ends.
import Glibc
import ToolSupport

final class ServerProcess {
    let socketPath: String
    private let directory: String
    private let process: ChildProcess

    init(lanes: Int?) throws {
        var template = Array("/tmp/its-load.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw ToolError.system("mkdtemp") }
        directory = String(cString: made)
        socketPath = directory + "/itsd.sock"
        var arguments = [try besideExecutable("itsd"), "--socket", socketPath, "--log-level", "warning"]
        if let lanes { arguments += ["--lanes", String(lanes)] }
        process = try ChildProcess(arguments, logPath: directory + "/itsd.log")
        do {
            // Up to 10 s for the socket to accept connections.
            try process.waitUntil("listening on \(socketPath)", timeoutMilliseconds: 10_000) { [socketPath] in
                access(socketPath, F_OK) == 0 && (try? WireConnection(path: socketPath)) != nil
            }
        } catch {
            stop()
            throw error
        }
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 10 s); removes the temporary directory.
    func stop() {
        _ = try? process.terminate()
        unlink(directory + "/itsd.log")
        unlink(socketPath)
        rmdir(directory)
    }
}

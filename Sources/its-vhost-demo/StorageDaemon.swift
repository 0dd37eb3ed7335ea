import Glibc
import ToolSupport

/// qemu-storage-daemon exporting one block node as a vhost-user-blk device on a Unix socket: the
/// real back-end the demo drives. Ready once its pid file exists (the daemon writes it after the
/// exports are up); stopped by SIGTERM, or killed to play a crash.
final class StorageDaemon {
    enum Backend: String, CaseIterable {
        /// A sparse 64 MiB file: writes persist, across restarts too, and reads return them.
        case file
        /// null-co: writes vanish, reads return zeros.
        case null
    }

    static let diskBytes: UInt64 = 64 << 20

    let backend: Backend
    let socketPath: String
    private let executable: String
    private let scratch: ScratchDirectory
    private let pidPath: String
    private var process: ChildProcess?
    /// How many times the daemon was started.
    private(set) var starts = 0

    init(executable: String, backend: Backend, scratch: ScratchDirectory) throws(ToolError) {
        self.executable = executable
        self.backend = backend
        self.scratch = scratch
        socketPath = scratch.file("vhost-user-blk.sock")
        pidPath = scratch.file("qemu-storage-daemon.pid")
        if backend == .file {
            let image = scratch.file("disk.img")
            let fd = open(image, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw .system("create \(image)") }
            defer { close(fd) }
            guard ftruncate(fd, off_t(Self.diskBytes)) == 0 else { throw .system("ftruncate \(image)") }
        }
    }

    var arguments: [String] {
        let node = backend == .file
            ? "driver=file,node-name=disk0,filename=\(scratch.file("disk.img"))"
            : "driver=null-co,node-name=disk0,size=\(Self.diskBytes),read-zeroes=on"
        return [executable, "--blockdev", node,
                "--export", "type=vhost-user-blk,id=vub0,node-name=disk0,addr.type=unix,addr.path=\(socketPath),writable=on",
                "--pidfile", pidPath]
    }

    /// The running daemon's process id, 0 when none runs.
    var pid: Int32 { process?.pid ?? 0 }

    /// Starts the daemon and waits (up to 10 s) for its pid file.
    func start() throws(ToolError) {
        precondition(process?.isRunning != true, "the daemon runs already")
        unlink(pidPath)
        let child = try ChildProcess(arguments, logPath: scratch.file("qemu-storage-daemon.log"))
        process = child
        starts += 1
        try child.waitUntil("its pid file \(pidPath)", timeoutMilliseconds: 10_000) { fileExists(pidPath) }
    }

    /// SIGTERM; the daemon removes its socket and pid file and must exit 0.
    func stop() throws(ToolError) {
        guard let process else { return }
        self.process = nil
        let code = try process.terminate()
        guard code == 0 else { throw ToolError("qemu-storage-daemon exited with \(code) after SIGTERM; its log:\n\(process.log)") }
    }

    /// SIGKILL: the back-end vanishes mid-session, leaving its socket file behind.
    func crash() {
        process?.kill()
        process = nil
    }
}

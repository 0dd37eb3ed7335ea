import ArgumentParser
import Glibc
import ITSServer

/// itsd: the GICv3 ITS and LPI server. Exit codes: 0 after a clean shutdown (SIGINT or SIGTERM),
/// 1 when it cannot start (the socket cannot be bound, bad options).
@main
struct Itsd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "itsd",
        abstract: "Emulates the Arm GICv3 Interrupt Translation Service and LPIs for virtual machines.",
        discussion: "Listens on a Unix socket for VMMs, device back-ends and itsctl (Protocol/PROTOCOL.md)."
    )

    @Option(name: .long, help: "The Unix socket to listen on (default: $ITSD_SOCKET, or /run/itsd/itsd.sock as root, else /tmp/itsd-UID.sock).")
    var socket: String?

    @Option(name: .long, help: "vCPU worker lanes (threads); default one per core.")
    var lanes: Int?

    @Option(name: .long, help: "Seconds a VM whose clients all disconnected is kept for re-attachment.")
    var gracePeriod: Double = 60

    @Option(name: .long, help: "The socket file's mode, in octal (0600, or 0660 with --socket-group).")
    var socketMode: String = "0600"

    @Option(name: .long, help: "The socket file's group (a gid), for --socket-mode 0660; members are admitted.")
    var socketGroup: UInt32?

    @Option(name: .customLong("max-vms"), help: "VMs at most; CREATE_VM beyond it gets LIMIT_EXCEEDED.")
    var maxVMs: Int = 256

    static var defaultSocketPath: String {
        if let path = getenv("ITSD_SOCKET").map({ String(cString: $0) }), !path.isEmpty { return path }
        return getuid() == 0 ? "/run/itsd/itsd.sock" : "/tmp/itsd-\(getuid()).sock"
    }

    /// Writes straight to a file descriptor, unbuffered, so that a supervisor sees the line at once.
    static func write(_ text: String, to fd: Int32) {
        var text = text
        text.withUTF8 { bytes in _ = Glibc.write(fd, bytes.baseAddress, bytes.count) }
    }

    func validate() throws {
        guard lanes.map({ (1 ... 256).contains($0) }) ?? true else { throw ValidationError("--lanes must be 1 ... 256") }
        guard let mode = UInt32(socketMode, radix: 8), mode <= 0o777 else { throw ValidationError("--socket-mode must be octal, like 0600") }
        guard gracePeriod >= 0 else { throw ValidationError("--grace-period must not be negative") }
        guard maxVMs > 0 else { throw ValidationError("--max-vms must be positive") }
        _ = mode
    }

    func run() throws {
        let path = socket ?? Self.defaultSocketPath
        if path == "/run/itsd/itsd.sock" { mkdir("/run/itsd", 0o755) }
        var configuration = Server.Configuration(socketPath: path, lanes: lanes ?? max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        configuration.gracePeriod = UInt64(gracePeriod * 1000)
        configuration.maximumVMs = maxVMs
        configuration.listener.mode = mode_t(UInt32(socketMode, radix: 8)!)
        if let group = socketGroup {
            configuration.listener.group = group
            configuration.listener.allowedGIDs.insert(group)
        }
        let server: Server
        do {
            server = try Server(configuration: configuration)
        } catch {
            Self.write("itsd: cannot listen on \(path): \(error)\n", to: 2)
            throw ExitCode(1)
        }
        // A parent may have started us with these blocked (posix_spawn passes its mask on).
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGINT)
        sigaddset(&stopSignals, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &stopSignals, nil)
        var signals: [SignalHandle] = []
        for signal in [SIGINT, SIGTERM] {
            signals.append(SignalHandle(loop: server.loop, signal: signal) { _ in
                signals.forEach { $0.close() }
                server.stop()
            })
        }
        Self.write("itsd listening on \(path) (\(configuration.lanes) lanes)\n", to: 1)
        server.run()
        Self.write("itsd stopped\n", to: 1)
    }
}

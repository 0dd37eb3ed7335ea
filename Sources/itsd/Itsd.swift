import ArgumentParser
import Glibc
import ITSServer
import Logging

/// itsd: the GICv3 ITS and LPI server. Exit codes (docs/OPERATIONS.md): 0 after a clean shutdown
/// (SIGINT or SIGTERM; replies owed are sent first, within --shutdown-timeout), 1 when it cannot
/// start (the socket cannot be bound), 64 for bad options,
/// 78 for a configuration file that cannot be read or is invalid.
@main
struct Itsd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "itsd",
        abstract: "Emulates the Arm GICv3 Interrupt Translation Service and LPIs for virtual machines.",
        discussion: """
        Listens on a Unix socket for VMMs, device back-ends and itsctl (Protocol/PROTOCOL.md). Settings come \
        from --config (TOML; deploy/itsd.toml is a commented sample), and a flag wins over the file.
        Exit codes: 0 clean shutdown, 1 cannot start, 64 bad options, 78 bad configuration file.
        """
    )

    @Option(name: .long, help: "A TOML configuration file (keys as in deploy/itsd.toml).")
    var config: String?

    @Option(name: .long, help: "The Unix socket to listen on (default: $ITSD_SOCKET, or /run/itsd/itsd.sock as root, else /tmp/itsd-UID.sock).")
    var socket: String?

    @Option(name: .long, help: "vCPU worker lanes (threads); default one per core.")
    var lanes: Int?

    @Option(name: .long, help: "Seconds a VM whose clients all disconnected is kept for re-attachment (default 60).")
    var gracePeriod: Double?

    @Option(name: .long, help: "The socket file's mode, in octal (default 0600, or 0660 with --socket-group).")
    var socketMode: String?

    @Option(name: .long, help: "The socket file's group (a gid), for --socket-mode 0660; members are admitted.")
    var socketGroup: UInt32?

    @Option(name: .customLong("operator-uid"),
            help: "A uid whose Unix-socket peers may ATTACH_VM any VM with the all-zero token (repeatable; default: 0 and itsd's own uid).")
    var operatorUIDs: [UInt32] = []

    @Option(name: .long, help: "Seconds SIGTERM or SIGINT waits for replies already owed to be sent before closing connections (default 5).")
    var shutdownTimeout: Double?

    @Option(name: .customLong("max-vms"), help: "VMs at most; CREATE_VM beyond it gets LIMIT_EXCEEDED (default 256).")
    var maxVMs: Int?

    @Option(name: .long, help: "Also listen on TCP at HOST:PORT (numeric; [::1]:PORT for IPv6); needs --tcp-secret-file.")
    var tcp: String?

    @Option(name: .long, help: "The TCP listener's shared secret: a file only its owner may read; clients send it with AUTHENTICATE.")
    var tcpSecretFile: String?

    @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical (default info); logs go to standard error.")
    var logLevel: String?

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
        guard socketMode.map({ Self.parseMode($0) != nil }) ?? true else { throw ValidationError("--socket-mode must be octal, like 0600") }
        guard (gracePeriod ?? 0) >= 0 else { throw ValidationError("--grace-period must not be negative") }
        guard (shutdownTimeout ?? 0) >= 0 else { throw ValidationError("--shutdown-timeout must not be negative") }
        guard (maxVMs ?? 1) > 0 else { throw ValidationError("--max-vms must be positive") }
        guard tcp.map({ TCPListener.Endpoint($0) != nil }) ?? true else {
            throw ValidationError("--tcp must be HOST:PORT with a numeric address, like 127.0.0.1:7300 or [::1]:7300")
        }
        guard logLevel.map({ Logger.Level(rawValue: $0) != nil }) ?? true else {
            throw ValidationError("--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    /// The listening socket systemd passed (sd_listen_fds(3): LISTEN_PID is this process and
    /// LISTEN_FDS counts descriptors from 3), or nil. The variables are removed so that nothing
    /// this process starts takes them for its own.
    static func socketActivation() -> Int32? {
        defer {
            unsetenv("LISTEN_PID")
            unsetenv("LISTEN_FDS")
            unsetenv("LISTEN_FDNAMES")
        }
        guard let pid = getenv("LISTEN_PID").flatMap({ pid_t(String(cString: $0)) }), pid == getpid(),
              let count = getenv("LISTEN_FDS").flatMap({ Int(String(cString: $0)) }), count >= 1
        else { return nil }
        if count > 1 { write("itsd: \(count) sockets passed; serving the first, closing the rest\n", to: 2) }
        for extra in 1 ..< count { close(Int32(3 + extra)) }
        return 3
    }

    static func parseMode(_ text: String) -> mode_t? {
        guard let mode = UInt32(text, radix: 8), mode <= 0o777 else { return nil }
        return mode_t(mode)
    }

    func run() throws {
        var file: ConfigFile?
        if let config {
            do {
                file = try ConfigFile(path: config)
            } catch {
                Self.write("itsd: configuration: \(error)\n", to: 2)
                throw ExitCode(78)
            }
            if let mode = file?.socketMode, Self.parseMode(mode) == nil {
                Self.write("itsd: configuration: \(config): 'socket_mode' must be octal, like \"0600\"\n", to: 2)
                throw ExitCode(78)
            }
        }
        let level = logLevel.flatMap(Logger.Level.init(rawValue:)) ?? file?.logLevel ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let inherited = Self.socketActivation()
        let path = socket ?? file?.socket ?? Self.defaultSocketPath
        if inherited == nil, path == "/run/itsd/itsd.sock" { mkdir("/run/itsd", 0o755) }
        let laneCount = lanes ?? file?.lanes ?? max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        var configuration = Server.Configuration(socketPath: path, lanes: laneCount)
        configuration.gracePeriod = UInt64((gracePeriod ?? file?.gracePeriod ?? 60) * 1000)
        configuration.maximumVMs = maxVMs ?? file?.maxVMs ?? 256
        configuration.shutdownDeadline = UInt64((shutdownTimeout ?? file?.shutdownTimeout ?? 5) * 1000)
        if let bytes = file?.maxSnapshotBytes { configuration.maximumSnapshotBytes = bytes }
        if let burst = file?.guestErrorLogBurst { configuration.guestErrorLogBurst = burst }
        configuration.logger = Logger(label: "itsd")
        configuration.inheritedListener = inherited
        configuration.listener.mode = Self.parseMode(socketMode ?? file?.socketMode ?? "0600")!
        if let uids = file?.allowedUIDs { configuration.listener.allowedUIDs.formUnion(uids) }
        if !operatorUIDs.isEmpty {
            configuration.operatorUIDs = Set(operatorUIDs)
        } else if let uids = file?.operatorUIDs {
            configuration.operatorUIDs = Set(uids)
        }
        if let gids = file?.allowedGIDs { configuration.listener.allowedGIDs.formUnion(gids) }
        if let group = socketGroup ?? file?.socketGroup {
            configuration.listener.group = group
            configuration.listener.allowedGIDs.insert(group)
        }
        if let listen = tcp ?? file?.tcpListen {
            guard let endpoint = TCPListener.Endpoint(listen) else {
                Self.write("itsd: configuration: 'tcp_listen' must be HOST:PORT with a numeric address\n", to: 2)
                throw ExitCode(78)
            }
            guard let secretPath = tcpSecretFile ?? file?.tcpSecretFile else {
                Self.write("itsd: a TCP listener needs a secret: --tcp-secret-file or 'tcp_secret_file'\n", to: 2)
                throw ExitCode(78)
            }
            do {
                configuration.tcp = (endpoint, try ConfigFile.secret(at: secretPath))
            } catch {
                Self.write("itsd: configuration: \(error)\n", to: 2)
                throw ExitCode(78)
            }
            if !endpoint.isLoopback {
                configuration.logger.warning("TCP listener on \(endpoint), not loopback: the secret crosses the network in clear; tunnel it")
            }
        }
        let server: Server
        do {
            server = try Server(configuration: configuration)
        } catch {
            Self.write("itsd: cannot listen on \(inherited.map { "the socket passed by the service manager (fd \($0))" } ?? path): \(error)\n", to: 2)
            throw ExitCode(1)
        }
        // A parent may have started us with these blocked (posix_spawn passes its mask on).
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGINT)
        sigaddset(&stopSignals, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &stopSignals, nil)
        // The first signal begins a graceful shutdown; a second one stops at once.
        var signals: [SignalHandle] = []
        for signal in [SIGINT, SIGTERM] {
            signals.append(SignalHandle(loop: server.loop, signal: signal) { number in
                if server.isShuttingDown {
                    configuration.logger.info("signal \(number) again: stopping now")
                } else {
                    configuration.logger.info("signal \(number): stopping (sending the replies owed, for up to \(configuration.shutdownDeadline) ms)")
                }
                server.shutdown()
            })
        }
        let served = server.listeningPath ?? path
        let activated = inherited == nil ? "" : ", socket activation"
        Self.write("itsd listening on \(served) (\(configuration.lanes) lane\(configuration.lanes == 1 ? "" : "s")\(activated))\n", to: 1)
        if let tcpListener = server.tcpListener {
            var bound = tcpListener.endpoint
            bound.port = tcpListener.port
            Self.write("itsd listening on TCP \(bound)\n", to: 1)
        }
        server.run()
        signals.forEach { $0.close() }
        Self.write("itsd stopped\n", to: 1)
    }
}

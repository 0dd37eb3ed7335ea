import CITSSupport
import CLibUV
import Glibc
import ITSWire

/// The server's Unix socket: created with a file mode (0600 by default) and optionally a group,
/// accepting with accept4 and admitting only peers whose SO_PEERCRED uid or gid is allowed. A
/// refused peer gets one error frame, PERMISSION_DENIED with opcode 0 and message id 0
/// (Protocol/PROTOCOL.md, 1), and the connection is closed.
///
/// When the process runs out of descriptors (or the kernel of memory for sockets) the listener
/// stops watching the socket for ``acceptRetryDelay`` milliseconds: the socket stays readable
/// while connections wait in the backlog, so watching on would spin the loop until a descriptor
/// is freed. The waiting peers are accepted once there is room.
/// - Context: the loop thread.
public final class UnixListener {
    public struct Options: Sendable {
        /// The socket file's mode: 0o600, or 0o660 with a group.
        public var mode: mode_t = 0o600
        /// The socket file's group, for mode 0o660.
        public var group: gid_t?
        /// Peers admitted by uid (default: the server's own uid and root).
        public var allowedUIDs: Set<uid_t> = [getuid(), 0]
        /// Peers admitted by gid (default: none beyond the uids).
        public var allowedGIDs: Set<gid_t> = []
        public var backlog: Int32 = 128

        public init() {}
    }

    public let path: String
    public let options: Options
    public let fd: Int32
    private var poll: PollHandle?
    private var retryTimer: TimerHandle?
    private let onAccept: (Int32, PeerCredentials) -> Void
    /// Peers refused for their credentials.
    public private(set) var refused: UInt64 = 0
    /// How long accepting stops when accept4 fails for want of descriptors or memory, in milliseconds.
    public static let acceptRetryDelay: UInt64 = 100
    private let ownsPath: Bool

    /// Binds and listens at `path`. A stale socket file nobody listens on is replaced; a live one is
    /// an error (EADDRINUSE).
    public init(path: String, options: Options = Options(), loop: EventLoop,
                onAccept: @escaping (Int32, PeerCredentials) -> Void) throws(SystemError)
    {
        self.path = path
        self.options = options
        self.onAccept = onAccept
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else { throw SystemError("bind \(path): path longer than \(capacity - 1) bytes", errno: ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: path.utf8)
        }
        try Self.removeStaleSocket(path, address: address)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError.last("socket") }
        self.fd = fd
        // Create the socket file with no access for anyone, then open it to exactly `mode`.
        let previousMask = umask(0o777)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(previousMask)
        guard bound == 0 else {
            let error = SystemError.last("bind \(path)")
            Glibc.close(fd)
            throw error
        }
        ownsPath = true
        if let group = options.group, chown(path, uid_t.max, group) != 0 {
            let error = SystemError.last("chown \(path)")
            Glibc.close(fd)
            unlink(path)
            throw error
        }
        guard chmod(path, options.mode) == 0, listen(fd, options.backlog) == 0 else {
            let error = SystemError.last("listen \(path)")
            Glibc.close(fd)
            unlink(path)
            throw error
        }
        do {
            poll = try PollHandle(loop: loop, fd: fd) { [unowned self] status, _ in
                if status >= 0 { self.acceptAll() }
            }
        } catch {
            Glibc.close(fd)
            unlink(path)
            throw SystemError(error.description, errno: -error.code)
        }
        poll?.watch(Int32(UV_READABLE.rawValue))
        retryTimer = TimerHandle(loop: loop) { [unowned self] in
            self.poll?.watch(Int32(UV_READABLE.rawValue))
            self.acceptAll()
        }
    }

    /// Adopts a listening Unix stream socket made by someone else — systemd's socket activation
    /// (LISTEN_FDS) — whose file belongs to them: it is not removed on close, and its mode and
    /// group are theirs. Peers are admitted by `options` as for a socket of our own.
    public init(adopting fd: Int32, options: Options = Options(), loop: EventLoop,
                onAccept: @escaping (Int32, PeerCredentials) -> Void) throws(SystemError)
    {
        var domain: Int32 = 0
        var type: Int32 = 0
        var listening: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &size) == 0, domain == AF_UNIX,
              getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) == 0, type == Int32(SOCK_STREAM.rawValue),
              getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) == 0, listening == 1
        else { throw SystemError("descriptor \(fd) is not a listening Unix stream socket", errno: ENOTSOCK) }
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        path = withUnsafeBytes(of: &address.sun_path) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        self.fd = fd
        self.options = options
        self.onAccept = onAccept
        ownsPath = false
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        do {
            poll = try PollHandle(loop: loop, fd: fd) { [unowned self] status, _ in
                if status >= 0 { self.acceptAll() }
            }
        } catch {
            throw SystemError(error.description, errno: -error.code)
        }
        poll?.watch(Int32(UV_READABLE.rawValue))
        retryTimer = TimerHandle(loop: loop) { [unowned self] in
            self.poll?.watch(Int32(UV_READABLE.rawValue))
            self.acceptAll()
        }
    }

    deinit { close() }

    /// Removes a socket file at `path` that nothing listens on.
    private static func removeStaleSocket(_ path: String, address: sockaddr_un) throws(SystemError) {
        var status = stat()
        guard lstat(path, &status) == 0 else { return }
        guard status.st_mode & S_IFMT == S_IFSOCK else { throw SystemError("bind \(path): not a socket", errno: EEXIST) }
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { throw SystemError.last("socket") }
        defer { Glibc.close(probe) }
        var address = address
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if connected == 0 { throw SystemError("bind \(path): another server is listening", errno: EADDRINUSE) }
        unlink(path)
    }

    /// Whether a peer with these credentials may connect.
    public func admits(_ peer: PeerCredentials) -> Bool {
        options.allowedUIDs.contains(peer.uid) || options.allowedGIDs.contains(peer.gid)
    }

    private func acceptAll() {
        while true {
            let client = its_accept4(fd)
            if client < 0 {
                let error = its_errno()
                if error == EINTR || error == ECONNABORTED { continue }
                if [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error) {
                    poll?.watch(0)
                    retryTimer?.start(timeout: Self.acceptRetryDelay)
                }
                return   // EAGAIN (the backlog is empty), or out of room: wait for readiness or the timer
            }
            var peer = PeerCredentials(pid: 0, uid: .max, gid: .max)
            guard its_peer_credentials(client, &peer.pid, &peer.uid, &peer.gid) == 0, admits(peer) else {
                refused += 1
                refuse(client, peer)
                continue
            }
            onAccept(client, peer)
        }
    }

    /// Tells a refused peer why, in the one frame a fresh socket's send buffer surely takes, and
    /// closes the connection.
    private func refuse(_ client: Int32, _ peer: PeerCredentials) {
        let text = peer.uid == .max ? "the peer's credentials cannot be read" : "uid \(peer.uid), gid \(peer.gid) is not admitted by this server"
        let frame = Frame(.error(Opcode(0), ErrorReport(.permissionDenied, text: text)), id: MessageID(0)).encoded
        _ = frame.withUnsafeBytes { Glibc.send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        Glibc.close(client)
    }

    /// Stops accepting, closes the socket and removes its file.
    public func close() {
        guard let poll else { return }
        retryTimer?.close()
        retryTimer = nil
        poll.close()
        self.poll = nil
        Glibc.close(fd)
        if ownsPath { unlink(path) }
    }
}

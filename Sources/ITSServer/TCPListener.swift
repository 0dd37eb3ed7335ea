import CITSSupport
import CLibUV
import Glibc

/// The optional TCP listener: loopback unless configured otherwise, numeric addresses only (no
/// name lookups at start-up), TCP_NODELAY on every connection. Its peers prove themselves with the
/// listener's shared secret (Protocol/PROTOCOL.md, 1 and 6.2a); the server checks that.
/// - Context: the loop thread.
public final class TCPListener {
    /// Where to listen: `HOST:PORT`, with an IPv6 host in brackets (`[::1]:7300`).
    public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
        public var host: String
        public var port: UInt16

        /// Parses `HOST:PORT`; the host must be a numeric IPv4 or IPv6 address.
        public init?(_ text: String) {
            let host: Substring
            let port: Substring
            if text.hasPrefix("[") {
                guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
                host = text[text.index(after: text.startIndex) ..< close]
                port = text[text.index(close, offsetBy: 2)...]
            } else {
                guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
                host = text[..<colon]
                port = text[text.index(after: colon)...]
            }
            guard let number = UInt16(port), Self.family(of: String(host)) != nil else { return nil }
            self.host = String(host)
            self.port = number
        }

        static func family(of host: String) -> Int32? {
            var v4 = in_addr()
            var v6 = in6_addr()
            if inet_pton(AF_INET, host, &v4) == 1 { return AF_INET }
            if inet_pton(AF_INET6, host, &v6) == 1 { return AF_INET6 }
            return nil
        }

        public var isLoopback: Bool { host.hasPrefix("127.") || host == "::1" }
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    public let endpoint: Endpoint
    public let fd: Int32
    /// The port bound (the endpoint's, or the one the kernel chose for port 0).
    public private(set) var port: UInt16 = 0
    private var poll: PollHandle?
    private let onAccept: (Int32) -> Void

    public init(endpoint: Endpoint, loop: EventLoop, onAccept: @escaping (Int32) -> Void) throws(SystemError) {
        self.endpoint = endpoint
        self.onAccept = onAccept
        let family = Endpoint.family(of: endpoint.host)!
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError.last("socket") }
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var storage = sockaddr_storage()
        let length: socklen_t = withUnsafeMutablePointer(to: &storage) { pointer in
            if family == AF_INET {
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    address.pointee.sin_family = sa_family_t(AF_INET)
                    address.pointee.sin_port = endpoint.port.bigEndian
                    inet_pton(AF_INET, endpoint.host, &address.pointee.sin_addr)
                    return socklen_t(MemoryLayout<sockaddr_in>.size)
                }
            }
            return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                address.pointee.sin6_family = sa_family_t(AF_INET6)
                address.pointee.sin6_port = endpoint.port.bigEndian
                inet_pton(AF_INET6, endpoint.host, &address.pointee.sin6_addr)
                return socklen_t(MemoryLayout<sockaddr_in6>.size)
            }
        }
        let bound = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0, listen(fd, 128) == 0 else {
            let error = SystemError.last("listen on \(endpoint)")
            Glibc.close(fd)
            throw error
        }
        var actual = sockaddr_storage()
        var actualLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &actualLength) } }
        port = withUnsafePointer(to: &actual) { pointer in
            family == AF_INET
                ? pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
                : pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
        }
        do {
            poll = try PollHandle(loop: loop, fd: fd) { [unowned self] status, _ in
                if status >= 0 { self.acceptAll() }
            }
        } catch {
            Glibc.close(fd)
            throw SystemError(error.description, errno: -error.code)
        }
        poll?.watch(Int32(UV_READABLE.rawValue))
    }

    deinit { close() }

    private func acceptAll() {
        while true {
            let client = its_accept4(fd)
            if client < 0 {
                if its_errno() == EINTR || its_errno() == ECONNABORTED { continue }
                return
            }
            var one: Int32 = 1
            setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            onAccept(client)
        }
    }

    public func close() {
        guard let poll else { return }
        poll.close()
        self.poll = nil
        Glibc.close(fd)
    }
}

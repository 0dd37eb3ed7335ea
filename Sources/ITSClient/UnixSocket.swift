import CITSSupport
import Glibc

/// A connected, blocking `AF_UNIX` stream socket: whole-buffer sends (with SCM_RIGHTS descriptors in
/// the same `sendmsg`) and receives into a caller's buffer. Every system call of ITSClient is here.
struct UnixSocket: ~Copyable {
    let fd: Int32

    /// Connects to `path`.
    init(path: String) throws(ITSClientError) {
        var address = sockaddr_un()
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else { throw .cannotConnect(path: path, errno: ENAMETOOLONG) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system(call: "socket", errno: errno) }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path.utf8) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw .cannotConnect(path: path, errno: code)
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Sends all of `bytes`; `fds` travel with the first `sendmsg`, which then carries exactly
    /// `bytes` (PROTOCOL.md, section 4: a frame with descriptors goes alone).
    func send(_ bytes: UnsafeRawBufferPointer, fds: [Int32] = []) throws(ITSClientError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        var sent = 0
        if !fds.isEmpty {
            sent = try sendWithDescriptors(bytes, fds: fds)
        }
        while sent < bytes.count {
            let count = Glibc.send(fd, base + sent, bytes.count - sent, Int32(MSG_NOSIGNAL))
            if count < 0 {
                if errno == EINTR { continue }
                throw Self.sendError(errno)
            }
            sent += count
        }
    }

    private func sendWithDescriptors(_ bytes: UnsafeRawBufferPointer, fds: [Int32]) throws(ITSClientError) -> Int {
        let space = its_cmsg_space_fds(fds.count)
        let control = UnsafeMutableRawPointer.allocate(byteCount: space, alignment: 8)
        defer { control.deallocate() }
        // SAFETY: `iov` points into `bytes`, which the caller keeps alive and unchanged for this call;
        // sendmsg only reads through it. `control` holds `space` bytes, what its_cmsg_put_fds fills.
        var iov = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
        let result: Int = withUnsafeMutablePointer(to: &iov) { iovPointer in
            var message = msghdr()
            message.msg_iov = iovPointer
            message.msg_iovlen = 1
            fds.withUnsafeBufferPointer { its_cmsg_put_fds(&message, control, $0.baseAddress, fds.count) }
            while true {
                let count = sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
                if count < 0, errno == EINTR { continue }
                return count
            }
        }
        guard result >= 0 else { throw Self.sendError(errno) }
        return result
    }

    private static func sendError(_ code: Int32) -> ITSClientError {
        code == EPIPE || code == ECONNRESET ? .connectionClosed : .system(call: "sendmsg", errno: code)
    }

    /// Waits until the socket is readable (or the peer closed it) or CLOCK_MONOTONIC reaches
    /// `deadline` (nanoseconds, as `ITSConnection.monotonicNanoseconds()`); false when the deadline came first.
    func waitReadable(until deadline: UInt64) throws(ITSClientError) -> Bool {
        while true {
            let now = ITSConnection.monotonicNanoseconds()
            guard now < deadline else { return false }
            // Rounded up, so that the last poll does not return a millisecond early and spin.
            let milliseconds = Int32(clamping: (deadline - now + 999_999) / 1_000_000)
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, milliseconds)
            if ready > 0 { return true }
            if ready < 0, errno != EINTR { throw .system(call: "poll", errno: errno) }
        }
    }

    /// Ends both directions: later sends fail with EPIPE and receives return 0, so every later call
    /// on the connection reports `.connectionClosed`. The descriptor itself is closed on deinit.
    func shutdownBoth() {
        _ = shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Receives into `buffer`; returns the byte count, 0 when the peer closed the connection, or nil
    /// when `wait` is false and nothing is there yet. A server that sends a descriptor breaks the
    /// protocol (no reply carries one): such descriptors are closed.
    func receive(into buffer: UnsafeMutableRawBufferPointer, wait: Bool = true) throws(ITSClientError) -> Int? {
        while true {
            let count = recv(fd, buffer.baseAddress, buffer.count, wait ? 0 : Int32(MSG_DONTWAIT))
            if count >= 0 { return count }
            switch errno {
            case EINTR: continue
            case EAGAIN where !wait: return nil
            case ECONNRESET: return 0
            case let code: throw .system(call: "recv", errno: code)
            }
        }
    }
}

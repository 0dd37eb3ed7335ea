import CLibUV
import Glibc

/// A uv_poll_t watching one file descriptor the server owns (a socket, an eventfd). libuv 1.44
/// cannot carry eventfds or memfds through its own streams, so the server does its own reads and
/// writes and uses libuv only for readiness, which may be spurious: handlers must cope with EAGAIN.
/// - Context: the thread of the loop it was created on.
public final class PollHandle {
    public typealias Handler = (_ status: Int32, _ events: Int32) -> Void

    private let handle: UnsafeMutablePointer<uv_poll_t>
    private var handler: Handler
    private var closed = false
    public private(set) var events: Int32 = 0

    public init(loop: EventLoop, fd: Int32, _ handler: @escaping Handler) throws(UVError) {
        handle = EventLoop.allocateHandle(uv_poll_t.self)
        self.handler = handler
        let status = uv_poll_init(loop.pointer, handle, fd)
        guard status == 0 else {
            free(handle)
            throw UVError("uv_poll_init", code: status)
        }
        uv_handle_set_data(base, Unmanaged.passUnretained(self).toOpaque())
    }

    private var base: UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)
    }

    /// Watches for `events` (UV_READABLE, UV_WRITABLE); 0 stops watching.
    public func watch(_ events: Int32) {
        guard !closed, events != self.events else { return }
        self.events = events
        if events == 0 {
            uv_poll_stop(handle)
            return
        }
        uv_poll_start(handle, events) { handle, status, events in
            guard let handle, let data = uv_handle_get_data(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self))
            else { return }
            Unmanaged<PollHandle>.fromOpaque(data).takeUnretainedValue().handler(status, events)
        }
    }

    /// Stops watching and closes the handle; the fd itself is the caller's to close, after this.
    public func close() {
        guard !closed else { return }
        closed = true
        uv_poll_stop(handle)
        uv_handle_set_data(base, nil)
        uv_close(base, EventLoop.freeHandle)
    }

    deinit { close() }
}

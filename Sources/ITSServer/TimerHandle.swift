import CLibUV
import Glibc

/// A uv_timer_t. - Context: the thread of the loop it was created on.
public final class TimerHandle {
    private let handle: UnsafeMutablePointer<uv_timer_t>
    private let action: () -> Void
    private var closed = false

    public init(loop: EventLoop, _ action: @escaping () -> Void) {
        handle = EventLoop.allocateHandle(uv_timer_t.self)
        self.action = action
        precondition(uv_timer_init(loop.pointer, handle) == 0, "uv_timer_init")
        uv_handle_set_data(base, Unmanaged.passUnretained(self).toOpaque())
    }

    private var base: UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)
    }

    /// Fires after `timeout` milliseconds, then every `repeat` milliseconds if that is not 0.
    public func start(timeout: UInt64, repeat: UInt64 = 0) {
        guard !closed else { return }
        uv_timer_start(handle, { handle in
            guard let handle, let data = uv_handle_get_data(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self))
            else { return }
            Unmanaged<TimerHandle>.fromOpaque(data).takeUnretainedValue().action()
        }, timeout, `repeat`)
    }

    public func stop() {
        guard !closed else { return }
        uv_timer_stop(handle)
    }

    public var isActive: Bool { !closed && uv_is_active(base) != 0 }

    /// Stops the timer and closes the handle.
    public func close() {
        guard !closed else { return }
        closed = true
        uv_timer_stop(handle)
        uv_handle_set_data(base, nil)
        uv_close(base, EventLoop.freeHandle)
    }

    deinit { close() }
}

import CLibUV
import Glibc

/// A uv_signal_t: a POSIX signal delivered as a callback on the loop thread.
/// - Context: the thread of the loop it was created on.
public final class SignalHandle {
    private let handle: UnsafeMutablePointer<uv_signal_t>
    private let action: (Int32) -> Void
    private var closed = false

    public init(loop: EventLoop, signal: Int32, _ action: @escaping (Int32) -> Void) {
        handle = EventLoop.allocateHandle(uv_signal_t.self)
        self.action = action
        precondition(uv_signal_init(loop.pointer, handle) == 0, "uv_signal_init")
        uv_handle_set_data(base, Unmanaged.passUnretained(self).toOpaque())
        uv_signal_start(handle, { handle, signal in
            guard let handle, let data = uv_handle_get_data(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self))
            else { return }
            Unmanaged<SignalHandle>.fromOpaque(data).takeUnretainedValue().action(signal)
        }, signal)
    }

    private var base: UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)
    }

    public func close() {
        guard !closed else { return }
        closed = true
        uv_signal_stop(handle)
        uv_handle_set_data(base, nil)
        uv_close(base, EventLoop.freeHandle)
    }

    deinit { close() }
}

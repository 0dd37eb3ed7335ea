import CLibUV

/// A uv_idle_t: while started, its action runs once per loop iteration, before the loop polls, and
/// the poll does not block. - Context: the thread of the loop it was created on.
public final class IdleHandle {
    private let handle: UnsafeMutablePointer<uv_idle_t>
    private let action: () -> Void
    private var closed = false

    public init(loop: EventLoop, _ action: @escaping () -> Void) {
        handle = EventLoop.allocateHandle(uv_idle_t.self)
        self.action = action
        precondition(uv_idle_init(loop.pointer, handle) == 0, "uv_idle_init")
        uv_handle_set_data(base, Unmanaged.passUnretained(self).toOpaque())
    }

    private var base: UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)
    }

    /// Runs the action from the next iteration on, until ``stop()``; starting a started handle
    /// changes nothing.
    public func start() {
        guard !closed else { return }
        uv_idle_start(handle) { handle in
            guard let handle, let data = uv_handle_get_data(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self))
            else { return }
            Unmanaged<IdleHandle>.fromOpaque(data).takeUnretainedValue().action()
        }
    }

    public func stop() {
        guard !closed else { return }
        uv_idle_stop(handle)
    }

    /// Stops and closes the handle.
    public func close() {
        guard !closed else { return }
        closed = true
        uv_idle_stop(handle)
        uv_handle_set_data(base, nil)
        uv_close(base, EventLoop.freeHandle)
    }

    deinit { close() }
}

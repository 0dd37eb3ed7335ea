import CLibUV

/// A handle whose action runs once per loop iteration while started, in one phase before the loop
/// polls: a uv_idle_t (`.idle`: the poll then does not block) or a uv_prepare_t (`.prepare`: the
/// last thing before the poll). - Context: the thread of the loop it was created on.
public final class PhaseHandle {
    public enum Phase {
        case idle
        case prepare
    }

    public let phase: Phase
    private let handle: UnsafeMutableRawPointer
    private let action: () -> Void
    private var closed = false

    public init(loop: EventLoop, phase: Phase, _ action: @escaping () -> Void) {
        self.phase = phase
        self.action = action
        switch phase {
        case .idle:
            let idle = EventLoop.allocateHandle(uv_idle_t.self)
            handle = UnsafeMutableRawPointer(idle)
            precondition(uv_idle_init(loop.pointer, idle) == 0, "uv_idle_init")
        case .prepare:
            let prepare = EventLoop.allocateHandle(uv_prepare_t.self)
            handle = UnsafeMutableRawPointer(prepare)
            precondition(uv_prepare_init(loop.pointer, prepare) == 0, "uv_prepare_init")
        }
        uv_handle_set_data(base, Unmanaged.passUnretained(self).toOpaque())
    }

    private var base: UnsafeMutablePointer<uv_handle_t> { handle.assumingMemoryBound(to: uv_handle_t.self) }

    /// The C callback of both kinds: the handle's data is its PhaseHandle.
    private static func run(_ handle: UnsafeMutableRawPointer?) {
        guard let handle, let data = uv_handle_get_data(handle.assumingMemoryBound(to: uv_handle_t.self)) else { return }
        Unmanaged<PhaseHandle>.fromOpaque(data).takeUnretainedValue().action()
    }

    /// Runs the action from the next such phase on, until ``stop()``; starting a started handle
    /// changes nothing.
    public func start() {
        guard !closed else { return }
        switch phase {
        case .idle: uv_idle_start(handle.assumingMemoryBound(to: uv_idle_t.self)) { PhaseHandle.run(UnsafeMutableRawPointer($0)) }
        case .prepare: uv_prepare_start(handle.assumingMemoryBound(to: uv_prepare_t.self)) { PhaseHandle.run(UnsafeMutableRawPointer($0)) }
        }
    }

    public func stop() {
        guard !closed else { return }
        switch phase {
        case .idle: uv_idle_stop(handle.assumingMemoryBound(to: uv_idle_t.self))
        case .prepare: uv_prepare_stop(handle.assumingMemoryBound(to: uv_prepare_t.self))
        }
    }

    /// Stops and closes the handle.
    public func close() {
        guard !closed else { return }
        stop()
        closed = true
        uv_handle_set_data(base, nil)
        uv_close(base, EventLoop.freeHandle)
    }

    deinit { close() }
}

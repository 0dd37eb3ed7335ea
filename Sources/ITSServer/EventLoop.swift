import CLibUV
import Glibc

/// A libuv error code (negative errno) from a libuv call, with the call's name.
public struct UVError: Error, Hashable, Sendable, CustomStringConvertible {
    public var call: String
    public var code: Int32

    public init(_ call: String, code: Int32) {
        self.call = call
        self.code = code
    }

    public var description: String { "\(call): \(String(cString: uv_strerror(code)))" }

    /// Succeeds when `code` is 0 or positive.
    static func check(_ call: String, _ code: Int32) -> Result<Int32, UVError> {
        code < 0 ? .failure(UVError(call, code: code)) : .success(code)
    }
}

/// One libuv loop. Loops and their handles are not thread-safe: a loop and everything on it belong
/// to the thread that runs it (IHI-independent libuv rule, docs/design.rst); only
/// ``AsyncWakeup/send()`` may be called from elsewhere.
/// - Context: the thread that runs it.
public final class EventLoop {
    public let pointer: UnsafeMutablePointer<uv_loop_t>

    public init() {
        pointer = .allocate(capacity: 1)
        precondition(uv_loop_init(pointer) == 0, "uv_loop_init")
        _ = clibuv_enable_idle_time(pointer)
    }

    deinit {
        // Close whatever handles remain (their owners are gone) and let their close callbacks run.
        uv_walk(pointer, { handle, _ in
            if let handle, uv_is_closing(handle) == 0 { uv_close(handle, EventLoop.freeHandle) }
        }, nil)
        uv_run(pointer, UV_RUN_DEFAULT)
        uv_loop_close(pointer)
        pointer.deallocate()
    }

    /// Runs until no active handle remains or ``stop()`` is called.
    public func run() { uv_run(pointer, UV_RUN_DEFAULT) }

    /// Runs one iteration without blocking (for tests and for draining at shutdown).
    public func runOnce() { uv_run(pointer, UV_RUN_NOWAIT) }

    public func stop() { uv_stop(pointer) }

    /// Nanoseconds the loop has spent idle in its poll since it started (uv_metrics_idle_time).
    public var idleTimeNanoseconds: UInt64 { uv_metrics_idle_time(pointer) }

    /// The close callback of every handle the server allocates: frees its memory.
    static let freeHandle: uv_close_cb = { handle in
        free(UnsafeMutableRawPointer(handle))
    }

    /// Allocates a zeroed libuv handle of type `H` (freed by ``freeHandle`` after uv_close).
    static func allocateHandle<H>(_ type: H.Type) -> UnsafeMutablePointer<H> {
        let raw = calloc(1, MemoryLayout<H>.size)!
        return raw.bindMemory(to: H.self, capacity: 1)
    }
}

/// A uv_async_t: the one libuv call that is safe from any thread. Wakeups coalesce: several
/// ``send()`` calls before the loop runs give one callback.
public final class AsyncWakeup: @unchecked Sendable {
    // @unchecked Sendable: only `send()` is used from other threads, and uv_async_send is
    // thread-safe; everything else runs on the loop's thread.
    private let handle: UnsafeMutablePointer<uv_async_t>
    private let action: () -> Void
    private var closed = false

    /// - Context: the loop's thread.
    public init(loop: EventLoop, _ action: @escaping () -> Void) {
        handle = EventLoop.allocateHandle(uv_async_t.self)
        self.action = action
        precondition(uv_async_init(loop.pointer, handle, { handle in
            guard let data = uv_handle_get_data(UnsafeMutableRawPointer(handle!).assumingMemoryBound(to: uv_handle_t.self)) else { return }
            Unmanaged<AsyncWakeup>.fromOpaque(data).takeUnretainedValue().action()
        }) == 0, "uv_async_init")
        uv_handle_set_data(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self),
                           Unmanaged.passUnretained(self).toOpaque())
    }

    /// Wakes the loop. - Context: any thread.
    public func send() { uv_async_send(handle) }

    /// Closes the handle; the callback never runs again. - Context: the loop's thread.
    public func close() {
        guard !closed else { return }
        closed = true
        let base = UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)
        uv_handle_set_data(base, nil)
        uv_close(base, EventLoop.freeHandle)
    }

    deinit { close() }
}

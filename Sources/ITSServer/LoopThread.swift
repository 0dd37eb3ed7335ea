import CLibUV
import Glibc
import Synchronization

/// A thread running its own libuv loop, fed through a ``WorkQueue``: the shape of every vCPU lane.
///
/// Producers call ``submit(_:)`` or ``submit(contentsOf:)`` from any thread; the first item into an
/// empty queue wakes the loop, which drains the whole queue and hands the batch to the handler on
/// this thread. ``stop()`` finishes the items already queued, closes the loop and joins the thread.
public final class LoopThread<Item: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: `queue` and `wakeup` are the only members used from other threads and
    // are thread-safe; `loop`, `handler` and `batch` are confined to the thread (set up before it
    // starts, which pthread_create orders before the thread's first access).

    public let name: String
    public let queue: WorkQueue<Item>
    private var loop: EventLoop?
    private var wakeup: AsyncWakeup?
    private var handler: ((inout [Item]) -> Void)?
    private var batch: [Item] = []
    private var thread = pthread_t()
    private var stopping = false
    /// 0 while starting, 1 running, 2 asked to stop. Release/acquire order the thread's set-up
    /// (loop, wakeup) before any producer's use of the wakeup.
    private let state = Atomic<Int>(0)
    /// Serialises wakeups from other threads with the thread closing its wakeup handle, so that no
    /// uv_async_send can touch a closed handle. A leaf lock, held only around the send or the close;
    /// it is never held together with the queue's mutex.
    private let wakeLock: UnsafeMutablePointer<pthread_mutex_t>
    private var wakeupClosed = false

    /// Starts the thread. `setUp` runs first on the new thread with its loop (to add handles); the
    /// handler it returns receives every drained batch, in order, on that thread, and may leave
    /// the batch non-empty only if it wants the rest dropped.
    public init(name: String, setUp: @escaping @Sendable (EventLoop) -> (inout [Item]) -> Void) {
        self.name = name
        queue = WorkQueue()
        wakeLock = .allocate(capacity: 1)
        pthread_mutex_init(wakeLock, nil)
        start(setUp)
    }

    private func start(_ setUp: @escaping @Sendable (EventLoop) -> (inout [Item]) -> Void) {
        thread = startThread { self.main(setUp) }
        // Wait until the loop and its wakeup exist, so that submit() can always wake it.
        while state.load(ordering: .acquiring) == 0 { sched_yield() }
    }

    private func main(_ setUp: (EventLoop) -> (inout [Item]) -> Void) {
        let loop = EventLoop()
        self.loop = loop
        handler = setUp(loop)
        wakeup = AsyncWakeup(loop: loop) { [unowned self] in self.drain() }
        state.store(1, ordering: .releasing)
        loop.run()
        pthread_mutex_lock(wakeLock)
        wakeup = nil
        pthread_mutex_unlock(wakeLock)
        handler = nil
        self.loop = nil
    }

    private func drain() {
        // Items submitted before stop() was called must all be handled, so once the stop request is
        // seen the queue is drained once more: stop() sets the state after its caller's last submit.
        let stopping = state.load(ordering: .acquiring) == 2
        queue.drain(into: &batch)
        if !batch.isEmpty { handler?(&batch) }
        batch.removeAll(keepingCapacity: true)
        if stopping {
            pthread_mutex_lock(wakeLock)
            wakeupClosed = true
            wakeup?.close()
            pthread_mutex_unlock(wakeLock)
            loop?.stop()
        }
    }

    /// Wakes the thread unless it has already closed its wakeup (it is then past its last drain,
    /// which only happens after stop()).
    private func wake() {
        pthread_mutex_lock(wakeLock)
        if !wakeupClosed { wakeup?.send() }
        pthread_mutex_unlock(wakeLock)
    }

    /// Queues one item. - Context: any thread.
    public func submit(_ item: Item) {
        if queue.append(item) { wake() }
    }

    /// Queues a batch. - Context: any thread.
    public func submit(contentsOf items: [Item]) {
        if queue.append(contentsOf: items) { wake() }
    }

    /// Processes what is queued, then ends the thread and waits for it. Nothing may be submitted
    /// after this is called. - Context: any other thread, once.
    public func stop() {
        guard !stopping else { return }
        stopping = true
        state.store(2, ordering: .releasing)
        wake()
        pthread_join(thread, nil)
    }

    deinit {
        pthread_mutex_destroy(wakeLock)
        wakeLock.deallocate()
    }
}

/// Starts a POSIX thread running `body`. A C thread entry cannot capture generic context, so the
/// body travels in a box.
func startThread(_ body: @escaping () -> Void) -> pthread_t {
    final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }
    var thread = pthread_t()
    let created = pthread_create(&thread, nil, { context in
        Unmanaged<Box>.fromOpaque(context!).takeRetainedValue().body()
        return nil
    }, Unmanaged.passRetained(Box(body)).toOpaque())
    precondition(created == 0, "pthread_create")
    return thread
}

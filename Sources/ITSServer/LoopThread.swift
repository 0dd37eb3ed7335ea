import CLibUV
import Glibc
import Synchronization

/// A thread running its own libuv loop, fed through a ``Mailbox``: the shape of every vCPU lane.
///
/// Producers call ``submit(_:)`` or ``submit(contentsOf:)`` from any thread; the first item into an
/// empty queue wakes the loop, which drains the whole queue and hands the batch to the handler on
/// this thread. ``stop()`` finishes the items already queued, closes the loop and joins the thread.
public final class LoopThread<Item: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: other threads use only `mailbox` (whose `post` is thread-safe) and
    // `state`; `loop` is confined to the thread. `mailbox` is set before `state` becomes 1 with
    // release ordering, and read by producers only after init observed that with acquire ordering.

    public let name: String
    /// Held by this thread while it takes and handles a batch (``Mailbox``).
    public let ownership: Ownership?
    private var mailbox: Mailbox<Item>?
    private var thread = pthread_t()
    private var stopping = false
    /// 0 while starting, 1 running, 2 asked to stop.
    private let state = Atomic<Int>(0)

    /// Starts the thread. `setUp` runs first on the new thread with its loop (to add handles); the
    /// handler it returns receives every drained batch, in order, on that thread, holding
    /// `ownership` if given. `setUp` has returned when this does.
    public init(name: String, ownership: Ownership? = nil, setUp: @escaping @Sendable (EventLoop) -> (inout [Item]) -> Void) {
        self.name = name
        self.ownership = ownership
        start(setUp)
    }

    private func start(_ setUp: @escaping @Sendable (EventLoop) -> (inout [Item]) -> Void) {
        thread = startThread { self.main(setUp) }
        // Wait until the loop and its mailbox exist, so that submit() can always wake it.
        while state.load(ordering: .acquiring) == 0 { sched_yield() }
    }

    private func main(_ setUp: (EventLoop) -> (inout [Item]) -> Void) {
        let loop = EventLoop()
        let handler = setUp(loop)
        let mailbox = Mailbox<Item>(loop: loop, ownership: ownership) { [unowned self] batch in
            if !batch.isEmpty { handler(&batch) }
            // Items submitted before stop() must all be handled: stop() sets the state after its
            // caller's last submit, so a queue taken after seeing the state holds them all.
            guard self.state.load(ordering: .acquiring) == 2, let mailbox = self.mailbox else { return }
            var rest: [Item] = []
            mailbox.queue.drain(into: &rest)
            if !rest.isEmpty { handler(&rest) }
            mailbox.close()
            loop.stop()
        }
        self.mailbox = mailbox
        state.store(1, ordering: .releasing)
        loop.run()
    }

    /// The queue, for its depth.
    public var queue: WorkQueue<Item> { mailbox!.queue }

    /// Queues one item. - Context: any thread.
    public func submit(_ item: Item) { mailbox?.post(item) }

    /// Queues a batch. - Context: any thread.
    public func submit(contentsOf items: [Item]) { mailbox?.post(contentsOf: items) }

    /// Queues a batch, leaving `items` empty; into an empty queue it moves without a copy.
    /// - Context: any thread.
    public func submit(moving items: inout [Item]) {
        if let mailbox { mailbox.post(moving: &items) } else { items.removeAll(keepingCapacity: true) }
    }

    /// Processes what is queued, then ends the thread and waits for it. Nothing may be submitted
    /// after this is called. - Context: any other thread, once.
    public func stop() {
        guard !stopping else { return }
        stopping = true
        state.store(2, ordering: .releasing)
        mailbox?.wakeEvenIfEmpty()
        pthread_join(thread, nil)
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

import CLibUV
import Glibc

/// A ``WorkQueue`` whose consumer is a libuv loop: posting the first item into an empty queue wakes
/// the loop with `uv_async_send`, and the loop hands everything queued to the handler in one batch
/// (possibly empty, after ``wakeEvenIfEmpty()``).
/// Wakeups coalesce, so a burst of posts costs one wakeup.
///
/// - Lock order: the wake lock serialises `uv_async_send` from producers with the consumer closing
///   the handle; it is a leaf, taken after the queue's append has returned, never inside it.
/// With an ``Ownership``, the consumer holds it from taking the queue until the handler returns, so
/// that whoever else holds it knows no batch is between the queue and the handler.
///
/// The loop's own thread posts with ``postLocally(moving:)`` instead (a lane's work it ran itself):
/// no `uv_async_send`, and the items reach the handler in the next idle phase, before the loop
/// polls again, in order with everything other threads queue.
///
/// - Context: created, drained and closed on the loop's thread; `post` from any thread.
public final class Mailbox<Item: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: producers touch only `queue` (thread-safe) and `wake()`, whose use of
    // `wakeup` and `closed` is under `wakeLock`; `batch`, `handler`, `local` and `localWakeup`
    // belong to the loop's thread.

    public let queue = WorkQueue<Item>()
    private var wakeup: AsyncWakeup?
    private var closed = false
    private let wakeLock: UnsafeMutablePointer<pthread_mutex_t>
    private var handler: (inout [Item]) -> Void
    private var batch: [Item] = []
    private let ownership: Ownership?
    /// Items the loop's own thread posted, with what other threads had queued before them: the
    /// handler gets them ahead of the queue.
    private var local: [Item] = []
    private var spare: [Item] = []
    /// Made by the first ``postLocally(moving:)``: only the loop's own mailbox is posted to locally.
    private var localWakeup: PhaseHandle?
    private let loop: EventLoop

    /// A mailbox on `loop` whose batches go to `handler`, taken and handled holding `ownership`
    /// when there is one.
    public init(loop: EventLoop, ownership: Ownership? = nil, handler: @escaping (inout [Item]) -> Void) {
        self.ownership = ownership
        wakeLock = .allocate(capacity: 1)
        pthread_mutex_init(wakeLock, nil)
        self.handler = handler
        self.loop = loop
        wakeup = AsyncWakeup(loop: loop) { [unowned self] in self.drain() }
    }

    deinit {
        pthread_mutex_destroy(wakeLock)
        wakeLock.deallocate()
    }

    /// Queues one item and wakes the consumer if the queue was empty. - Context: any thread.
    public func post(_ item: Item) {
        if queue.append(item) { wake() }
    }

    /// Queues a batch and wakes the consumer if the queue was empty. - Context: any thread.
    public func post(contentsOf items: [Item]) {
        if queue.append(contentsOf: items) { wake() }
    }

    /// Queues a batch, leaving `items` empty (moved whole into an empty queue), and wakes the
    /// consumer if the queue was empty. - Context: any thread.
    public func post(moving items: inout [Item]) {
        if queue.append(moving: &items) { wake() }
    }

    /// Queues a batch from the consumer's own thread, leaving `items` empty; the handler gets it
    /// before the loop next polls, behind whatever other threads had queued until now and ahead
    /// of what they queue later. - Context: the loop's thread.
    public func postLocally(moving items: inout [Item]) {
        guard !items.isEmpty else { return }
        // What other threads queued so far goes first: it moves to the local list.
        queue.drain(into: &spare)
        if local.isEmpty {
            swap(&local, &spare)
        } else {
            local.append(contentsOf: spare)
            spare.removeAll(keepingCapacity: true)
        }
        local.append(contentsOf: items)
        items.removeAll(keepingCapacity: true)
        guard !closed else { return }
        if localWakeup == nil {
            localWakeup = PhaseHandle(loop: loop, phase: .idle) { [unowned self] in
                self.localWakeup?.stop()
                self.drain()
            }
        }
        localWakeup?.start()
    }

    /// Wakes the consumer even when nothing is queued (to make it look at other state).
    /// - Context: any thread.
    public func wakeEvenIfEmpty() { wake() }

    private func wake() {
        pthread_mutex_lock(wakeLock)
        if !closed { wakeup?.send() }
        pthread_mutex_unlock(wakeLock)
    }

    /// Hands everything queued to the handler — an empty batch when woken with nothing queued.
    /// - Context: the loop's thread.
    public func drain() {
        ownership?.acquire()
        defer { ownership?.release() }
        if local.isEmpty {
            queue.drain(into: &batch)
        } else {
            // The local list holds everything queued before its last item; the queue, what came
            // after. A lane's replies reach the handler in the order they were made.
            swap(&batch, &local)
            queue.drain(into: &spare)
            batch.append(contentsOf: spare)
            spare.removeAll(keepingCapacity: true)
        }
        handler(&batch)
        batch.removeAll(keepingCapacity: true)
    }

    /// Stops wakeups and closes the handle; later posts are queued but never handled.
    /// - Context: the loop's thread.
    public func close() {
        pthread_mutex_lock(wakeLock)
        closed = true
        wakeup?.close()
        wakeup = nil
        localWakeup?.close()
        localWakeup = nil
        pthread_mutex_unlock(wakeLock)
    }
}

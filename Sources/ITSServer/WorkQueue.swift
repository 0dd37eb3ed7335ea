import Glibc

/// Work from any thread to one consuming thread, in batches.
///
/// Producers append under the queue's mutex; the consumer swaps the whole array out, leaving its
/// own emptied array in its place, so that in a steady state neither side allocates. `append`
/// reports whether the queue was empty, which is when the producer must wake the consumer (with
/// `uv_async_send`, which coalesces wakeups: the consumer therefore always takes everything).
///
/// The mutex is a `pthread_mutex_t` rather than the Synchronization module's `Mutex` because
/// ThreadSanitizer intercepts pthread locks and so can check this queue in `make test-race`.
///
/// - Lock order: the mutex is a leaf. Nothing else is acquired while it is held, and nothing but the
///   append or the swap happens under it.
public final class WorkQueue<Item: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: `items` is read and written only with `mutex` held.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var items: [Item] = []

    public init(reservingCapacity capacity: Int = 256) {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        items.reserveCapacity(capacity)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inline(__always)
    private func locked<R>(_ body: (inout [Item]) -> R) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body(&items)
    }

    /// Appends one item; returns true when the queue was empty before (wake the consumer).
    /// - Context: any thread.
    @discardableResult
    public func append(_ item: Item) -> Bool {
        locked { items in
            items.append(item)
            return items.count == 1
        }
    }

    /// Appends a batch; returns true when the queue was empty before and the batch was not.
    /// - Context: any thread.
    @discardableResult
    public func append(contentsOf batch: [Item]) -> Bool {
        guard !batch.isEmpty else { return false }
        return locked { items in
            let wasEmpty = items.isEmpty
            items.append(contentsOf: batch)
            return wasEmpty
        }
    }

    /// Appends a batch and leaves `batch` empty; returns true when the queue was empty before and
    /// the batch was not. Into an empty queue the batch moves whole (the arrays are swapped, and
    /// `batch` keeps the queue's emptied capacity), so no item is copied.
    /// - Context: any thread.
    @discardableResult
    public func append(moving batch: inout [Item]) -> Bool {
        guard !batch.isEmpty else { return false }
        let wasEmpty = locked { items in
            if items.isEmpty {
                swap(&items, &batch)
                return true
            }
            items.append(contentsOf: batch)
            return false
        }
        // Outside the lock: destroying the items a non-empty queue copied is the producer's work.
        batch.removeAll(keepingCapacity: true)
        return wasEmpty
    }

    /// Takes everything queued: swaps it with `spare`, which must be empty and whose capacity the
    /// queue keeps. After the call `spare` holds the items in the order they were appended.
    /// - Context: the consuming thread only.
    public func drain(into spare: inout [Item]) {
        precondition(spare.isEmpty, "drain into an empty array")
        locked { items in swap(&items, &spare) }
    }

    /// Whether nothing is waiting (stale as soon as it is read, unless only the caller's thread
    /// appends). - Context: any thread.
    public var isEmpty: Bool { locked { $0.isEmpty } }

    /// The number of items waiting (a gauge for stats; stale as soon as it is read).
    public var depth: Int { locked { $0.count } }
}

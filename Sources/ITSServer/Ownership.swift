import Glibc

/// The right to touch state that one thread normally owns, lent to another thread while the owner
/// has nothing to do: a `pthread_mutex_t` the owner holds for each piece of work it takes, and that
/// a borrower may only try to take (``tryAcquire()``), never wait for.
///
/// A lane holds its ownership from the moment it takes a batch off its queue until the batch is
/// handled; the loop thread borrows it to run a small batch itself when the lane is idle
/// (``LaneGroup/runIfIdle(_:onLane:)``). A pthread mutex rather than the Synchronization module's
/// `Mutex` because ThreadSanitizer intercepts pthread locks, so `make test-race` checks the lending.
///
/// - Lock order: an ownership is taken before the leaf locks of ``WorkQueue`` and ``Mailbox`` (a
///   holder posts replies); no thread holds two ownerships, and none waits for one while holding a
///   leaf lock.
public final class Ownership: @unchecked Sendable {
    // @unchecked Sendable: the mutex is the synchronisation itself.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    public init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Waits for the ownership. - Context: the owning thread only.
    @inline(__always)
    public func acquire() { pthread_mutex_lock(mutex) }

    /// Takes the ownership if nobody holds it; returns whether it did. - Context: a borrower.
    @inline(__always)
    public func tryAcquire() -> Bool { pthread_mutex_trylock(mutex) == 0 }

    @inline(__always)
    public func release() { pthread_mutex_unlock(mutex) }

    /// Runs `body` holding the ownership. - Context: the owning thread only.
    @inline(__always)
    public func withOwnership<R>(_ body: () throws -> R) rethrows -> R {
        acquire()
        defer { release() }
        return try body()
    }
}

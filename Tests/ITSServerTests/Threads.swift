import Glibc
@testable import ITSServer

/// Runs `body(index)` on `count` new POSIX threads at once and waits for all of them. Stress tests
/// use real threads rather than Swift's cooperative pool, which may run tasks one after another on
/// one thread and so hide races from ThreadSanitizer.
func runOnThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    final class Job: @unchecked Sendable {
        // @unchecked Sendable: immutable after creation.
        let index: Int
        let body: @Sendable (Int) -> Void
        init(index: Int, body: @escaping @Sendable (Int) -> Void) {
            self.index = index
            self.body = body
        }
    }
    var threads: [pthread_t] = []
    for index in 0 ..< count {
        var thread = pthread_t()
        let job = Unmanaged.passRetained(Job(index: index, body: body)).toOpaque()
        let created = pthread_create(&thread, nil, { context in
            let job = Unmanaged<Job>.fromOpaque(context!).takeRetainedValue()
            job.body(job.index)
            return nil
        }, job)
        precondition(created == 0, "pthread_create failed")
        threads.append(thread)
    }
    for thread in threads { pthread_join(thread, nil) }
}

/// Runs `body` on a POSIX thread of its own and suspends until it returns: a test that blocks for
/// seconds holds no thread of the cooperative pool meanwhile. `body` must not record issues
/// (they belong to the test's task); it returns what the test then checks.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        pthread_detach(startThread { continuation.resume(returning: body()) })
    }
}

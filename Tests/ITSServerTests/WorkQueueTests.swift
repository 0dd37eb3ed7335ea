import Glibc
import Testing
@testable import ITSServer

@Suite struct WorkQueueTests {
    @Test func drainTakesEverythingInOrderAndReportsWakeups() {
        let queue = WorkQueue<Int>()
        #expect(queue.append(1), "the first append wakes the consumer")
        #expect(!queue.append(2))
        #expect(!queue.append(contentsOf: [3, 4]))
        #expect(!queue.append(contentsOf: []))
        var batch: [Int] = []
        queue.drain(into: &batch)
        #expect(batch == [1, 2, 3, 4])
        #expect(queue.depth == 0)
        #expect(queue.append(contentsOf: [5]), "empty again: wake")
        batch.removeAll(keepingCapacity: true)
        queue.drain(into: &batch)
        #expect(batch == [5])
    }

    /// A batch moved in leaves the producer's array empty, whole into an empty queue or behind
    /// what waits, in order, with the same wakeups as appending a copy.
    @Test func movingABatchLeavesItEmptyAndKeepsOrder() {
        let queue = WorkQueue<Int>()
        var batch = [1, 2]
        #expect(queue.append(moving: &batch), "into an empty queue: wake")
        #expect(batch.isEmpty)
        batch = [3]
        #expect(!queue.append(moving: &batch))
        #expect(batch.isEmpty)
        #expect(!queue.append(moving: &batch), "an empty batch wakes nobody")
        var taken: [Int] = []
        queue.drain(into: &taken)
        #expect(taken == [1, 2, 3])
        #expect(queue.depth == 0)
    }

    /// Four producer threads and one consumer thread: every item arrives exactly once and each
    /// producer's items arrive in order. Run under ThreadSanitizer by `make test-race`.
    @Test func concurrentProducersLoseNothing() {
        let queue = WorkQueue<UInt64>()
        let producers = 4
        let perProducer = 50_000
        runOnThreads(producers + 1) { thread in
            if thread < producers {
                var batch: [UInt64] = []
                for index in 0 ..< perProducer {
                    batch.append(UInt64(thread) << 32 | UInt64(index))
                    if batch.count == 64 || index == perProducer - 1 {
                        queue.append(contentsOf: batch)
                        batch.removeAll(keepingCapacity: true)
                    }
                }
                return
            }
            var next = [Int](repeating: 0, count: producers)
            var received = 0
            var batch: [UInt64] = []
            while received < producers * perProducer {
                queue.drain(into: &batch)
                for item in batch {
                    let producer = Int(item >> 32)
                    precondition(Int(item & 0xFFFF_FFFF) == next[producer], "out of order or lost")
                    next[producer] += 1
                }
                received += batch.count
                batch.removeAll(keepingCapacity: true)
                if received < producers * perProducer { sched_yield() }
            }
        }
        #expect(queue.depth == 0)
    }
}

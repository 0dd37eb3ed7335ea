import Glibc
import Synchronization
import Testing
@testable import ITSServer

/// What a LoopThread's handler saw, filled on that thread and read after stop() joined it.
final class Observed: @unchecked Sendable {
    // @unchecked Sendable: written only by the loop thread, read only after pthread_join.
    var items: [UInt64] = []
    var batches = 0
    var threads: Set<UInt> = []
}

@Suite struct LoopThreadTests {
    /// Producers on three threads submit 90,000 items in batches; the loop thread sees each exactly
    /// once, in each producer's order, in far fewer wakeups than items, all on its own thread.
    @Test func itemsArriveInOrderOnTheLoopThread() {
        let observed = Observed()
        let lane = LoopThread<UInt64>(name: "test-lane") { _ in
            return { batch in
                observed.batches += 1
                observed.threads.insert(UInt(pthread_self()))
                observed.items.append(contentsOf: batch)
            }
        }
        let producers = 3
        let perProducer = 30_000
        runOnThreads(producers) { producer in
            var batch: [UInt64] = []
            for index in 0 ..< perProducer {
                batch.append(UInt64(producer) << 32 | UInt64(index))
                if batch.count == 100 {
                    lane.submit(contentsOf: batch)
                    batch.removeAll(keepingCapacity: true)
                }
            }
            lane.submit(contentsOf: batch)
        }
        lane.submit(UInt64.max)
        lane.stop()
        #expect(observed.items.count == producers * perProducer + 1)
        #expect(observed.items.last == UInt64.max, "stop() processes what was queued first")
        var next = [Int](repeating: 0, count: producers)
        for item in observed.items.dropLast() {
            let producer = Int(item >> 32)
            #expect(Int(item & 0xFFFF_FFFF) == next[producer])
            next[producer] += 1
        }
        #expect(observed.threads.count == 1 && !observed.threads.contains(UInt(pthread_self())))
        #expect(observed.batches < producers * perProducer / 100 + 1, "wakeups coalesce into batches")
    }

    @Test func stoppingAnIdleThreadReturns() {
        let lane = LoopThread<Int>(name: "idle") { _ in { _ in } }
        lane.stop()
        lane.stop()
    }
}

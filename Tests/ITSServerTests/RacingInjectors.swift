import Glibc
import ITSModel
import ITSWire
import Synchronization
@testable import ITSServer

/// The two injecting connections of the consumer stress tests: one sends 3,000 NO_REPLY INJECTs to
/// events 0...3 of DeviceID 7 in random bursts of 1 to 8, ending with a PING that is answered behind
/// all of them; the other sends 1,000 INJECTs with replies. Batches then run on the loop (the lane
/// idle) and on the lane (busy) by turns.
final class RacingInjectors: @unchecked Sendable {
    private let running = Atomic<Int>(2)
    private var threads: [pthread_t] = []
    /// INJECTs with a reply that failed: written by the replying thread, read after ``join()``.
    private(set) var failures = 0

    init(vm: VMID, bursts: ClientVM, replies: ClientVM, seed: UInt64) {
        let device = Wire.DeviceID(rawValue: 7)
        threads.append(startThread { [self] in
            var rng = SplitMix64(seed: seed)
            var sent = 0
            while sent < 3000 {
                let count = Int.random(in: 1 ... 8, using: &rng)
                var bytes: [UInt8] = []
                for index in 0 ..< count {
                    let event = Wire.EventID(rawValue: UInt32((sent + index) % 4))
                    bytes += Frame(.inject(vm, device, event), id: MessageID(rawValue: 1), noReply: true).encoded
                }
                bursts.client.sendBytes(bytes)
                sent += count
                if Int.random(in: 0 ..< 4, using: &rng) == 0 { usleep(50) }
            }
            // Answered behind every burst: they have all been read and translated.
            _ = bursts.call(.ping(nonce: 1))
            running.subtract(1, ordering: .releasing)
        })
        threads.append(startThread { [self] in
            for index in 0 ..< 1000 where replies.call(.inject(vm, device, Wire.EventID(rawValue: UInt32(index % 4))))?.status != .ok {
                failures += 1
            }
            running.subtract(1, ordering: .releasing)
        })
    }

    /// Whether both connections have sent everything and had it translated.
    var done: Bool { running.load(ordering: .acquiring) == 0 }

    func join() { threads.forEach { pthread_join($0, nil) } }
}

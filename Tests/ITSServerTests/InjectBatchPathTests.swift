import ITSModel
import ITSWire
import Testing
@testable import ITSServer

/// INJECT_BATCH's per-chunk path (``Server/inject(_:its:operations:msis:)``) against what it
/// replaces, ``ITS/signal(_:_:redistributors:)`` and one count per pair: two identical VMs on
/// lanes take the same random batches — mixed devices in runs, unmapped devices and events,
/// out-of-range IDs, batches across the 64-pair chunks — and must end with the same replies, ITS
/// counters and cache, MSI statistics, items queued and LPIs delivered.
@Suite(.serialized) struct InjectBatchPathTests {
    static func programmed(lanes: Int) -> LaneHarness {
        let harness = LaneHarness(vcpus: 3, lanes: lanes)
        harness.run((0 ..< 3).map { .mapc(CollectionID(UInt16($0)), rdbase: UInt64($0), valid: true) }
            + [1, 2, 4].map { .mapd(DeviceID($0), ittAddress: GuestAddress(LaneHarness.itts + UInt64($0) << 16), eventIDBits: 5, valid: true) }
            + [1, 2, 4].flatMap { device in
                (0 ..< 24 as Range<UInt32>).filter { $0 % 5 != 4 }.map { event in
                    .mapti(DeviceID(device), EventID(event), INTID(8192 + device * 32 + event), CollectionID(UInt16((device + event) % 3)))
                }
            })
        return harness
    }

    static func statistics(_ msis: inout MSIStatistics) -> [String] {
        let devices = msis.devices(keeping: { _ in true }).map { "\($0.device): \($0.counters.injected)/\($0.counters.blocked)" }
        return devices + ["\(msis.bySource)", "\(msis.injected)/\(msis.blocked)/\(msis.devicesNotTracked)"]
    }

    @Test(arguments: [2, 3])
    func sameOutcomesAsPairByPair(lanes: Int) {
        let fast = Self.programmed(lanes: lanes)
        let reference = Self.programmed(lanes: lanes)
        defer {
            fast.shutDown()
            reference.shutDown()
        }
        var fastMSIs = MSIStatistics()
        var referenceMSIs = MSIStatistics()
        var rng = SplitMix64(seed: UInt64(0xBA7C_0000 + lanes))
        let candidates: [UInt32] = [1, 1, 2, 2, 4, 4, 3, 9, 1 << 20]
        var injectedTotal: UInt32 = 0
        var blockedTotal: UInt32 = 0
        for round in 0 ..< 24 {
            let count = [64, 65, 128, 200][round % 4] - Int.random(in: 0 ... 1, using: &rng) * Int.random(in: 0 ... 63, using: &rng)
            var entries: [InjectEntry] = []
            while entries.count < count {
                let device = candidates[Int.random(in: 0 ..< candidates.count, using: &rng)]
                for _ in 0 ..< min(count - entries.count, Int.random(in: 1 ... 70, using: &rng)) {
                    let event = UInt32.random(in: 0 ..< 12, using: &rng) == 0 ? 1 << 17 : UInt32.random(in: 0 ..< 36, using: &rng)
                    entries.append(InjectEntry(deviceID: Wire.DeviceID(device), eventID: Wire.EventID(event)))
                }
            }
            let batch = InjectBatch(vm: VMID(1), entries: entries)
            let fastQueuedBefore = fast.operations.itemsQueued
            let result = Server.inject(batch, its: &fast.its, operations: &fast.operations, msis: &fastMSIs)
            let referenceQueuedBefore = reference.operations.itemsQueued
            var injected: UInt32 = 0
            var blocked: UInt32 = 0
            for entry in entries {
                let device = DeviceID(entry.deviceID.rawValue)
                let outcome = reference.its.signal(device, EventID(entry.eventID.rawValue), redistributors: &reference.operations)
                referenceMSIs.count(device, injected: outcome.isSuccess, from: .injectBatch)
                if outcome.isSuccess { injected += 1 } else { blocked += 1 }
            }
            #expect(result.injected == injected && result.blocked == blocked, "round \(round)")
            #expect(fast.operations.itemsQueued - fastQueuedBefore == reference.operations.itemsQueued - referenceQueuedBefore,
                    "round \(round)")
            #expect(fast.its.counters == reference.its.counters, "round \(round)")
            #expect(fast.its.translationCache.entries.map(\.key) == reference.its.translationCache.entries.map(\.key))
            injectedTotal += injected
            blockedTotal += blocked
            if round % 3 == 2 {
                for vcpu in 0 ..< 3 { #expect(fast.drain(vcpu) == reference.drain(vcpu), "round \(round) vCPU \(vcpu)") }
            }
        }
        #expect(Self.statistics(&fastMSIs) == Self.statistics(&referenceMSIs))
        #expect(injectedTotal > 0 && blockedTotal > 0)
        #expect(fast.its.counters.translationsBlocked > 0 && fast.its.counters.translationHits > 0)
    }

    /// A disabled ITS: the batch path blocks and counts every pair, as signal does (the server
    /// answers ITS_DISABLED before reaching it, but the path does not depend on that).
    @Test func disabledITSBlocksEveryPair() {
        let harness = Self.programmed(lanes: 2)
        defer { harness.shutDown() }
        harness.writeITS(ITS.Offset.ctlr, 0, width: .word)
        var msis = MSIStatistics()
        let entries = (0 ..< 70).map { InjectEntry(deviceID: Wire.DeviceID(UInt32($0 / 30 + 1)), eventID: Wire.EventID(UInt32($0 % 8))) }
        let queuedBefore = harness.operations.itemsQueued
        let result = Server.inject(InjectBatch(vm: VMID(1), entries: entries), its: &harness.its,
                                   operations: &harness.operations, msis: &msis)
        #expect(result.injected == 0 && result.blocked == 70)
        #expect(harness.operations.itemsQueued == queuedBefore)
        #expect(harness.its.counters.translaterWritesIgnored == 70)
        #expect(Self.statistics(&msis) == ["1: 0/30", "2: 0/30", "3: 0/10", "[0, 70, 0, 0]", "0/70/0"])
    }
}

import Glibc
import ITSModel
import Testing
@testable import ITSServer

@Suite(.serialized) struct LaneTests {
    /// The guest-driver flow with the ITS on the loop and redistributors on two lanes.
    @Test func mapInjectAcknowledgeAcrossLanes() {
        let harness = LaneHarness(vcpus: 4, lanes: 2)
        defer { harness.shutDown() }
        harness.run((0 ..< 4).map { .mapc(CollectionID(UInt16($0)), rdbase: UInt64($0), valid: true) }
            + [.mapd(DeviceID(1), ittAddress: GuestAddress(LaneHarness.itts), eventIDBits: 8, valid: true)]
            + (0 ..< 8).map { .mapti(DeviceID(1), EventID(UInt32($0)), INTID(8192 + UInt32($0)), CollectionID(UInt16($0 % 4))) })
        for event in 0 ..< 8 as Range<UInt32> { harness.inject(1, event) }
        #expect(harness.drain(1) == [8193, 8197])
        #expect(harness.drain(2) == [8194, 8198])
        // MOVI of a pending LPI to a vCPU on the other lane: it follows, and so do later MSIs.
        harness.inject(1, 1)
        harness.run([.movi(DeviceID(1), EventID(1), CollectionID(2))])
        #expect(harness.drain(1) == [])
        #expect(harness.drain(2) == [8193])
        harness.inject(1, 1)
        #expect(harness.drain(2) == [8193])
        // DISCARD of a pending LPI: never delivered.
        harness.inject(1, 3)
        harness.run([.discard(DeviceID(1), EventID(3))])
        #expect(harness.drain(3) == [8199], "8195 was discarded while pending; 8199 is from the first round")
        #expect(harness.deliverableEdges >= 5)
        #expect(harness.drain(0) == [8192, 8196])
    }

    /// Many rounds of MSIs over 4 vCPUs on 2 lanes with MOVI, DISCARD and re-MAPTI churn and
    /// acknowledges on every vCPU: nothing is lost (every LPI injected is acknowledged after its last
    /// injection) and nothing discarded is delivered. Run under ThreadSanitizer by `make test-race`.
    @Test func churnLosesNothingAndDeliversNoGhosts() {
        let harness = LaneHarness(vcpus: 4, lanes: 2)
        defer { harness.shutDown() }
        let events = 64
        harness.run((0 ..< 4).map { .mapc(CollectionID(UInt16($0)), rdbase: UInt64($0), valid: true) }
            + (0 ..< 4).map { .mapd(DeviceID(UInt32($0)), ittAddress: GuestAddress(LaneHarness.itts + UInt64($0) << 16), eventIDBits: 8, valid: true) })
        func intid(_ device: Int, _ event: Int) -> UInt32 { 8192 + UInt32(device * events + event) }
        var mapped: [Int: Bool] = [:]
        var commands: [ITSCommand] = []
        for device in 0 ..< 4 {
            for event in 0 ..< events {
                commands.append(.mapti(DeviceID(UInt32(device)), EventID(UInt32(event)), INTID(intid(device, event)), CollectionID(UInt16(event % 4))))
                mapped[Int(intid(device, event))] = true
            }
        }
        harness.run(commands)
        var rng = SplitMix64(seed: 0x1A_4E)
        var owed: Set<UInt32> = []     // injected since its last acknowledge
        for round in 0 ..< 200 {
            for _ in 0 ..< 64 {
                let device = Int.random(in: 0 ..< 4, using: &rng)
                let event = Int.random(in: 0 ..< events, using: &rng)
                if harness.inject(UInt32(device), UInt32(event)) != nil { owed.insert(intid(device, event)) }
            }
            var churn: [ITSCommand] = []
            for _ in 0 ..< 4 {
                let device = UInt32.random(in: 0 ..< 4, using: &rng)
                let event = UInt32.random(in: 0 ..< UInt32(events), using: &rng)
                let lpi = intid(Int(device), Int(event))
                switch Int.random(in: 0 ..< 3, using: &rng) {
                case 0:
                    churn.append(.movi(DeviceID(device), EventID(event), CollectionID(UInt16.random(in: 0 ..< 4, using: &rng))))
                case 1:
                    churn.append(.discard(DeviceID(device), EventID(event)))
                    mapped[Int(lpi)] = false
                    owed.remove(lpi)
                default:
                    churn.append(.mapti(DeviceID(device), EventID(event), INTID(lpi), CollectionID(UInt16(event % 4))))
                    // Mapping an event that is mapped replaces the mapping, pending state included.
                    if mapped[Int(lpi)] == true { owed.remove(lpi) }
                    mapped[Int(lpi)] = true
                }
            }
            harness.run(churn)
            if round % 10 == 9 {
                for vcpu in 0 ..< 4 {
                    for lpi in harness.drain(vcpu) {
                        #expect(mapped[Int(lpi)] == true, "round \(round): discarded LPI \(lpi) delivered")
                        owed.remove(lpi)
                    }
                }
                #expect(owed.isEmpty, "round \(round): lost \(owed.sorted())")
                owed.removeAll()
            }
        }
    }

    /// A lane does an INVALL's sweep a budget per loop turn and reports it done; a SYNC behind the
    /// INVALL holds CREADR until then, after which every LPI's new configuration is in force.
    @Test func invallOnALaneIsChunkedAndSyncWaitsForIt() {
        let harness = LaneHarness(vcpus: 2, lanes: 2)
        defer { harness.shutDown() }
        let count = 10_000
        harness.run([.mapc(CollectionID(0), rdbase: 0, valid: true),
                     .mapd(DeviceID(1), ittAddress: GuestAddress(LaneHarness.itts), eventIDBits: 14, valid: true)])
        for start in stride(from: 0, to: count, by: 1000) {
            harness.run((start ..< start + 1000).map { .mapti(DeviceID(1), EventID(UInt32($0)), INTID(8192 + UInt32($0)), CollectionID(0)) })
        }
        for event in 0 ..< count { harness.inject(1, UInt32(event)) }
        // Disable every LPI in the configuration table, then INVALL and SYNC.
        for intid in 8192 ..< 8192 + count { try! harness.memory.writeUInt8(0xA2, at: GuestAddress(LaneHarness.configTable + UInt64(intid) - 8192)) }
        harness.run([.invall(CollectionID(0)), .sync(rdbase: 0)], waiting: true)
        #expect(harness.its.creadr == harness.its.cwriter)
        #expect(harness.drain(0).isEmpty, "every LPI re-read as disabled before SYNC completed")
    }
}

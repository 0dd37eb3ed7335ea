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
}

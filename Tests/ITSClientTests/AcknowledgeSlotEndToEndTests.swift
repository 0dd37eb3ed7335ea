import CITSSupport
import Glibc
import ITSClient
import ITSWire
import Testing

/// Acknowledge slots against a live itsd (Protocol/PROTOCOL.md, 6.16b): the server delivers into an
/// armed slot and writes the notify eventfd; `more` calls for a drain with ACK; CLEAR stops delivery;
/// SET refuses a file it cannot trust with BAD_FD.
@Suite(.serialized) struct AcknowledgeSlotEndToEndTests {
    /// A one-vCPU VM whose device 7 maps events 0 and 1 to LPIs 8192 and 8193 (priority 0xA0) on
    /// vCPU 0, with an armed slot set for vCPU 0 and the vCPU's notify eventfd.
    struct Setup {
        let server: LiveServer
        let connection: ITSConnection
        let vm: ITSVM
        let ram: GuestRAM
        let slots: AcknowledgeSlots
        var slot: AcknowledgeSlot
        let wake: Int32

        init() throws {
            server = try #require(LiveServer())
            connection = try ITSConnection(path: server.socketPath)
            vm = try connection.createVM(VMConfig(vcpuCount: 1, deviceIDBits: 16, eventIDBits: 16, intidBits: 16))
            ram = GuestRAM()
            try ram.attach(to: vm)
            try ram.mapDevice(7, events: 2, on: vm)
            slots = try AcknowledgeSlots(count: 1)
            slot = slots[0]
            #expect(try slot.arm() == .init(lpi: nil, mustDrain: false))
            try vm.vcpu(0).setAcknowledgeSlot(slot)
            wake = try vm.vcpu(0).makeNotifier()
        }

        var cpu: ITSVCPU { vm.vcpu(0) }

        func inject(_ event: UInt32) throws {
            #expect(try vm.inject(deviceID: Wire.DeviceID(7), eventID: Wire.EventID(event)))
        }

        /// Whether the notify eventfd becomes readable within `milliseconds`; reads it when it does.
        func woken(within milliseconds: Int32 = 5000) -> Bool {
            var waiter = pollfd(fd: wake, events: Int16(POLLIN), revents: 0)
            guard poll(&waiter, 1, milliseconds) == 1 else { return false }
            return ITSVCPU.drain(wake) > 0
        }
    }

    static let lpi8192 = PendingLPI(intid: Wire.INTID(8192), priority: 0xA0, enabled: true)
    static let lpi8193 = PendingLPI(intid: Wire.INTID(8193), priority: 0xA0, enabled: true)

    @Test func anMSIIsDeliveredIntoTheSlotAndWakesTheVCPU() throws {
        var setup = try Setup()
        #expect(!setup.woken(within: 0), "nothing pending yet")
        try setup.inject(0)
        #expect(setup.woken(), "the eventfd was written after the delivery")
        #expect(setup.slot.load() == .delivered(intid: 8192, priority: 0xA0))
        #expect(try setup.slot.take() == .init(lpi: Self.lpi8192, mustDrain: false))
        #expect(setup.slot.load() == .armed(priorityMask: 0xFF))
        #expect(try setup.cpu.highestPriorityPending() == nil, "acknowledged by the server: no longer pending")
        #expect(try setup.cpu.acknowledge() == nil)
    }

    /// A second MSI while the slot holds the first sets `more`; the take reports it and ACK finds the second.
    @Test func aSecondMSIWhileDeliveredSetsMore() throws {
        var setup = try Setup()
        try setup.inject(0)
        try setup.inject(1)
        let slot = setup.slot
        #expect(eventually { slot.load() == AckSlotWord.delivered(intid: 8192, priority: 0xA0).withMore })
        #expect(setup.woken())
        #expect(try setup.slot.take() == .init(lpi: Self.lpi8192, mustDrain: true))
        #expect(setup.slot.load() == .armed(priorityMask: 0xFF), "the take cleared more")
        #expect(try setup.cpu.acknowledge() == Self.lpi8193)
        #expect(try setup.cpu.acknowledge() == nil)
    }

    @Test func takeAcknowledgedDrainsWhatTheSlotDidNotTake() throws {
        var setup = try Setup()
        try setup.inject(1)
        try setup.inject(0)
        let slot = setup.slot
        #expect(eventually { slot.load().more })
        var taken: [PendingLPI] = []
        #expect(try setup.cpu.takeAcknowledged(from: &setup.slot) { taken.append($0) } == 2)
        #expect(Set(taken) == [Self.lpi8192, Self.lpi8193])
        #expect(try setup.cpu.highestPriorityPending() == nil)
        #expect(setup.slot.load() == .armed(priorityMask: 0xFF))
    }

    @Test func clearStopsDelivery() throws {
        var setup = try Setup()
        try setup.cpu.clearAcknowledgeSlot()
        try setup.inject(0)
        #expect(setup.woken(), "the eventfd still says an LPI is deliverable")
        #expect(setup.slot.load() == .armed(priorityMask: 0xFF), "the cleared slot is not written")
        #expect(try setup.cpu.acknowledge() == Self.lpi8192)
        #expect(try setup.slot.take() == .init(lpi: nil, mustDrain: false))
        try setup.cpu.clearAcknowledgeSlot()
    }

    /// SET with a memfd that is not sealed against shrinking is BAD_FD detail 2; one too short for the
    /// slot, detail 3; an unaligned offset, BAD_VALUE. The VM goes on.
    @Test func setRefusesFilesItCannotTrust() throws {
        let setup = try Setup()
        let unsealed = its_memfd_create("unsealed", 1)
        #expect(unsealed >= 0 && ftruncate(unsealed, 4096) == 0)
        defer { close(unsealed) }
        func refusal(_ fd: Int32, offset: UInt64) -> ServerError? {
            do {
                _ = try setup.connection.call(.setAckSlot(setup.vm.id, Wire.VCPU(0), offset: offset), fds: [fd])
            } catch {
                if case .server(let refused) = error { return refused }
            }
            return nil
        }
        let notSealed = refusal(unsealed, offset: 0)
        #expect(notSealed?.status == .badFD && notSealed?.detail == 2)
        let tooShort = refusal(setup.slots.descriptor, offset: UInt64(4096 * 16))
        #expect(tooShort?.status == .badFD && tooShort?.detail == 3)
        #expect(refusal(setup.slots.descriptor, offset: 4)?.status == .badValue)
        #expect {
            try setup.vm.vcpu(1).setAcknowledgeSlot(setup.slot)
        } throws: { error in
            (error as? ITSClientError)?.status == .noSuchVCPU
        }
        try setup.inject(0)
        #expect(setup.woken(), "the slot set before the refusals still delivers")
    }
}

/// Against a server that agreed 1.1, the two 1.2 requests throw `.versionNotAgreed` unsent.
@Suite struct AcknowledgeSlotVersionTests {
    @Test func aServerOfVersionOneOneIsNotGivenASlot() throws {
        let server = try #require(FakeServer(answer: ReplyTimeoutTests.answering(minor: 1)))
        let connection = try ITSConnection(path: server.socketPath)
        #expect(connection.agreed.minor == 1)
        let cpu = try connection.createVM(ReplyTimeoutTests.config).vcpu(0)
        let slots = try AcknowledgeSlots(count: 1)
        #expect(throws: ITSClientError.versionNotAgreed(request: .setAckSlot, needs: 2, agreed: 1)) {
            try cpu.setAcknowledgeSlot(slots[0])
        }
        #expect(throws: ITSClientError.versionNotAgreed(request: .clearAckSlot, needs: 2, agreed: 1)) {
            try cpu.clearAcknowledgeSlot()
        }
        #expect(server.received.count == 2, "HELLO and CREATE_VM only")
    }
}

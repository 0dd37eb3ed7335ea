import CITSSupport
import Foundation
import Glibc
@testable import ITSClient
import ITSWire
import Testing

/// The server's side of an acknowledge slot, as itsd has it: its own shared mapping of the slot's
/// page, made from the descriptor, changed only by compare-and-swap (PROTOCOL.md, 6.16b).
final class SlotServerSide: @unchecked Sendable {
    let page: UnsafeMutableRawPointer
    let word: UnsafeMutablePointer<UInt64>
    let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    init(_ slot: AcknowledgeSlot) {
        let pageOffset = Int(slot.offset) / pageSize * pageSize
        page = mmap(nil, pageSize, PROT_READ | PROT_WRITE, MAP_SHARED, slot.file.descriptor, off_t(pageOffset))!
        // SAFETY: the slot lies in this page, 8-byte aligned; the mapping lives until deinit.
        word = (page + (Int(slot.offset) - pageOffset)).assumingMemoryBound(to: UInt64.self)
    }

    deinit { munmap(page, pageSize) }

    func load() -> AckSlotWord { AckSlotWord(rawValue: its_atomic_load_u64(word)) }

    /// Replaces `from` with `to`; false when the word held something else.
    func swap(_ from: AckSlotWord, _ to: AckSlotWord) -> Bool {
        var expected = from.rawValue
        return its_atomic_cas_u64(word, &expected, to.rawValue) != 0
    }

    /// Writes `word` whatever the slot holds (a server that breaks the protocol).
    func store(_ word: AckSlotWord) {
        var expected = its_atomic_load_u64(self.word)
        while its_atomic_cas_u64(self.word, &expected, word.rawValue) == 0 {}
    }

    /// Deliver: ARMED becomes DELIVERED with `intid`, `more` kept; false when the slot is not ARMED.
    func deliver(_ intid: UInt32, priority: UInt8 = 0xA0) -> Bool {
        let found = load()
        guard found.state == .armed else { return false }
        let delivered = AckSlotWord.delivered(intid: intid, priority: priority)
        return swap(found, found.more ? delivered.withMore : delivered)
    }
}

/// `AcknowledgeSlots` and `AcknowledgeSlot` without a server: the file, the words the VMM writes, and
/// what it finds after the server's changes, `more` and races included (PROTOCOL.md, 6.16b).
@Suite struct AcknowledgeSlotTests {
    static func lpi(_ intid: UInt32, _ priority: UInt8 = 0xA0) -> PendingLPI {
        PendingLPI(intid: Wire.INTID(intid), priority: priority, enabled: true)
    }

    @Test func theFileIsSealedSizedAndIdle() throws {
        let slots = try AcknowledgeSlots(count: 70)
        let seals = its_get_seals(slots.descriptor)
        #expect(seals == its_seal_shrink() | its_seal_grow() | its_seal_seal())
        var status = stat()
        #expect(fstat(slots.descriptor, &status) == 0)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        #expect(Int(status.st_size) >= 70 * 64 && Int(status.st_size) % page == 0)
        #expect(ftruncate(slots.descriptor, 0) != 0, "sealed against shrinking")
        #expect((0 ..< 70).map { slots[$0].offset } == (0 ..< 70).map { UInt64($0 * 64) })
        #expect((0 ..< 70).allSatisfy { slots[$0].load() == .idle })
    }

    @Test func armWritesTheArmedWordTheServerSees() throws {
        let slots = try AcknowledgeSlots(count: 2)
        var slot = slots[1]
        let server = SlotServerSide(slot)
        #expect(try slot.arm(priorityMask: 0xF0) == .init(lpi: nil, mustDrain: false))
        #expect(server.load() == .armed(priorityMask: 0xF0))
        #expect(slot.priorityMask == 0xF0)
        #expect(slots[0].load() == .idle, "the other slot is untouched")
    }

    @Test func takeReturnsTheDeliveredLPIAndArmsAgain() throws {
        let slots = try AcknowledgeSlots(count: 1)
        var slot = slots[0]
        let server = SlotServerSide(slot)
        _ = try slot.arm(priorityMask: 0xF0)
        #expect(try slot.take() == .init(lpi: nil, mustDrain: false), "nothing delivered yet")
        #expect(server.deliver(8193, priority: 0x80))
        #expect(try slot.take() == .init(lpi: Self.lpi(8193, 0x80), mustDrain: false))
        #expect(server.load() == .armed(priorityMask: 0xF0))
        #expect(try slot.take() == .init(lpi: nil, mustDrain: false), "taken once only")
    }

    /// `more` on a DELIVERED, an ARMED and an IDLE word: each change reports it and clears it.
    @Test func moreCallsForADrainAndIsCleared() throws {
        let slots = try AcknowledgeSlots(count: 1)
        var slot = slots[0]
        let server = SlotServerSide(slot)
        _ = try slot.arm()
        #expect(server.deliver(8192))
        #expect(server.swap(.delivered(intid: 8192, priority: 0xA0), AckSlotWord.delivered(intid: 8192, priority: 0xA0).withMore))
        #expect(try slot.take() == .init(lpi: Self.lpi(8192), mustDrain: true))
        #expect(server.load() == .armed(priorityMask: 0xFF))

        #expect(server.swap(.armed(priorityMask: 0xFF), AckSlotWord.armed(priorityMask: 0xFF).withMore))
        #expect(try slot.take() == .init(lpi: nil, mustDrain: true))
        #expect(server.load() == .armed(priorityMask: 0xFF))

        #expect(try slot.disarm() == .init(lpi: nil, mustDrain: false))
        #expect(server.swap(.idle, AckSlotWord.idle.withMore))
        #expect(try slot.disarm() == .init(lpi: nil, mustDrain: true))
        #expect(server.load() == .idle)
    }

    /// A mask that admits more than the last one calls for a drain; a narrower one does not.
    @Test func aWiderMaskCallsForADrain() throws {
        let slots = try AcknowledgeSlots(count: 1)
        var slot = slots[0]
        #expect(try slot.arm(priorityMask: 0x80).mustDrain == false)
        #expect(try slot.arm(priorityMask: 0xC0).mustDrain == true)
        #expect(try slot.arm(priorityMask: 0xC0).mustDrain == false)
        #expect(try slot.arm(priorityMask: 0x40).mustDrain == false)
        _ = try slot.disarm()
        #expect(try slot.arm(priorityMask: 0xFF).mustDrain == true, "wider than the last mask, across IDLE")
    }

    /// Disarm loses no LPI: one delivered before it is returned.
    @Test func disarmReturnsAnLPIDeliveredFirst() throws {
        let slots = try AcknowledgeSlots(count: 1)
        var slot = slots[0]
        let server = SlotServerSide(slot)
        _ = try slot.arm()
        #expect(server.deliver(8200))
        #expect(try slot.disarm() == .init(lpi: Self.lpi(8200), mustDrain: false))
        #expect(server.load() == .idle)
        #expect(!server.deliver(8201), "the server does not deliver into an IDLE slot")
    }

    @Test(arguments: [UInt64(1) << 40, 1 << 62, 3 << 56, AckSlotWord.armed(priorityMask: 0xFF).rawValue | 8192])
    func anInvalidWordIsAViolation(raw: UInt64) throws {
        let slots = try AcknowledgeSlots(count: 1)
        var slot = slots[0]
        SlotServerSide(slot).store(AckSlotWord(rawValue: raw))
        #expect {
            _ = try slot.take()
        } throws: { error in
            guard case .protocolViolation = error as? ITSClientError else { return false }
            return true
        }
        #expect(slot.load().rawValue == raw, "left as it was")
    }

    /// The server delivers 1 ... n as fast as the slot is armed and sets `more` now and then, racing
    /// the takes: every swap that loses reloads and plans again, so each LPI is taken once, in order,
    /// and each `more` the server set is reported once.
    @Test func racingTheServerLosesNothing() throws {
        let n: UInt32 = 20_000
        let slots = try AcknowledgeSlots(count: 1)
        var slot = slots[0]
        let server = SlotServerSide(slot)
        let moreSets = ManagedCounter()
        let done = DispatchSemaphore(value: 0)
        _ = try slot.arm()
        Thread {
            for intid in 1 ... n {
                while !server.deliver(intid) {}
                if intid % 3 == 0 {
                    let found = server.load()
                    if !found.more && server.swap(found, found.withMore) { moreSets.add() }
                }
            }
            done.signal()
        }.start()
        var taken: [UInt32] = []
        var drains = 0
        while taken.count < Int(n) {
            let found = try slot.take()
            if let lpi = found.lpi { taken.append(lpi.intid.rawValue) }
            if found.mustDrain { drains += 1 }
        }
        done.wait()
        let last = try slot.take()
        #expect(last.lpi == nil)
        if last.mustDrain { drains += 1 }
        #expect(taken == Array(1 ... n))
        #expect(drains == moreSets.value)
        #expect(moreSets.value > 0)
    }
}

/// A counter one thread adds to and another reads after a semaphore.
final class ManagedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

import CITSSupport
import Glibc
import ITSWire

/// The acknowledge slots of a VM's vCPUs (Protocol/PROTOCOL.md, 6.16b; added in 1.2): one memfd,
/// sealed against shrinking, growing and further seals, that holds a slot word per vCPU a cache line
/// apart, mapped shared into this process. `ITSVCPU.setAcknowledgeSlot` hands a slot to the server,
/// which maps the same page and delivers the vCPU's LPIs into it.
///
/// ```swift
/// let slots = try AcknowledgeSlots(count: 2)
/// var slot = slots[0]
/// let wake = try vm.vcpu(0).makeNotifier()        // the eventfd the slot's changes are told through
/// _ = try slot.arm(priorityMask: 0xFF)            // before SET: nothing pending is missed
/// try vm.vcpu(0).setAcknowledgeSlot(slot)
/// // The vCPU thread, after poll(wake) and ITSVCPU.drain(wake):
/// try cpu.takeAcknowledged(from: &slot) { lpi in deliver(lpi.intid) }
/// ```
///
/// The object is `Sendable`: it only holds the descriptor and the mapping, and every access to a
/// word is an atomic load or compare-and-swap. The mapping and the descriptor last as long as the
/// object, which every `AcknowledgeSlot` keeps alive; the server keeps its own mapping.
public final class AcknowledgeSlots: Sendable {
    /// Bytes from one slot to the next: a cache line each, so that no two vCPUs share one.
    public static let stride = 64
    /// How many slots the file holds.
    public let count: Int
    /// The memfd, with `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`. It is closed with the object.
    public let descriptor: Int32
    /// The mapped length: `count` slots rounded up to whole pages.
    let length: Int
    // SAFETY: `length` bytes mapped MAP_SHARED, readable and writable, from init until deinit. Slot
    // words lie at multiples of `stride` below `count * stride`, so each is 8-byte aligned and inside
    // the mapping, and both sides touch them only with 8-byte atomics.
    nonisolated(unsafe) let base: UnsafeMutableRawPointer

    /// Makes the memfd for `count` slots (at least 1), sizes and seals it, maps it and sets every
    /// slot IDLE (the file starts zeroed).
    /// - Context: any thread.
    public init(count: Int, name: String = "its-ack-slots") throws(ITSClientError) {
        precondition(count >= 1, "an acknowledge slot file holds at least one slot")
        let page = sysconf(Int32(_SC_PAGESIZE))
        let length = (count * Self.stride + page - 1) / page * page
        let fd = try ITSVM.makeSealedMemoryFile(size: length, name: name,
                                                seals: its_seal_shrink() | its_seal_grow() | its_seal_seal())
        guard let mapped = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), mapped != MAP_FAILED else {
            let code = errno
            close(fd)
            throw .system(call: "mmap", errno: code)
        }
        self.count = count
        self.length = length
        descriptor = fd
        base = mapped
    }

    deinit {
        munmap(base, length)
        close(descriptor)
    }

    /// Slot `index` (0 ..< `count`), unarmed as far as this handle knows (its mask 0xFF).
    /// - Context: any thread.
    public subscript(index: Int) -> AcknowledgeSlot {
        precondition(index >= 0 && index < count, "slot \(index) is outside 0 ..< \(count)")
        return AcknowledgeSlot(file: self, offset: UInt64(index * Self.stride))
    }
}

/// One vCPU's acknowledge slot: the word at `offset` in its file (PROTOCOL.md, 6.16b). The VMM's
/// three changes, arm, take and disarm, are compare-and-swaps that retry when the server changed the
/// word in between; each reports what the word held (`Found`).
///
/// A slot value belongs to the vCPU thread that takes from it. Copies share the word but not
/// `priorityMask`, which this value uses to tell when a wider mask calls for a drain.
public struct AcknowledgeSlot: Sendable {
    /// The file that holds the slot; the slot keeps it (and its mapping) alive.
    public let file: AcknowledgeSlots
    /// Where the word lies in the file: what SET_ACK_SLOT sends.
    public let offset: UInt64
    /// The mask this value last armed the slot with; 0xFF before it armed it, which is what the
    /// server assumes before it sees an ARMED word.
    public private(set) var priorityMask: UInt8 = 0xFF

    init(file: AcknowledgeSlots, offset: UInt64) {
        self.file = file
        self.offset = offset
    }

    /// What a change found in the slot.
    public struct Found: Hashable, Sendable {
        /// The LPI the server delivered into the slot, already acknowledged (it is no longer pending);
        /// nil when the slot held none.
        public var lpi: PendingLPI?
        /// LPIs may be deliverable that the slot will not take before the next operation on the vCPU:
        /// the word had `more` set, or the new mask admits more than the last one. Take them with ACK
        /// until none is left (`ITSVCPU.takeAcknowledged` does).
        public var mustDrain: Bool

        public init(lpi: PendingLPI?, mustDrain: Bool) {
            self.lpi = lpi
            self.mustDrain = mustDrain
        }
    }

    /// The word as it is now (an atomic load).
    /// - Context: any thread.
    public func load() -> AckSlotWord {
        AckSlotWord(rawValue: UInt64(littleEndian: its_atomic_load_u64(word)))
    }

    /// Arm: the slot becomes ARMED with `priorityMask` (as ICC_PMR_EL1, the same as ACK), so that the
    /// server delivers the next LPI whose priority is numerically lower. A slot that holds a delivered
    /// LPI is taken on the way, and the LPI returned. Clears `more`.
    /// - Throws: `.protocolViolation` when the slot holds a word no side may write.
    /// - Context: the vCPU thread that owns this value; never blocks.
    public mutating func arm(priorityMask: UInt8 = 0xFF) throws(ITSClientError) -> Found {
        try change(to: .armed(priorityMask: priorityMask), arming: priorityMask)
    }

    /// Take: the delivered LPI, if the slot holds one, and the slot armed again with the same mask.
    /// A slot that is ARMED and has no `more` is left as it is; an IDLE one is armed (after `disarm()`,
    /// take only to arm again).
    /// - Throws: `.protocolViolation` when the slot holds a word no side may write.
    /// - Context: the vCPU thread that owns this value; never blocks.
    public mutating func take() throws(ITSClientError) -> Found {
        try change(to: .armed(priorityMask: priorityMask), arming: priorityMask)
    }

    /// Disarm: the slot becomes IDLE, so the server delivers nothing more into it. An LPI the server
    /// delivered first is returned: it has been acknowledged and is the caller's.
    /// - Throws: `.protocolViolation` when the slot holds a word no side may write.
    /// - Context: the vCPU thread that owns this value; never blocks.
    public mutating func disarm() throws(ITSClientError) -> Found {
        try change(to: .idle, arming: nil)
    }

    /// What replacing `found` with `target` means, and whether to write at all (nil: the word is
    /// already `target`). nil altogether for an invalid word. `arming` is the mask `target` arms
    /// with, compared with `lastMask`, the one armed before.
    static func plan(found: AckSlotWord, target: AckSlotWord, arming: UInt8?,
                     lastMask: UInt8) -> (write: AckSlotWord?, found: Found)? {
        guard let state = found.state else { return nil }
        let widened = arming.map { $0 > lastMask } ?? false
        guard found != target else { return (nil, Found(lpi: nil, mustDrain: widened)) }
        let lpi = state == .delivered
            ? PendingLPI(intid: Wire.INTID(found.intid), priority: found.priority, enabled: true) : nil
        return (target, Found(lpi: lpi, mustDrain: found.more || widened))
    }

    /// The compare-and-swap loop of the three changes.
    private mutating func change(to target: AckSlotWord, arming: UInt8?) throws(ITSClientError) -> Found {
        let word = word
        var expected = its_atomic_load_u64(word)
        while true {
            let found = AckSlotWord(rawValue: UInt64(littleEndian: expected))
            guard let (write, result) = Self.plan(found: found, target: target, arming: arming, lastMask: priorityMask)
            else { throw .protocolViolation("acknowledge slot at offset \(offset) holds \(found)") }
            guard let write else { return result }
            // On failure the swap leaves in `expected` what the server wrote meanwhile; plan again.
            if its_atomic_cas_u64(word, &expected, write.rawValue.littleEndian) != 0 {
                if let arming { priorityMask = arming }
                return result
            }
        }
    }

    /// The slot word in this process's mapping.
    var word: UnsafeMutablePointer<UInt64> {
        // SAFETY: `offset` is a multiple of `AcknowledgeSlots.stride` below `count * stride` (the
        // subscript checks the index), so the word is 8-byte aligned and inside the mapping, which
        // `file` keeps alive as long as this value.
        (file.base + Int(offset)).assumingMemoryBound(to: UInt64.self)
    }
}

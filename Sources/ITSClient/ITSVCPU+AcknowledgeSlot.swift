import ITSWire

/// SET_ACK_SLOT and CLEAR_ACK_SLOT (Protocol/PROTOCOL.md, 6.16b; added in 1.2): the server
/// acknowledges the vCPU's next deliverable LPI into an armed slot in shared memory and writes the
/// notify eventfd, so a vCPU thread that waits on the eventfd takes the LPI without an ACK round trip.
///
/// ```swift
/// let slots = try AcknowledgeSlots(count: 1)
/// var slot = slots[0]
/// let wake = try cpu.makeNotifier()              // the eventfd the slot's changes are told through
/// _ = try slot.arm()
/// try cpu.setAcknowledgeSlot(slot)
/// // The vCPU thread, each time `wake` polls readable:
/// _ = ITSVCPU.drain(wake)                          // read the eventfd first, then the slot
/// try cpu.takeAcknowledged(from: &slot) { lpi in deliver(lpi.intid) }
/// ```
extension ITSVCPU {
    /// SET_ACK_SLOT: gives the server `slot` for this vCPU, replacing any earlier one. The server maps
    /// the slot's page from the file's descriptor and keeps the mapping, not the descriptor; it looks
    /// at the slot at once, so arm the slot first and nothing already pending waits for the next MSI.
    /// - Throws: `.server` with BAD_FD (the detail says why: 1 not mappable, 2 not sealed against
    ///   shrinking, 3 too short) or NO_SUCH_VCPU; `.versionNotAgreed` when HELLO agreed 1.0 or 1.1.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func setAcknowledgeSlot(_ slot: AcknowledgeSlot) throws(ITSClientError) {
        try vm.connection.requireMinor(2, for: .setAckSlot)
        _ = try vm.connection.call(.setAckSlot(vm.id, index, offset: slot.offset), fds: [slot.file.descriptor])
    }

    /// CLEAR_ACK_SLOT: the server drops this vCPU's slot and delivers nothing more into it. A vCPU
    /// without a slot is left as it is. An LPI delivered before the clear stays in the slot, taken.
    /// - Throws: `.versionNotAgreed` when HELLO agreed 1.0 or 1.1.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func clearAcknowledgeSlot() throws(ITSClientError) {
        try vm.connection.requireMinor(2, for: .clearAckSlot)
        _ = try vm.connection.call(.clearAckSlot(vm.id, index))
    }

    /// Takes what `slot` holds and, when the slot says more may be deliverable, drains with ACK (at
    /// the slot's mask) until a reply says none is left (``acknowledgeAll(priorityMask:_:)``), as
    /// section 6.16b requires; then looks at the slot again, since each ACK lets the server deliver
    /// into it. Calls `body` with each LPI, in the order taken,
    /// and returns how many. The slot stays armed with its mask.
    /// - Throws: what `acknowledge` throws; `.protocolViolation` for an invalid slot word.
    /// - Context: the thread that owns the connection and `slot`; blocks while it drains.
    @discardableResult
    public func takeAcknowledged(from slot: inout AcknowledgeSlot,
                                 _ body: (PendingLPI) -> Void) throws(ITSClientError) -> Int {
        var taken = 0
        while true {
            let found = try slot.take()
            if let lpi = found.lpi {
                body(lpi)
                taken += 1
            }
            guard found.mustDrain else { return taken }
            taken += try acknowledgeAll(priorityMask: slot.priorityMask, body)
        }
    }
}

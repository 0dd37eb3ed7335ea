import ITSWire

/// What ACK or WAIT_ACK returned, with whether to ask again (Protocol/PROTOCOL.md 6.16, `more`,
/// added in 1.2).
public struct Acknowledgement: Hashable, Sendable {
    /// The LPI acknowledged; nil when there was none (INTID 1023).
    public var lpi: PendingLPI?
    /// Whether another ACK with the same mask may take an LPI now. On a connection that agreed 1.2
    /// or later this is the reply's `more` bit: false means the vCPU had nothing left above the mask,
    /// so the next LPI raises a new notification (section 5). On 1.0 and 1.1 the server does not
    /// say, and this is true whenever an LPI was taken: the caller asks until one comes back nil.
    public var more: Bool

    @inlinable
    public init(lpi: PendingLPI?, more: Bool) {
        self.lpi = lpi
        self.more = more
    }

    /// The reply's LPI and `more` bit as the connection that received them may read them.
    init(_ lpi: PendingLPI, more: Bool, agreedMinor: UInt16) {
        self.lpi = lpi.intid == .spurious ? nil : lpi
        // A 1023 reply has nothing after it whatever its bit says (PROTOCOL.md 6.16): a server that
        // set it could otherwise keep a drain asking forever.
        self.more = self.lpi != nil && (agreedMinor >= 2 ? more : true)
    }
}

/// ACK and WAIT_ACK with their `more` bit: a vCPU thread woken by its notify eventfd takes what is
/// deliverable and stops at the reply that says nothing is left, without the round trip of a last
/// ACK that only learns "none".
///
/// ```swift
/// let cpu = vm.vcpu(0)
/// // Each time the notify eventfd polls readable:
/// _ = ITSVCPU.drain(wake)
/// try cpu.acknowledgeAll { lpi in deliver(lpi.intid) }
/// ```
extension ITSVCPU {
    /// ACK, as ``acknowledge(priorityMask:)``, with the reply's `more` (``Acknowledgement/more``).
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func acknowledgeReportingMore(priorityMask: UInt8 = 0xFF) throws(ITSClientError) -> Acknowledgement {
        let reply = try vm.connection.call(.ack(vm.id, index, priorityMask: priorityMask))
        guard case .ackReply(let lpi, let more) = reply else { throw .unexpectedReply(request: .ack, reply: reply.opcode) }
        return Acknowledgement(lpi, more: more, agreedMinor: vm.connection.agreed.minor)
    }

    /// WAIT_ACK, as ``waitAcknowledge(priorityMask:timeout:)``, with the reply's `more`
    /// (``Acknowledgement/more``; false when the wait ended without an LPI).
    /// - Throws: as ``waitAcknowledge(priorityMask:timeout:)``.
    /// - Context: the thread that owns the connection; blocks until the wait ends.
    public func waitAcknowledgeReportingMore(priorityMask: UInt8 = 0xFF,
                                             timeout: Duration?) throws(ITSClientError) -> Acknowledgement
    {
        let connection = vm.connection
        try connection.requireMinor(1, for: .waitAck)
        let microseconds = Self.timeoutMicroseconds(timeout)
        let id = try connection.send(.waitAck(vm.id, index, priorityMask: priorityMask,
                                              timeoutMicroseconds: microseconds))
        let reply = try connection.awaitReply(id, within: Self.replyTimeout(waiting: microseconds,
                                                                           reply: connection.replyTimeout))
        guard case .waitAckReply(let lpi, let more) = reply else {
            throw .unexpectedReply(request: .waitAck, reply: reply.opcode)
        }
        return Acknowledgement(lpi, more: more, agreedMinor: connection.agreed.minor)
    }

    /// ACKs with `priorityMask` until a reply says nothing more is deliverable, calling `body` with each
    /// LPI in the order taken; returns how many. On 1.2 the last ACK is the one that took the last LPI;
    /// on 1.0 and 1.1 it is one that returned none.
    /// - Context: the thread that owns the connection; blocks while it takes.
    @discardableResult
    public func acknowledgeAll(priorityMask: UInt8 = 0xFF, _ body: (PendingLPI) -> Void) throws(ITSClientError) -> Int {
        var taken = 0
        while true {
            let reply = try acknowledgeReportingMore(priorityMask: priorityMask)
            if let lpi = reply.lpi {
                body(lpi)
                taken += 1
            }
            guard reply.more else { return taken }
        }
    }
}

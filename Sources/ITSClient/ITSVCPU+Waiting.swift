import ITSWire

/// WAIT_ACK and WAKE (Protocol/PROTOCOL.md, 6.16a; added in 1.1): a vCPU thread whose guest executed
/// WFI waits on its own connection, and the next deliverable LPI arrives as the reply, already
/// acknowledged, without an eventfd wakeup and an ACK round trip in between.
///
/// ```swift
/// let waiter = try ITSConnection(path: socket)        // one connection per waiting vCPU thread
/// let cpu = try waiter.attachVM(vm, token: token).vcpu(0)
/// while let lpi = try cpu.waitAcknowledge(timeout: nil) { deliver(lpi.intid) }   // nil: woken
/// ```
extension ITSVCPU {
    /// WAIT_ACK: takes the highest-priority deliverable LPI whose priority is numerically below
    /// `priorityMask` (as ICC_PMR_EL1), waiting for one up to `timeout` (nil: no limit; zero: answer at
    /// once, as `acknowledge`). Returns nil when the wait ended without one: the timeout passed, a
    /// `wake()` came (or one was latched before), another WAIT_ACK for this vCPU took over, or the
    /// server shut down. `timeout` travels in whole microseconds, rounded up, at most 0xFFFFFFFE.
    ///
    /// The reply keeps request order, so a waiting call holds the replies to everything sent after it
    /// on this connection: give the waiting thread a connection of its own. The reply may take
    /// `timeout` plus the connection's `replyTimeout` (no limit when either is nil).
    /// - Throws: `.server` with NO_SUCH_VM when the VM is destroyed while waiting; `.timedOut` as above;
    ///   `.versionNotAgreed` when HELLO agreed 1.0.
    /// - Context: the thread that owns the connection; blocks until the wait ends.
    public func waitAcknowledge(priorityMask: UInt8 = 0xFF, timeout: Duration?) throws(ITSClientError) -> PendingLPI? {
        try waitAcknowledgeReportingMore(priorityMask: priorityMask, timeout: timeout).lpi
    }

    /// WAKE: ends this vCPU's waiting `waitAcknowledge` (from any connection of the VM), which returns
    /// nil; when none waits, the next one that finds nothing deliverable returns nil at once.
    /// - Throws: `.versionNotAgreed` when HELLO agreed 1.0.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func wake() throws(ITSClientError) {
        try vm.connection.requireMinor(1, for: .wake)
        _ = try vm.connection.call(.wake(vm.id, index))
    }

    /// The wire's `timeout_us`: nil is ``Message/noTimeout``; a duration is rounded up to whole
    /// microseconds and clamped below ``Message/noTimeout``.
    static func timeoutMicroseconds(_ timeout: Duration?) -> UInt32 {
        guard let timeout else { return Message.noTimeout }
        let nanoseconds = ITSConnection.nanoseconds(timeout)
        let microseconds = nanoseconds / 1000 + (nanoseconds % 1000 == 0 ? 0 : 1)
        return UInt32(Swift.min(microseconds, UInt64(Message.noTimeout - 1)))
    }

    /// How long the WAIT_ACK reply may take: the wait plus the reply timeout, or no limit when either has none.
    static func replyTimeout(waiting microseconds: UInt32, reply: Duration?) -> Duration? {
        guard microseconds != Message.noTimeout, let reply else { return nil }
        return .microseconds(Int64(microseconds)) + reply
    }
}

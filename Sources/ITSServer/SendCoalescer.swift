/// Sends every connection's queued replies once per loop iteration, just before the loop polls,
/// instead of one `send` per reply: a window of pipelined requests answered in one read costs one
/// syscall, and replies made in one iteration — an INJECT's and the WAIT_ACK its MSI answered —
/// leave together. Connections flush in the reverse of the order they queued in, so a reply that
/// completes deferred work (made later in the iteration, by a lane batch the loop ran) is not
/// held behind the replies of the read that caused it; each connection's own order never changes.
/// - Context: the loop thread.
public final class SendCoalescer {
    private var waiting: [Connection] = []
    private var flushing: [Connection] = []
    private var handle: PhaseHandle?

    public init(loop: EventLoop) {
        handle = PhaseHandle(loop: loop, phase: .prepare) { [unowned self] in self.flush() }
    }

    /// `connection` has output to send before the loop next polls.
    func schedule(_ connection: Connection) {
        if waiting.isEmpty { handle?.start() }
        waiting.append(connection)
    }

    private func flush() {
        handle?.stop()
        swap(&waiting, &flushing)
        // Sending can close a connection, whose close may queue more output elsewhere: that goes
        // to `waiting` and restarts the handle for the next iteration.
        for connection in flushing.reversed() { connection.sendScheduledOutput() }
        flushing.removeAll(keepingCapacity: true)
    }

    /// Stops flushing; what is still queued is sent by the connections' own close or dropped.
    public func close() {
        handle?.close()
        handle = nil
        waiting.removeAll()
    }
}

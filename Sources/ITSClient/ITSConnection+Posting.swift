import ITSWire

/// The fast path: MSIs without replies, encoded straight into the connection's outbox
/// (`InjectEncoding`) and written in large `send` calls. Nothing here allocates once the outbox has
/// its capacity, which the connection reserves after HELLO.
extension ITSConnection {
    /// Queues one MSI into an INJECT_BATCH for `vm` sent with NO_REPLY. The batch is closed and a new
    /// one begun when it is full or names another VM; the outbox is written once it holds a frame's
    /// worth of bytes, by `flush()`, and before any other request. MSIs still in the outbox when the
    /// connection is released are dropped: end a burst with `flush()` or `sync()`.
    /// - Context: the thread that owns the connection; writes to the socket at most, never waits for a reply.
    public func post(vm: VMID, deviceID: Wire.DeviceID, eventID: Wire.EventID) throws(ITSClientError) {
        if let batch = openBatch, batch.vm != vm || batch.count == batchCapacity {
            closeBatch()
            if outbox.count >= outboxFlushThreshold { try writeOutbox() }
        }
        if openBatch == nil {
            let start = InjectEncoding.beginBatch(vm: vm, id: takeID(), noReply: true, to: &outbox)
            openBatch = (start, vm, 0)
        }
        InjectEncoding.appendBatchEntry(deviceID: deviceID, eventID: eventID, to: &outbox)
        openBatch!.count += 1
    }

    /// Writes one INJECT with NO_REPLY at once (after anything posted before it): the lowest latency
    /// for a single MSI, one `send` and no allocation.
    /// - Context: the thread that owns the connection; writes to the socket at most, never waits for a reply.
    public func injectNow(vm: VMID, deviceID: Wire.DeviceID, eventID: Wire.EventID) throws(ITSClientError) {
        closeBatch()
        InjectEncoding.appendInject(vm: vm, deviceID: deviceID, eventID: eventID, id: takeID(), noReply: true,
                                    to: &outbox)
        try writeOutbox()
    }

    /// Writes every posted MSI to the socket. It does not wait for the server: `sync()` does.
    /// - Context: the thread that owns the connection; writes to the socket at most, never waits for a reply.
    public func flush() throws(ITSClientError) {
        closeBatch()
        if !outbox.isEmpty { try writeOutbox() }
    }

    /// Finishes the open INJECT_BATCH, if any, in the outbox.
    func closeBatch() {
        guard let batch = openBatch else { return }
        InjectEncoding.finishBatch(at: batch.start, in: &outbox)
        openBatch = nil
    }

    /// Sends the outbox whole and empties it, keeping its capacity.
    private func writeOutbox() throws(ITSClientError) {
        let result: Result<Void, ITSClientError> = outbox.withUnsafeBytes { bytes in
            Result { () throws(ITSClientError) in try socket.send(bytes) }
        }
        outbox.removeAll(keepingCapacity: true)
        try result.get()
    }
}

import CITSSupport
import Glibc
import ITSWire

/// The MSI vectors of one device: one DeviceID, one vector per EventID. The shape VMMs use for
/// MSI-X (an interrupt source group): trigger a vector, hand a vector's eventfd to a vhost-user
/// back-end, mask and unmask, and apply many changes in one round trip.
///
/// ```swift
/// let queues = vm.vectorGroup(deviceID: Wire.DeviceID(0x10))
/// let callFD = try queues.notifier(0)         // give this to the back-end as its call eventfd
/// try queues.trigger(1)                       // or signal a vector directly
/// queues.update(0, masked: true)              // MSI-X table writes, applied together:
/// queues.update(1, masked: true)
/// try queues.commit()
/// ```
///
/// Eventfds made by `notifier` belong to the group: `unbind` and `close()` close them.
public final class MSIVectorGroup {
    public let vm: ITSVM
    public let deviceID: Wire.DeviceID
    /// Eventfds this group made and bound, by EventID.
    public private(set) var notifiers: [UInt32: Int32] = [:]
    private var updates: [Message] = []

    init(vm: ITSVM, deviceID: Wire.DeviceID) {
        self.vm = vm
        self.deviceID = deviceID
    }

    deinit { closeNotifiers() }

    private func key(_ event: UInt32) -> IRQFDKey {
        IRQFDKey(vm: vm.id, deviceID: deviceID, eventID: Wire.EventID(event))
    }

    /// Signals vector `event` at once, without a reply (INJECT with NO_REPLY): one `send`, no
    /// allocation. A blocked translation is only counted by the server (and reported in
    /// `deferredErrors` when `ERROR_REPORTS` was agreed).
    /// - Context: the thread that owns the connection; writes to the socket at most, never waits for a reply.
    public func trigger(_ event: UInt32) throws(ITSClientError) {
        try vm.connection.injectNow(vm: vm.id, deviceID: deviceID, eventID: Wire.EventID(event))
    }

    /// Signals several vectors in one INJECT_BATCH without a reply, as a device completing several
    /// queues does; written when the batch fills or at the next `flush()`.
    /// - Context: the thread that owns the connection; writes to the socket at most, never waits for a reply.
    public func trigger(_ events: some Sequence<UInt32>) throws(ITSClientError) {
        for event in events {
            try vm.connection.post(vm: vm.id, deviceID: deviceID, eventID: Wire.EventID(event))
        }
    }

    /// Signals vector `event` and waits: whether it became an LPI (false: blocked, nothing mapped).
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func triggerAndWait(_ event: UInt32) throws(ITSClientError) -> Bool {
        try vm.inject(deviceID: deviceID, eventID: Wire.EventID(event))
    }

    /// BIND_IRQFD: every signal on `eventfd` becomes this vector's MSI. The server keeps its own copy of
    /// the descriptor; the caller keeps (and closes) its own. Binding a bound vector replaces the
    /// binding. With `masked`, signals are latched until `unmask`.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func bind(_ event: UInt32, eventfd: Int32, masked: Bool = false) throws(ITSClientError) {
        _ = try vm.connection.call(.bindIRQFD(key(event), startMasked: masked), fds: [eventfd])
    }

    /// The eventfd of vector `event`: made and bound on first use, then the same descriptor. Hand it
    /// to a device back-end as its interrupt (vhost-user call) eventfd.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func notifier(_ event: UInt32, masked: Bool = false) throws(ITSClientError) -> Int32 {
        if let fd = notifiers[event] { return fd }
        let fd = its_eventfd(0, 1)
        guard fd >= 0 else { throw .system(call: "eventfd", errno: its_errno()) }
        do throws(ITSClientError) {
            try bind(event, eventfd: fd, masked: masked)
        } catch {
            close(fd)
            throw error
        }
        notifiers[event] = fd
        return fd
    }

    /// UNBIND_IRQFD: the server stops polling the vector's eventfd and closes its copy; a notifier the
    /// group made is closed too.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func unbind(_ event: UInt32) throws(ITSClientError) {
        _ = try vm.connection.call(.unbindIRQFD(key(event)))
        if let fd = notifiers.removeValue(forKey: event) { close(fd) }
    }

    /// MASK: signals on the vector's eventfd only latch its pending bit (MSI-X masking).
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func mask(_ event: UInt32) throws(ITSClientError) {
        _ = try vm.connection.call(.mask(key(event)))
    }

    /// UNMASK: clears the mask, and delivers the MSI once if a signal was latched while masked.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func unmask(_ event: UInt32) throws(ITSClientError) {
        _ = try vm.connection.call(.unmask(key(event)))
    }

    /// Queues a mask change of a bound vector, applied by `commit()`.
    /// - Context: the thread that owns the connection; no I/O.
    public func update(_ event: UInt32, masked: Bool) {
        updates.append(masked ? .mask(key(event)) : .unmask(key(event)))
    }

    /// Applies the queued changes, pipelined: one round trip per `max_in_flight` changes. Every change
    /// is attempted; the first failure is thrown afterwards.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func commit() throws(ITSClientError) {
        let pending = updates
        updates.removeAll()
        for result in try vm.connection.pipeline(pending) {
            if case .failure(let error) = result { throw .server(error) }
        }
    }

    /// Closes the eventfds this group made (the server keeps its bindings until `unbind` or the VM
    /// is destroyed).
    /// - Context: the thread that owns the connection; no I/O.
    public func closeNotifiers() {
        for fd in notifiers.values { close(fd) }
        notifiers.removeAll()
    }
}

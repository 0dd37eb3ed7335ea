import CITSSupport
import Glibc
import ITSWire

/// The vCPU side of the interrupt controller for one vCPU (Protocol/PROTOCOL.md, 6.14 and 6.16):
/// what a CPU interface reads from ICC_HPPIR1_EL1 and ICC_IAR1_EL1, and the wakeup that says when to
/// look. LPIs have no active state, so an acknowledge is the whole story: there is no EOI. A vCPU
/// thread can also wait in itsd for its next LPI (`waitAcknowledge`, `wake`: ITSVCPU+Waiting.swift, 6.16a).
///
/// ```swift
/// let cpu = vm.vcpu(0)
/// let wake = try cpu.makeNotifier()           // poll it; readable = an LPI became deliverable
/// try cpu.acknowledgeAll { lpi in deliver(lpi.intid) }   // until a reply says nothing more
/// ```
public struct ITSVCPU {
    public let vm: ITSVM
    public let index: Wire.VCPU

    /// SET_VCPU_NOTIFY: the server writes to `eventfd` when the vCPU goes from no deliverable LPI to
    /// one. Replaces any earlier eventfd; the server keeps its own copy.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func setNotifier(_ eventfd: Int32) throws(ITSClientError) {
        _ = try vm.connection.call(.setVCPUNotify(vm.id, index), fds: [eventfd])
    }

    /// Makes a non-blocking eventfd, sets it as the vCPU's notifier and returns it; the caller owns
    /// it and closes it.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func makeNotifier() throws(ITSClientError) -> Int32 {
        let fd = its_eventfd(0, 1)
        guard fd >= 0 else { throw .system(call: "eventfd", errno: its_errno()) }
        do throws(ITSClientError) {
            try setNotifier(fd)
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// CLEAR_VCPU_NOTIFY: the server drops and closes its eventfd.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func clearNotifier() throws(ITSClientError) {
        _ = try vm.connection.call(.clearVCPUNotify(vm.id, index))
    }

    /// HPPI: the highest-priority pending and enabled LPI, or nil; changes nothing.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func highestPriorityPending() throws(ITSClientError) -> PendingLPI? {
        let reply = try vm.connection.call(.hppi(vm.id, index))
        guard case .hppiReply(let lpi) = reply else { throw .unexpectedReply(request: .hppi, reply: reply.opcode) }
        return lpi.intid == .spurious ? nil : lpi
    }

    /// ACK: takes the highest-priority deliverable LPI if its priority is numerically below
    /// `priorityMask` (as ICC_PMR_EL1), clearing its pending bit; nil when there is none. To learn
    /// whether more is deliverable too, see ``acknowledgeReportingMore(priorityMask:)``.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func acknowledge(priorityMask: UInt8 = 0xFF) throws(ITSClientError) -> PendingLPI? {
        try acknowledgeReportingMore(priorityMask: priorityMask).lpi
    }

    /// PENDING: every pending LPI of the vCPU, enabled or not, in INTID order, fetched page by page
    /// (`pageSize` entries a page; 0 asks for as many as fit in a frame).
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func pending(pageSize: UInt32 = 0) throws(ITSClientError) -> [PendingLPI] {
        let fit = (vm.connection.agreed.limits.maxFrameLength - UInt32(Wire.headerLength) - 8) / 8
        // Asks for the count that fits rather than sending 0, which some servers answer with an empty page.
        let size = pageSize == 0 ? Swift.min(fit, 4096) : pageSize
        var all: [PendingLPI] = []
        var cursor: UInt32 = 0
        repeat {
            let reply = try vm.connection.call(.pending(vm.id, index, cursor: cursor, maxEntries: size))
            guard case .pendingReply(let page, let next) = reply else {
                throw .unexpectedReply(request: .pending, reply: reply.opcode)
            }
            all += page
            guard next == 0 || next > cursor else {
                throw .protocolViolation("PENDING cursor went back from \(cursor) to \(next)")
            }
            cursor = next
        } while cursor != 0
        return all
    }

    /// Reads and resets an eventfd's counter: how many signals arrived since the last read (0 if
    /// none; the descriptor must be non-blocking, as `makeNotifier` makes it).
    /// - Context: any thread.
    public static func drain(_ eventfd: Int32) -> UInt64 {
        var counter: UInt64 = 0
        return read(eventfd, &counter, 8) == 8 ? counter : 0
    }
}

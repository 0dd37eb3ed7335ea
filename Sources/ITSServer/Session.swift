import ITSWire

/// One client connection as the server tracks it: the handshake, what was agreed, and the replies
/// owed, which go out in request order (Protocol/PROTOCOL.md, 2 "Ordering and pipelining") even
/// when some are answered by a lane after later ones are ready.
/// - Context: the loop thread.
final class Session {
    let connection: Connection
    var hello: Hello?
    /// Events subscribed to, by VM (SUBSCRIBE).
    var subscriptions: [VMKey: EventMask] = [:]
    /// vCPUs with an EVENT_VCPU_NOTIFY sent and not yet followed by HPPI, ACK or PENDING: at
    /// most one is outstanding per vCPU (Protocol/PROTOCOL.md, 5).
    var notifyOutstanding: Set<VCPUSlot> = []
    /// The VM this session's last request found attached: requests mostly name the same VM. A
    /// connection leaves a VM only when it closes, so the entry is good until the VM is removed.
    var lastVM: ServerVM?
    /// The last event sequence number sent (events count from 1).
    private var eventSequence: UInt32 = 0

    struct VCPUSlot: Hashable {
        var vm: VMKey
        var vcpu: UInt16
    }

    /// The client sent HPPI, ACK, WAIT_ACK or PENDING for `vcpu` of `vm`: an EVENT_VCPU_NOTIFY may
    /// go out for it again (Protocol/PROTOCOL.md, 5). Most sessions subscribe to none, so the set
    /// is usually empty and nothing is hashed.
    func vcpuAsked(_ vm: VMKey, _ vcpu: UInt16) {
        guard !notifyOutstanding.isEmpty else { return }
        notifyOutstanding.remove(VCPUSlot(vm: vm, vcpu: vcpu))
    }

    /// Sends an event frame with the next sequence number.
    func sendEvent(_ message: Message) {
        eventSequence &+= 1
        connection.send(Frame(message, id: MessageID(rawValue: eventSequence)))
    }

    /// Lane work items queued for this connection's NO_REPLY requests (INJECT, INJECT_BATCH,
    /// MMIO_WRITE) that the lanes have not yet reached: at ``laneWorkLimit`` the connection stops
    /// reading until they do, so that a client cannot queue work to the lanes without bound.
    private(set) var laneWorkUnanswered = 0
    let laneWorkLimit: Int

    /// Replies owed, oldest first; nil until ready.
    private var slots: [(id: UInt64, frame: Frame?)] = []
    private var firstSlot: UInt64 = 0

    /// A Unix-socket peer whose uid is among the configuration's operators: ATTACH_VM with the
    /// all-zero token attaches it to any VM.
    let isOperator: Bool

    init(connection: Connection, laneWorkLimit: Int, isOperator: Bool) {
        self.connection = connection
        self.laneWorkLimit = laneWorkLimit
        self.isOperator = isOperator
    }

    var capabilities: Capabilities { hello?.capabilities ?? [] }
    var maxInFlight: Int { Int(hello?.limits.maxInFlight ?? 1) }
    /// Whether ACK and WAIT_ACK replies may carry flags bit 1, `more`: HELLO agreed 1.2 or later
    /// (Protocol/PROTOCOL.md 6.16).
    var reportsMore: Bool { (hello?.minor ?? 0) >= 2 }

    /// Reserves the next reply slot.
    func reserveSlot() -> UInt64 {
        let id = firstSlot + UInt64(slots.count)
        slots.append((id, nil))
        updateHold()
        return id
    }

    /// Fills a slot and sends every reply that is now at the head of the order.
    func fill(_ slot: UInt64, with frame: Frame) {
        guard slot >= firstSlot, Int(slot - firstSlot) < slots.count else { return }
        slots[Int(slot - firstSlot)].frame = frame
        var sent = 0
        while sent < slots.count, let ready = slots[sent].frame {
            connection.send(ready)
            sent += 1
        }
        if sent > 0 {
            slots.removeFirst(sent)
            firstSlot += UInt64(sent)
        }
        updateHold()
    }

    /// `count` more lane work items were queued for NO_REPLY requests. Returns true when that
    /// stops the connection's reading.
    func laneWorkQueued(_ count: Int) -> Bool {
        laneWorkUnanswered += count
        let holds = laneWorkUnanswered >= laneWorkLimit && !connection.holdsReading
        updateHold()
        return holds
    }

    /// The lanes have reached `count` of those items.
    func laneWorkDone(_ count: Int) {
        laneWorkUnanswered -= count
        updateHold()
    }

    /// The server is shutting down: no more requests are read from this connection.
    private(set) var draining = false

    func drain() {
        draining = true
        updateHold()
    }

    /// Every reply owed has been sent, as far as the socket took it.
    var owesNothing: Bool { slots.isEmpty && connection.pendingOutput == 0 }

    private func updateHold() {
        connection.holdsReading = draining || slots.count >= maxInFlight || laneWorkUnanswered >= laneWorkLimit
    }

    /// Answers a request at once, in order behind any reply still owed.
    func reply(_ frame: Frame) {
        guard slots.isEmpty else { return fill(reserveSlot(), with: frame) }
        // Nothing owed before it: out at once, without a slot whose reservation would raise the
        // in-flight hold (and so change the connection's poll interest) only to drop it again.
        connection.send(frame)
    }
}

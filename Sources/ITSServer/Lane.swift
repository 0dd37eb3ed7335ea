import CITSSupport
import Glibc
import CLibUV
import Histogram
import ITSModel
import ITSWire

/// The vCPU worker lanes: N threads, each with its own libuv loop, owning the redistributors of the
/// vCPUs assigned to it (vCPU n of every VM belongs to lane n % N). Everything about a vCPU's pending
/// state — set, clear, INV, acknowledge, HPPI, listings, its redistributor registers — runs there,
/// or, for a small batch arriving while the lane is idle, on the loop thread borrowing the lane's
/// ownership (``runIfIdle(_:onLane:)``): either way, by one thread at a time and in queue order.
public final class LaneGroup: Sendable {
    public let lanes: [LoopThread<LaneWork>]
    /// Each lane's state, touched only by the holder of the lane's ``LoopThread/ownership``.
    private let states: [LaneStateBox]
    /// Where lanes send replies and notifications: the loop thread's mailbox.
    public let replies: Mailbox<LoopWork>
    /// The most items a batch run on the loop thread may have: a larger batch goes to the lane, so
    /// that bulk work runs beside the loop rather than on it.
    public static let inlineBatchLimit = 64

    /// Starts `count` lanes that answer into `replies`.
    /// - Context: the loop thread (which owns `replies`).
    public init(count: Int, replies: Mailbox<LoopWork>) {
        precondition(count > 0, "at least one lane")
        self.replies = replies
        let states = (0 ..< count).map { _ in LaneStateBox() }
        self.states = states
        lanes = (0 ..< count).map { index in
            let ownership = Ownership()
            return LoopThread(name: "lane-\(index)", ownership: ownership) { loop in
                let state = LaneState(replies: replies, loop: loop, ownership: ownership)
                // Published before LoopThread.init returns (it waits for this set-up with acquire
                // ordering); read afterwards only by holders of the ownership.
                states[index].state = state
                return { batch in state.handle(&batch) }
            }
        }
    }

    /// The lane that owns `vcpu`.
    public func laneIndex(of vcpu: VCPUIndex) -> Int { Int(vcpu.rawValue) % lanes.count }

    /// Queues one item to the lane owning `vcpu`. - Context: any thread.
    public func submit(_ work: LaneWork, for vcpu: VCPUIndex) { lanes[laneIndex(of: vcpu)].submit(work) }

    /// Handles `batch` on the calling thread, leaving it empty, when lane `index` is idle — it holds
    /// no batch and nothing is queued to it — and the batch is small and has only items that need
    /// nothing of the lane's own loop (``LaneWork/canRunOffLane``). Returns false, leaving `batch`
    /// as it was, when the batch must be submitted instead. Saves an MSI the hop to the lane's
    /// thread: a wakeup, the largest part of its latency when the lane has nothing else to do.
    ///
    /// Order holds: the lane takes its queue and handles it holding its ownership, so when the
    /// ownership is free and the queue empty, everything queued before has been handled; the lane's
    /// replies go to the loop's mailbox either way, in the order they were made.
    /// - Context: the loop thread, the only thread that queues LPI work to lanes.
    public func runIfIdle(_ batch: inout [LaneWork], onLane index: Int) -> Bool {
        guard batch.count <= Self.inlineBatchLimit, batch.allSatisfy(\.canRunOffLane),
              let ownership = lanes[index].ownership, ownership.tryAcquire() else { return false }
        defer { ownership.release() }
        guard lanes[index].queue.isEmpty, let state = states[index].state else { return false }
        state.postsLocally = true
        state.handle(&batch)
        state.postsLocally = false
        batch.removeAll(keepingCapacity: true)
        return true
    }

    /// Processes what is queued on every lane and stops them. - Context: the loop thread.
    public func stop() { lanes.forEach { $0.stop() } }
}

/// Holds a lane's state for ``LaneGroup``, which lends it to the loop thread.
final class LaneStateBox: @unchecked Sendable {
    // @unchecked Sendable: written once on the lane's thread before LaneGroup.init returns (see
    // there), then read only by the holder of the lane's ownership.
    var state: LaneState?
}

extension LaneWork {
    /// Whether a thread other than the lane's may handle this item while holding the lane's
    /// ownership: it does not start the lane's background timer (INVALL, redistributor writes,
    /// attaching restored state may) or read the lane's loop (statistics).
    var canRunOffLane: Bool {
        switch self {
        case .clock, .barrier, .detach, .endWait: true
        case .lpi(_, _, let operation):
            if case .invalidateAll = operation { false } else { true }
        case .request(_, _, let request, _):
            if case .mmioWrite = request { false } else { true }
        case .attach, .statistics: false
        }
    }
}

/// One redistributor on its lane, boxed so that an operation mutates it in place: a value kept in
/// a collection would be copied out and back by the optional access around each operation.
/// - Context: the lane owning the vCPU.
final class LaneRedistributor {
    var value: Redistributor
    /// The WAIT_ACK waiting for an LPI of this vCPU, if any: the ticket it is answered through, its
    /// priority mask, and the vCPU (`value.vcpu` too, but reading it from here copies `value`).
    var waiter: (ticket: ReplyTicket, mask: Priority, vcpu: VCPUIndex)?
    /// A WAKE arrived while no WAIT_ACK waited: the next one that finds nothing returns at once.
    var wakeLatched = false
    /// The vCPU's acknowledge slot (SET_ACK_SLOT), if the VMM gave it one.
    var slot: AcknowledgeSlot?
    /// LPIs acknowledged into the vCPU's slots, and invalid words found there, since the vCPU's
    /// lane took it on (counters: they survive a new slot and a restore).
    var slotDeliveries: UInt64 = 0
    var slotInvalidWords: UInt64 = 0
    init(_ value: Redistributor) { self.value = value }
}

/// One VM as one lane sees it.
final class LaneVM {
    let memory: MappedGuestMemory
    /// The redistributors of the vCPUs this lane owns, indexed by vCPU index (nil for the vCPUs
    /// of other lanes).
    private(set) var redistributors: [LaneRedistributor?] = []
    var notifyFDs: [UInt16: Int32] = [:]
    /// When each pending LPI became pending (uv_hrtime), keyed by vCPU << 32 | INTID: the start
    /// of its inject-to-acknowledge latency. An entry whose LPI stopped being pending otherwise
    /// (DISCARD, a move) stays until the LPI is next made pending, which overwrites it.
    var pendingSince: [UInt64: UInt64] = [:]
    /// Made with the first acknowledge that has a latency (a histogram takes some 20 KiB).
    var latency: Histogram<UInt64>?

    init(memory: MappedGuestMemory, redistributors: [Redistributor]) {
        self.memory = memory
        redistributors.forEach { _ = own($0) }
    }

    /// The redistributor of `vcpu`, if this lane owns it.
    @inline(__always)
    func redistributor(_ vcpu: VCPUIndex) -> LaneRedistributor? {
        let index = Int(vcpu.rawValue)
        return index < redistributors.count ? redistributors[index] : nil
    }

    /// Takes `redistributor` on, replacing any this lane had for its vCPU; returns the ticket of a
    /// WAIT_ACK that waited on the one replaced (a restore), which the caller answers.
    func own(_ redistributor: Redistributor) -> ReplyTicket? {
        let index = Int(redistributor.vcpu.rawValue)
        if index >= redistributors.count { redistributors += Array(repeating: nil, count: index + 1 - redistributors.count) }
        let replaced = redistributors[index]
        let box = LaneRedistributor(redistributor)
        // The slot is the VMM's plumbing, not the redistributor's state: it outlives a restore.
        box.slot = replaced?.slot
        box.slotDeliveries = replaced?.slotDeliveries ?? 0
        box.slotInvalidWords = replaced?.slotInvalidWords ?? 0
        redistributors[index] = box
        return replaced?.waiter?.ticket
    }

    /// Every redistributor this lane owns, by vCPU.
    var owned: [LaneRedistributor] { redistributors.compactMap { $0 } }

    deinit { notifyFDs.values.forEach { _ = close($0) } }
}

/// Collects the vCPUs that became deliverable while a batch is processed.
struct EdgeCollector: LPIDeliverySink {
    var vcpus: [VCPUIndex] = []
    mutating func lpiBecameDeliverable(on vcpu: VCPUIndex) { vcpus.append(vcpu) }
}

/// The state of one lane: touched only holding the lane's ownership, by the lane's thread or by
/// the loop thread borrowing it (``LaneGroup/runIfIdle(_:onLane:)``). Only the lane's thread
/// starts the background timer or reads the lane's loop.
final class LaneState {
    let replies: Mailbox<LoopWork>
    var vms: [VMKey: LaneVM] = [:] {
        didSet { lastVM = nil }
    }
    /// The VM the last lookup found: the items of a batch mostly name the same VM.
    private var lastVM: (key: VMKey, state: LaneVM)?
    private var outgoing: [LoopWork] = []
    /// Whether the loop thread is running a batch here (``LaneGroup/runIfIdle(_:onLane:)``), so
    /// that replies go to its mailbox without a wakeup.
    var postsLocally = false
    /// Redistributors with background work (an INVALL sweep, a pending-table load), done one
    /// budget per loop turn so that one vCPU's sweep never holds the others on this lane.
    private var busy: Set<VCPUKey> = []
    /// Of those, how many INVALLs each has whose completion the loop waits to hear (for SYNC);
    /// an INVALL during a sweep restarts it, and both are reported when it ends.
    private var reportWhenDone: [VCPUKey: Int] = [:]
    private var backgroundTimer: TimerHandle?
    private let loop: EventLoop
    /// The ``LaneWork/clock(_:)`` of the items being handled, read from the clock when none came.
    private var batchClock: UInt64?
    static let workBudget = Redistributor.defaultWorkBudget

    struct VCPUKey: Hashable {
        var vm: VMKey
        var vcpu: VCPUIndex
    }

    /// - Context: the lane's thread, which the timer of background work belongs to; `ownership` is
    /// the lane's, held for each timer callback as the mailbox holds it for each batch.
    init(replies: Mailbox<LoopWork>, loop: EventLoop, ownership: Ownership) {
        self.replies = replies
        self.loop = loop
        backgroundTimer = TimerHandle(loop: loop) { [unowned self] in
            ownership.withOwnership { self.continueBackgroundWork() }
        }
    }

    /// Notes background work left after an operation; `report` asks for backgroundWorkDone.
    private func track(_ vm: VMKey, _ vcpu: VCPUIndex, pending: Bool, report: Bool) {
        let key = VCPUKey(vm: vm, vcpu: vcpu)
        if pending {
            busy.insert(key)
            if report { reportWhenDone[key, default: 0] += 1 }
            if backgroundTimer?.isActive == false { backgroundTimer?.start(timeout: 0) }
        } else if report {
            outgoing.append(.backgroundWorkDone(vm, vcpu))
        }
    }

    /// One budget of background work for each busy redistributor.
    private func continueBackgroundWork() {
        for key in busy {
            let more = withRedistributor(key.vm, key.vcpu) { redistributor, memory, edges in
                redistributor.performPendingWork(budget: Self.workBudget, memory: memory, sink: &edges)
            } ?? false
            guard !more else { continue }
            busy.remove(key)
            for _ in 0 ..< (reportWhenDone.removeValue(forKey: key) ?? 0) {
                outgoing.append(.backgroundWorkDone(key.vm, key.vcpu))
            }
        }
        flushOutgoing()
        if !busy.isEmpty { backgroundTimer?.start(timeout: 0) }
    }

    private func flushOutgoing() {
        if postsLocally {
            replies.postLocally(moving: &outgoing)
        } else if !outgoing.isEmpty {
            replies.post(moving: &outgoing)
        }
    }

    func handle(_ batch: inout [LaneWork]) {
        batchClock = nil
        var index = 0
        while index < batch.count {
            if case let .lpi(vm, vcpu, .setPending) = batch[index] {
                index = setPendingRun(batch, from: index, vm: vm, vcpu: vcpu)
                continue
            }
            let work = batch[index]
            index += 1
            switch work {
            case let .attach(vm, memory, redistributors):
                if let state = vms[vm] {
                    for redistributor in redistributors {
                        if let waiting = state.own(redistributor) { outgoing.append(.reply(waiting, .intid(.spurious, nil))) }
                    }
                } else {
                    vms[vm] = LaneVM(memory: memory, redistributors: redistributors)
                }
                // A restored redistributor may hold deliverable LPIs: its vCPU is told, as on an edge.
                for redistributor in redistributors {
                    if let state = vms[vm], let box = state.redistributor(redistributor.vcpu), box.slot != nil {
                        serveSlot(box, state, vm: vm, vcpu: redistributor.vcpu)
                    }
                    if redistributor.deliverableCount > 0 { notify(vms[vm]!, vm: vm, vcpu: redistributor.vcpu) }
                    track(vm, redistributor.vcpu, pending: redistributor.hasPendingWork, report: false)
                }
            case let .detach(vm, ticket):
                for box in vms[vm]?.owned ?? [] {
                    if let waiter = box.waiter { outgoing.append(.reply(waiter.ticket, .gone)) }
                }
                vms[vm] = nil
                if let ticket { outgoing.append(.reply(ticket, .done)) }
            case let .lpi(vm, vcpu, operation):
                perform(operation, vm: vm, vcpu: vcpu)
            case let .request(vm, vcpu, .waitAcknowledge(mask), ticket):
                waitAcknowledge(vm, vcpu, mask: mask, ticket: ticket)
            case let .request(vm, vcpu, .acknowledge(mask), ticket):
                outgoing.append(.reply(ticket, acknowledge(vm, vcpu, mask: mask)))
            case let .request(vm, vcpu, .wake, ticket):
                outgoing.append(.reply(ticket, wake(vm, vcpu)))
            case let .request(vm, vcpu, request, ticket):
                outgoing.append(.reply(ticket, serve(request, vm: vm, vcpu: vcpu)))
            case let .endWait(vm, vcpu, ticket):
                if let box = laneVM(vm)?.redistributor(vcpu), let waiter = box.waiter, waiter.ticket == ticket {
                    box.waiter = nil
                    outgoing.append(.reply(ticket, .intid(.spurious, nil)))
                }
            case let .barrier(ticket):
                outgoing.append(.reply(ticket, .done))
            case .clock(let now):
                batchClock = now
            case let .statistics(vm, ticket):
                outgoing.append(.reply(ticket, .statistics(statistics(of: vm))))
            }
        }
        flushOutgoing()
    }

    /// The lane's state of `vm`, if it has any.
    @inline(__always)
    private func laneVM(_ vm: VMKey) -> LaneVM? {
        if let last = lastVM, last.key == vm { return last.state }
        guard let state = vms[vm] else { return nil }
        lastVM = (vm, state)
        return state
    }

    /// Runs `body` on the redistributor of `vcpu` of `vm`, in place, then reports edges. Returns
    /// nil when the VM or vCPU is not here.
    private func withRedistributor<R>(_ vm: VMKey, _ vcpu: VCPUIndex,
                                      _ body: (inout Redistributor, MappedGuestMemory, inout EdgeCollector) -> R) -> R?
    {
        guard let state = laneVM(vm), let box = state.redistributor(vcpu) else { return nil }
        var edges = EdgeCollector()
        let result = body(&box.value, state.memory, &edges)
        serveTakers(box, state, vm: vm, vcpu: vcpu)
        for edge in edges.vcpus { notify(state, vm: vm, vcpu: edge) }
        return result
    }

    /// Sets pending the LPIs of the run of ``LPIOperation/setPending(_:)`` items for `vcpu` of `vm`
    /// that starts at `start` (a burst of MSIs to one vCPU), with one lookup of its redistributor;
    /// returns the index past the run. As ``perform(_:vm:vcpu:)`` would, item by item.
    private func setPendingRun(_ batch: [LaneWork], from start: Int, vm: VMKey, vcpu: VCPUIndex) -> Int {
        guard let state = laneVM(vm), let box = state.redistributor(vcpu) else { return start + 1 }
        var edges = EdgeCollector()
        var end = start
        while end < batch.count, case let .lpi(itemVM, itemVCPU, .setPending(intid)) = batch[end], itemVM == vm, itemVCPU == vcpu {
            if box.value.setPending(intid, sink: &edges) == .madePending {
                let now = batchClock ?? uv_hrtime()
                batchClock = now
                state.pendingSince[Self.latencyKey(vcpu, intid)] = now
            }
            end += 1
        }
        serveTakers(box, state, vm: vm, vcpu: vcpu)
        for edge in edges.vcpus { notify(state, vm: vm, vcpu: edge) }
        return end
    }

    /// WAIT_ACK on `vcpu`: answered now with an LPI to take or a latched WAKE, else it waits. An
    /// earlier WAIT_ACK still waiting there is answered with 1023.
    private func waitAcknowledge(_ vm: VMKey, _ vcpu: VCPUIndex, mask: Priority, ticket: ReplyTicket) {
        guard let state = laneVM(vm), let box = state.redistributor(vcpu) else {
            return outgoing.append(.reply(ticket, .gone))
        }
        if let earlier = box.waiter { outgoing.append(.reply(earlier.ticket, .intid(.spurious, nil))) }
        box.waiter = (ticket, mask, vcpu)
        serveTakers(box, state, vm: vm, vcpu: vcpu)
        if box.waiter != nil, box.wakeLatched {
            box.wakeLatched = false
            box.waiter = nil
            outgoing.append(.reply(ticket, .intid(.spurious, nil)))
        }
    }

    /// WAKE on `vcpu`: its waiting WAIT_ACK returns 1023, or, with none waiting, the next one will.
    private func wake(_ vm: VMKey, _ vcpu: VCPUIndex) -> LaneReply {
        guard let box = laneVM(vm)?.redistributor(vcpu) else { return .gone }
        if let waiter = box.waiter {
            box.waiter = nil
            outgoing.append(.reply(waiter.ticket, .intid(.spurious, nil)))
        } else {
            box.wakeLatched = true
        }
        return .done
    }

    /// ACK on `vcpu`: acknowledges the highest-priority LPI above `mask`, lets the vCPU's waiting
    /// WAIT_ACK and acknowledge slot take what they may, then says whether another ACK with `mask`
    /// would take an LPI (PROTOCOL.md 6.16, `more`).
    private func acknowledge(_ vm: VMKey, _ vcpu: VCPUIndex, mask: Priority) -> LaneReply {
        guard let state = laneVM(vm), let box = state.redistributor(vcpu) else { return .gone }
        // One in-place access to the redistributor: reading `box.value` for each call would copy it.
        let taken: (INTID, LPIConfig?)? = Self.acknowledge(&box.value, mask: mask)
        if let (acknowledged, _) = taken { noteAcknowledged(acknowledged, vm: vm, vcpu: vcpu) }
        serveTakers(box, state, vm: vm, vcpu: vcpu)
        guard let (acknowledged, config) = taken else { return .acknowledged(.spurious, nil, more: false) }
        return .acknowledged(acknowledged, config, more: Self.hasDeliverable(&box.value, mask: mask))
    }

    /// After an operation on the vCPU: its waiting WAIT_ACK takes an LPI above its mask, then its
    /// acknowledge slot serves (``serveSlot(_:_:vm:vcpu:)``). The WAIT_ACK's answer says `more` as
    /// ACK's does, so it is made once the slot has taken its own.
    @inline(__always)
    private func serveTakers(_ box: LaneRedistributor, _ state: LaneVM, vm: VMKey, vcpu: VCPUIndex) {
        let answered = box.waiter != nil ? serveWaiter(box, vm: vm) : nil
        if box.slot != nil { serveSlot(box, state, vm: vm, vcpu: vcpu) }
        guard let (ticket, acknowledged, config, mask) = answered else { return }
        let more = Self.hasDeliverable(&box.value, mask: mask)
        outgoing.append(.reply(ticket, .acknowledged(acknowledged, config, more: more)))
    }

    /// Acknowledges for the vCPU's waiting WAIT_ACK if an LPI above its mask is deliverable, and
    /// ends the wait; returns what the answer needs.
    private func serveWaiter(_ box: LaneRedistributor, vm: VMKey)
        -> (ticket: ReplyTicket, intid: INTID, config: LPIConfig?, mask: Priority)?
    {
        guard let waiter = box.waiter else { return nil }
        let taken: (INTID, LPIConfig?)? = Self.acknowledge(&box.value, mask: waiter.mask)
        guard let (acknowledged, config) = taken else { return nil }
        box.waiter = nil
        noteAcknowledged(acknowledged, vm: vm, vcpu: waiter.vcpu)
        return (waiter.ticket, acknowledged, config, waiter.mask)
    }

    /// The vCPU's acknowledge slot after an operation (PROTOCOL.md 6.16b): an ARMED slot takes the
    /// highest-priority deliverable LPI above its mask, acknowledged; and when LPIs stay deliverable
    /// that the slot did not take, `more` is set. Each change is a compare-and-swap from the word
    /// read, followed by a write of the notify eventfd. A VMM changing the word at the same moment
    /// makes the lane read it again, a few times at most, so that no VMM can hold the lane here;
    /// if LPIs are still deliverable then, `more` is set by an atomic OR, which cannot fail, so
    /// that a VMM that keeps taking as fast as it can is told to ask.
    private func serveSlot(_ box: LaneRedistributor, _ state: LaneVM, vm: VMKey, vcpu: VCPUIndex) {
        guard let slot = box.slot else { return }
        var word = slot.load()
        for _ in 0 ..< Self.slotAttempts {
            guard let kind = word.state else {
                box.slotInvalidWords &+= 1
                return
            }
            if kind == .armed {
                slot.lastMask = Priority(word.priority)
                if let (intid, config) = Self.peek(&box.value, mask: slot.lastMask) {
                    var delivered = AckSlotWord.delivered(intid: intid.rawValue, priority: config?.priority.rawValue ?? 0xFF)
                    if word.more { delivered = delivered.withMore }
                    let (exchanged, found) = slot.compareExchange(word, delivered)
                    guard exchanged else {
                        word = found
                        continue
                    }
                    let acknowledged = box.value.acknowledge(priorityMask: slot.lastMask)
                    assert(acknowledged == intid, "the slot's LPI is the one acknowledged")
                    box.slotDeliveries &+= 1
                    noteAcknowledged(acknowledged, vm: vm, vcpu: vcpu)
                    signalNotify(state, vcpu: vcpu)
                    word = delivered
                }
            }
            guard !word.more, Self.hasDeliverable(&box.value, mask: slot.lastMask) else { return }
            let (exchanged, found) = slot.compareExchange(word, word.withMore)
            if exchanged { return signalNotify(state, vcpu: vcpu) }
            word = found
        }
        guard word.state != nil, Self.hasDeliverable(&box.value, mask: slot.lastMask) else { return }
        // The OR lands on whatever the VMM wrote last; a word that had become invalid is counted
        // and, carrying nothing the VMM can act on, not signalled.
        guard slot.setMore().state != nil else {
            box.slotInvalidWords &+= 1
            return
        }
        signalNotify(state, vcpu: vcpu)
    }

    /// How many times ``serveSlot(_:_:vm:vcpu:)`` reads a slot that keeps changing under it.
    static let slotAttempts = 4

    /// The LPI ``acknowledge(_:mask:)`` would take, with its configuration, taking nothing.
    private static func peek(_ redistributor: inout Redistributor, mask: Priority) -> (INTID, LPIConfig?)? {
        guard let intid = redistributor.highestPriorityPending(priorityMask: mask) else { return nil }
        return (intid, redistributor.lpis.load(UInt64(intid.rawValue))?.config)
    }

    /// Whether an ACK with `mask` would take an LPI now.
    private static func hasDeliverable(_ redistributor: inout Redistributor, mask: Priority) -> Bool {
        redistributor.deliverableCount > 0 && redistributor.highestPriorityPending(priorityMask: mask) != nil
    }

    /// Writes 1 to the vCPU's notify eventfd, if it has one.
    private func signalNotify(_ state: LaneVM, vcpu: VCPUIndex) {
        guard let fd = state.notifyFDs[vcpu.rawValue] else { return }
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    /// Acknowledges the highest-priority deliverable LPI above `mask`, with its configuration; nil
    /// when there is none.
    private static func acknowledge(_ redistributor: inout Redistributor, mask: Priority) -> (INTID, LPIConfig?)? {
        guard let taken = peek(&redistributor, mask: mask) else { return nil }
        let acknowledged = redistributor.acknowledge(priorityMask: mask)
        return acknowledged == .spurious ? nil : (acknowledged, taken.1)
    }

    /// The vCPU has something to take: write its notify eventfd and tell the loop — unless a
    /// waiting WAIT_ACK took all there was.
    private func notify(_ state: LaneVM, vm: VMKey, vcpu: VCPUIndex) {
        if let box = state.redistributor(vcpu), box.value.deliverableCount == 0 { return }
        signalNotify(state, vcpu: vcpu)
        outgoing.append(.deliverable(vm, vcpu))
    }

    private func perform(_ operation: LPIOperation, vm: VMKey, vcpu: VCPUIndex) {
        let outcome: LPIPendOutcome? = withRedistributor(vm, vcpu) { redistributor, memory, edges in
            switch operation {
            case let .map(intid, epoch):
                _ = redistributor.mapLPI(intid, epoch: epoch, memory: memory, sink: &edges)
            case .unmap(let intid):
                redistributor.unmapLPI(intid)
            case let .unmapReportingPending(intid, target, epoch):
                let wasPending = redistributor.unmapLPI(intid)
                outgoing.append(.moved(vm, intid, from: vcpu, to: target, epoch: epoch, wasPending: wasPending))
            case .setPending(let intid):
                return redistributor.setPending(intid, sink: &edges)
            case let .setPendingIfMapped(intid, epoch):
                return redistributor.setPendingIfMapped(intid, epoch: epoch, sink: &edges)
            case .setPendingDirect(let intid):
                return redistributor.setPendingDirect(intid, memory: memory, sink: &edges)
            case .clearPending(let intid):
                redistributor.clearPending(intid)
            case .invalidate(let intid):
                redistributor.invalidate(intid, memory: memory, sink: &edges)
            case .invalidateAll:
                redistributor.invalidateAll(budget: Self.workBudget, memory: memory, sink: &edges)
                track(vm, vcpu, pending: redistributor.hasPendingWork, report: true)
            case .takeAllPending(let target):
                let taken = redistributor.pendingLPIs(limit: .max).lpis.map(\.intid)
                for intid in taken { redistributor.clearPending(intid) }
                outgoing.append(.movedAllPending(vm, taken, to: target))
                outgoing.append(.backgroundWorkDone(vm, vcpu))
            }
            return nil
        } ?? nil
        if outcome == .madePending, case let .setPending(intid) = operation {
            notePending(intid, vm: vm, vcpu: vcpu)
        } else if outcome == .madePending, case let .setPendingIfMapped(intid, _) = operation {
            notePending(intid, vm: vm, vcpu: vcpu)
        } else if outcome == .madePending, case let .setPendingDirect(intid) = operation {
            notePending(intid, vm: vm, vcpu: vcpu)
        }
    }

    private static func latencyKey(_ vcpu: VCPUIndex, _ intid: INTID) -> UInt64 {
        UInt64(vcpu.rawValue) << 32 | UInt64(intid.rawValue)
    }

    /// An LPI became pending: its latency starts at the loop's clock for this batch.
    private func notePending(_ intid: INTID, vm: VMKey, vcpu: VCPUIndex) {
        let now = batchClock ?? uv_hrtime()
        batchClock = now
        laneVM(vm)?.pendingSince[Self.latencyKey(vcpu, intid)] = now
    }

    /// An LPI was acknowledged: its latency ends now.
    private func noteAcknowledged(_ intid: INTID, vm: VMKey, vcpu: VCPUIndex) {
        guard let state = laneVM(vm), let since = state.pendingSince.removeValue(forKey: Self.latencyKey(vcpu, intid)) else { return }
        let now = uv_hrtime()
        // `if case`, not `== nil`: comparing an optional histogram copies it.
        if case .none = state.latency { state.latency = StatsReportBuilder.makeLatencyHistogram() }
        _ = state.latency?.record(min(now >= since ? now - since : 0, StatsReportBuilder.latencyCeiling))
    }

    /// The statistics of `vm`'s redistributors here, or of every VM's.
    private func statistics(of vm: VMKey?) -> LaneStatistics {
        var result = LaneStatistics(idleNanoseconds: loop.idleTimeNanoseconds, vcpus: [],
                                    latency: StatsReportBuilder.makeLatencyHistogram())
        for (key, state) in vms where vm == nil || vm == key {
            for box in state.owned {
                let redistributor = box.value
                result.vcpus.append(VCPUStatistics(vm: key, vcpu: redistributor.vcpu, counters: redistributor.counters,
                                                   pending: redistributor.pendingCount, lpis: redistributor.lpis.count,
                                                   hasAckSlot: box.slot != nil, ackSlotDeliveries: box.slotDeliveries,
                                                   ackSlotInvalidWords: box.slotInvalidWords))
            }
            if let latency = state.latency { result.latency.add(latency) }
        }
        return result
    }

    private func serve(_ request: LaneRequest, vm: VMKey, vcpu: VCPUIndex) -> LaneReply {
        let reply: LaneReply? = withRedistributor(vm, vcpu) { redistributor, memory, edges in
            switch request {
            case let .mmioRead(offset, width):
                return .mmioRead(redistributor.mmioRead(offset: offset, width: width))
            case let .mmioWrite(offset, width, value):
                let wasEnabled = redistributor.lpisEnabled
                let outcome = redistributor.mmioWrite(offset: offset, width: width, value: value, memory: memory,
                                                      sink: &edges, workBudget: Self.workBudget)
                track(vm, vcpu, pending: redistributor.hasPendingWork, report: false)
                return .mmioWrite(outcome, disabledLPIs: wasEnabled && !redistributor.lpisEnabled)
            case .highestPriorityPending(let mask):
                let intid = redistributor.highestPriorityPending(priorityMask: mask)
                return .intid(intid ?? .spurious, intid.flatMap { redistributor.lpis.load(UInt64($0.rawValue))?.config })
            case let .pendingLPIs(from, limit):
                return .pending(redistributor.pendingLPIs(from: from, limit: limit))
            case .setNotifyFD(let fd):
                if let old = vms[vm]?.notifyFDs[vcpu.rawValue] { close(old) }
                vms[vm]?.notifyFDs[vcpu.rawValue] = fd
                // Something may be deliverable already, or waiting in the slot (delivered, or
                // `more`, before there was an eventfd to write): the new eventfd hears of it at once.
                let slotWord = vms[vm]?.redistributor(vcpu)?.slot?.load()
                if let fd, redistributor.deliverableCount > 0 || slotWord?.state == .delivered || slotWord?.more == true {
                    var one: UInt64 = 1
                    _ = write(fd, &one, 8)
                }
                return .done
            case .setAcknowledgeSlot(let slot):
                // Served by withRedistributor as the body returns: an LPI already deliverable
                // goes into an ARMED slot at once.
                vms[vm]?.redistributor(vcpu)?.slot = slot
                return .done
            case .acknowledge, .waitAcknowledge, .wake:
                preconditionFailure("ACK, WAIT_ACK and WAKE are handled by acknowledge(_:_:mask:), waitAcknowledge(_:_:mask:ticket:) and wake(_:_:)")
            case .snapshot:
                return .redistributor(redistributor)
            case let .lpis(from, limit):
                var page: [LPIListing] = []
                var next: INTID?
                redistributor.lpis.forEach(in: UInt64(from.rawValue) ... .max) { key, record in
                    let intid = INTID(UInt32(truncatingIfNeeded: key))
                    guard page.count < limit else {
                        next = intid
                        return false
                    }
                    page.append(LPIListing(intid: intid, config: record.config, pending: redistributor.isPending(intid)))
                    return true
                }
                return .lpis(page, next: next)
            }
        }
        if reply == nil, case .setNotifyFD(let fd?) = request { close(fd) }
        return reply ?? .gone
    }
}

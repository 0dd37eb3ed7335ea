import CLibUV
import Glibc
import ITSModel
import ITSWire
import Logging

/// itsd: the loop thread's objects — the Unix listener, the client sessions, the VM registry with
/// each VM's ITS — and the vCPU lanes (docs/ARCHITECTURE.md).
/// - Context: created, run and stopped on the loop thread.
public final class Server {
    public struct Configuration: Sendable {
        public var socketPath: String
        public var listener = UnixListener.Options()
        /// vCPU worker lanes (threads).
        public var lanes: Int
        /// Milliseconds a VM without clients lives on.
        public var gracePeriod: UInt64 = 60_000
        public var maximumVMs = 256
        /// Units of ITS work one loop turn does for one VM before other clients are served.
        public var workBudget = ITS.defaultWorkBudget
        /// Lane work items a connection's NO_REPLY requests may have queued that the lanes have not
        /// reached yet; at this many the server stops reading the connection until they have.
        public var noReplyLaneWorkLimit = 4096
        /// Unix-socket peers (by SO_PEERCRED uid) that may ATTACH_VM any VM with the all-zero token:
        /// operators' tools. TCP peers never may.
        public var operatorUIDs: Set<uid_t> = [0, getuid()]
        /// Milliseconds a graceful shutdown (``shutdown()``) waits for replies already owed to be
        /// sent before it closes the connections that still owe some.
        public var shutdownDeadline: UInt64 = 5000
        /// The largest snapshot image RESTORE_VM accepts.
        public var maximumSnapshotBytes = 1 << 30
        public var logger = Logger(label: "itsd")
        /// Guest-error log messages per VM per 10 s (the rest are counted and summed up).
        public var guestErrorLogBurst = 20
        /// A listening Unix socket passed by the service manager (socket activation), used instead of
        /// creating one at `socketPath`.
        public var inheritedListener: Int32?
        /// The optional TCP listener and the secret its clients must send (AUTHENTICATE).
        public var tcp: (endpoint: TCPListener.Endpoint, secret: [UInt8])?

        public init(socketPath: String, lanes: Int) {
            self.socketPath = socketPath
            self.lanes = lanes
        }
    }

    public let configuration: Configuration
    public let loop: EventLoop
    var mailbox: Mailbox<LoopWork>!
    var lanes: LaneGroup!
    var registry: VMRegistry!
    var listener: UnixListener?
    public private(set) var tcpListener: TCPListener?
    /// The path of the Unix socket being served (with socket activation, the one systemd made).
    public var listeningPath: String? { listener?.path }
    /// TCP connections that have not sent the right secret yet.
    var unauthenticated: Set<UInt64> = []
    var sessions: [UInt64: Session] = [:]
    private var nextConnection: UInt64 = 1
    /// What to do with each reply a lane owes.
    var awaiting: [ReplyTicket: (LaneReply) -> Void] = [:]
    private var nextTicket: UInt64 = 1
    /// VMs with operations queued for lanes since the last flush, each once (``ServerVM/isDirty``).
    private var dirty: [ServerVM] = []
    private var graceTimer: TimerHandle?
    /// Runs ITS work left over from budgets, one budget per VM per turn.
    private var workTimer: TimerHandle?
    /// The server's own statistics.
    var counters = ServerCounters()
    /// DUMP cursors and snapshot images, by connection.
    var transfers: [UInt64: ConnectionTransfers] = [:]
    /// WAIT_ACKs waiting on the lanes, by the ticket each is answered through.
    var waits: [ReplyTicket: WaitingAcknowledge] = [:]
    /// Ends WAIT_ACKs at their timeouts; armed for the earliest, at `waitTimerDeadline`.
    var waitTimer: TimerHandle?
    var waitTimerDeadline: UInt64?
    /// Sends the connections' replies once per loop iteration.
    private var coalescer: SendCoalescer?

    public init(configuration: Configuration, loop: EventLoop = EventLoop()) throws(SystemError) {
        self.configuration = configuration
        self.loop = loop
        mailbox = Mailbox(loop: loop) { [unowned self] batch in self.handleLaneWork(batch) }
        lanes = LaneGroup(count: configuration.lanes, replies: mailbox)
        registry = VMRegistry(lanes: lanes, gracePeriod: configuration.gracePeriod, maximumVMs: configuration.maximumVMs)
        let onAccept: (Int32, PeerCredentials) -> Void = { [unowned self] fd, peer in self.accept(fd, peer, transport: .unixStream) }
        if let inherited = configuration.inheritedListener {
            listener = try UnixListener(adopting: inherited, options: configuration.listener, loop: loop, onAccept: onAccept)
        } else {
            listener = try UnixListener(path: configuration.socketPath, options: configuration.listener, loop: loop, onAccept: onAccept)
        }
        if let tcp = configuration.tcp {
            do {
                tcpListener = try TCPListener(endpoint: tcp.endpoint, loop: loop) { [unowned self] fd in
                    self.accept(fd, PeerCredentials(pid: 0, uid: .max, gid: .max), transport: .tcp)
                }
            } catch {
                listener?.close()
                throw error
            }
        }
        graceTimer = TimerHandle(loop: loop) { [unowned self] in
            for key in self.registry.expire(now: uv_now(self.loop.pointer)) {
                self.configuration.logger.info("VM \(key) destroyed: no client re-attached within the grace period")
                self.vmGone(key, .graceExpired)
            }
        }
        graceTimer?.start(timeout: 1000, repeat: 1000)
        workTimer = TimerHandle(loop: loop) { [unowned self] in self.continueITSWork() }
        coalescer = SendCoalescer(loop: loop)
    }

    /// Runs the loop until ``stop()``.
    public func run() { loop.run() }

    /// Whether ``shutdown()`` has begun.
    public private(set) var isShuttingDown = false
    private var shutdownTimer: TimerHandle?

    /// Graceful shutdown (SIGTERM, SIGINT): stops accepting (the socket file is removed) and stops
    /// reading requests, then closes each connection once every reply owed for the requests it had
    /// read has been sent — lanes keep answering meanwhile — and calls ``stop()`` when none is
    /// left, or after ``Configuration/shutdownDeadline`` milliseconds with whatever is left. A
    /// second call stops at once.
    public func shutdown() {
        guard !isShuttingDown else { return stop() }
        isShuttingDown = true
        listener?.close()
        listener = nil
        tcpListener?.close()
        tcpListener = nil
        for session in sessions.values { session.drain() }
        // A waiting WAIT_ACK is a reply owed: it ends now, with 1023.
        endWaits { _ in true }
        let deadline = uv_now(loop.pointer) + configuration.shutdownDeadline
        shutdownTimer = TimerHandle(loop: loop) { [unowned self] in
            for session in self.sessions.values where session.owesNothing { session.connection.close() }
            if self.sessions.isEmpty {
                self.configuration.logger.info("shutdown: every reply owed was sent")
                self.stop()
            } else if uv_now(self.loop.pointer) >= deadline {
                self.configuration.logger.warning("shutdown: \(self.sessions.count) connection(s) still owed replies after \(self.configuration.shutdownDeadline) ms; closing them")
                self.stop()
            }
        }
        shutdownTimer?.start(timeout: 0, repeat: 10)
    }

    private var stopped = false

    /// Stops accepting, closes every connection, stops the lanes and ends ``run()``.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        shutdownTimer?.close()
        listener?.close()
        listener = nil
        tcpListener?.close()
        tcpListener = nil
        for session in sessions.values { session.connection.close() }
        sessions.removeAll()
        coalescer?.close()
        // The VMs' eventfd watchers belong to this loop: close them while it lives, not when the
        // registry is freed after the loop (whose teardown closes every handle left).
        for vm in registry.vms.values { vm.close() }
        graceTimer?.close()
        workTimer?.close()
        waitTimer?.close()
        lanes.stop()
        mailbox.close()
        loop.stop()
    }

    private func accept(_ fd: Int32, _ peer: PeerCredentials, transport: FrameDecoder.Transport) {
        counters.connectionsAccepted += 1
        let id = nextConnection
        nextConnection += 1
        guard let connection = try? Connection(id: id, fd: fd, peer: peer, loop: loop,
                                               decoder: FrameDecoder(role: .server, limits: .beforeHello, transport: transport))
        else {
            close(fd)
            return
        }
        connection.coalescer = coalescer
        if transport == .tcp { unauthenticated.insert(id) }
        let session = Session(connection: connection, laneWorkLimit: configuration.noReplyLaneWorkLimit,
                              isOperator: transport == .unixStream && configuration.operatorUIDs.contains(peer.uid))
        sessions[id] = session
        configuration.logger.debug("connection \(id) from pid \(peer.pid) uid \(peer.uid) gid \(peer.gid)")
        // The closures hold the session unowned: the session owns the connection, which owns them,
        // and a connection hands on frames only while open, when its session is in `sessions`.
        // Nothing holds a session or a VM weakly (closures that outlive a request look them up by
        // connection id or VM key): a weak reference would move the object's reference counting to
        // a side table, slower on every request.
        connection.onFrame = { [unowned self, unowned session] _, frame, fds in self.handle(frame, fds: fds, session: session) }
        connection.onInject = { [unowned self, unowned session] _, request in self.injectWithoutReply(request, session: session) }
        connection.onFramesHandled = { [unowned self] _ in self.flushLaneWork() }
        connection.onClose = { [unowned self] connection in
            self.sessions[connection.id] = nil
            self.transfers[connection.id] = nil
            self.unauthenticated.remove(connection.id)
            if !self.waits.isEmpty { self.endWaits { $0.connection == connection.id } }
            self.configuration.logger.debug("connection \(connection.id) closed")
            self.registry.connectionClosed(connection.id, now: uv_now(self.loop.pointer))
        }
    }

    // MARK: - Lanes

    /// Sends the queued lane work of every VM touched since the last flush, and schedules the
    /// ITS work any of them has left (only a touched VM can have gained some).
    func flushLaneWork() {
        var runnable = false
        for vm in dirty {
            vm.isDirty = false
            let charges = vm.laneWorkCharges
            vm.laneWorkCharges.removeAll()
            guard !vm.isRemoved else {
                releaseLaneWork(charges)
                continue
            }
            if !charges.isEmpty { coverLaneWork(vm, charges) }
            counters.batchesRunOnLoop &+= UInt64(vm.operations.flush())
            runnable = runnable || Self.hasRunnableWork(vm)
        }
        dirty.removeAll(keepingCapacity: true)
        if runnable, workTimer?.isActive == false { workTimer?.start(timeout: 0) }
    }

    /// Notes that `vm` has lane work to flush.
    @inline(__always)
    func markDirty(_ vm: ServerVM) {
        guard !vm.isDirty else { return }
        vm.isDirty = true
        dirty.append(vm)
    }

    /// `count` lane work items were queued to `vm`'s lanes for a NO_REPLY request of `session`.
    func chargeLaneWork(_ vm: ServerVM, _ count: Int, to session: Session) {
        guard count > 0 else { return }
        // Consecutive requests of one session add to one charge.
        if let last = vm.laneWorkCharges.indices.last, vm.laneWorkCharges[last].connection == session.connection.id {
            vm.laneWorkCharges[last].count += count
        } else {
            vm.laneWorkCharges.append(LaneWorkCharge(connection: session.connection.id, count: count))
        }
        if session.laneWorkQueued(count) { counters.laneWorkHolds &+= 1 }
        counters.laneWorkPeak = max(counters.laneWorkPeak, session.laneWorkUnanswered)
        markDirty(vm)
    }

    /// Queues barriers behind the charged work on every lane it went to; the sessions get their
    /// allowance back once all have answered.
    private func coverLaneWork(_ vm: ServerVM, _ charges: [LaneWorkCharge]) {
        var outstanding = 0
        let count = vm.operations.queueBarriers { [unowned self] in
            outstanding += 1
            return self.ticket { [unowned self] _ in
                outstanding -= 1
                if outstanding == 0 { self.releaseLaneWork(charges) }
            }
        }
        if count == 0 { releaseLaneWork(charges) }
    }

    private func releaseLaneWork(_ charges: [LaneWorkCharge]) {
        for charge in charges { sessions[charge.connection]?.laneWorkDone(charge.count) }
    }

    /// A ticket for a lane request; `completion` runs on the loop thread with the reply.
    func ticket(_ completion: @escaping (LaneReply) -> Void) -> ReplyTicket {
        let ticket = ReplyTicket(rawValue: nextTicket)
        nextTicket += 1
        awaiting[ticket] = completion
        return ticket
    }

    private func handleLaneWork(_ batch: [LoopWork]) {
        var synchronizing: Set<VMKey> = []
        for work in batch {
            switch work {
            case let .reply(ticket, reply):
                waitAnswered(ticket)
                awaiting.removeValue(forKey: ticket)?(reply)
            case let .deliverable(key, vcpu):
                notifySubscribers(key, vcpu)
            case let .moved(key, intid, source, target, epoch, wasPending):
                guard let vm = registry.vms[key] else { continue }
                vm.operations.moved(intid, from: source, to: target, epoch: epoch, wasPending: wasPending)
                if vm.its.isWaitingForRedistributors { synchronizing.insert(key) }
                markDirty(vm)
            case let .movedAllPending(key, intids, target):
                guard let vm = registry.vms[key] else { continue }
                vm.operations.allPendingMoved(intids, to: target)
                if vm.its.isWaitingForRedistributors { synchronizing.insert(key) }
                markDirty(vm)
            case let .backgroundWorkDone(key, vcpu):
                guard let vm = registry.vms[key] else { continue }
                vm.operations.backgroundWorkDone(on: vcpu)
                synchronizing.insert(key)
                markDirty(vm)
            }
        }
        // A SYNC may have been waiting for exactly this; its target half, if any, is queued already.
        if !synchronizing.isEmpty {
            for key in synchronizing {
                guard let vm = registry.vms[key] else { continue }
                _ = vm.its.processCommands(budget: workBudget(for: vm), memory: vm.memory, redistributors: &vm.operations)
                reportGuestErrors(vm)
            }
        }
        for vm in dirty where !vm.isRemoved && vm.captureWaiting != nil { startCaptureIfQuiescent(vm) }
        flushLaneWork()
    }

    /// Logs, rate-limited, what the VM's guest did wrong at its ITS since the last report.
    func reportGuestErrors(_ vm: ServerVM) {
        vm.guestErrors.report(vm.its.counters, vm: vm.key, now: uv_now(loop.pointer), burst: configuration.guestErrorLogBurst,
                              logger: configuration.logger)
    }

    /// The ITS work a VM may do now: none while a snapshot is captured.
    func workBudget(for vm: ServerVM) -> Int { vm.commandsHeld ? 0 : configuration.workBudget }

    /// Schedules the ITS work a VM was held from.
    func resumeITSWork(_ vm: ServerVM) {
        if Self.hasRunnableWork(vm), workTimer?.isActive == false { workTimer?.start(timeout: 0) }
    }

    /// A VM was destroyed: EVENT_VM_GONE to the sessions that subscribed to it, and no more work.
    func vmGone(_ key: VMKey, _ reason: VMGoneReason) {
        // Its lane work charges are released by the next flush, which drops it from the list.
        for session in sessions.values {
            guard let events = session.subscriptions.removeValue(forKey: key) else { continue }
            session.notifyOutstanding = session.notifyOutstanding.filter { $0.vm != key }
            if events.contains(.vmGone) { session.sendEvent(.vmGone(VMID(rawValue: key.rawValue), reason: reason)) }
        }
    }

    /// EVENT_VCPU_NOTIFY to every session that subscribed to the VM's vCPU notifications and has
    /// none outstanding for this vCPU.
    func notifySubscribers(_ key: VMKey, _ vcpu: VCPUIndex) {
        for session in sessions.values where session.subscriptions[key]?.contains(.vcpuNotify) == true {
            let slot = Session.VCPUSlot(vm: key, vcpu: vcpu.rawValue)
            guard session.notifyOutstanding.insert(slot).inserted else { continue }
            session.sendEvent(.vcpuNotify(VMID(rawValue: key.rawValue), Wire.VCPU(rawValue: vcpu.rawValue)))
        }
    }

    /// Whether a VM's ITS has work that can progress now (a SYNC waiting for lanes cannot).
    static func hasRunnableWork(_ vm: ServerVM) -> Bool { vm.its.hasPendingWork && !vm.its.isWaitingForRedistributors }

    /// One budget of ITS work for each VM that has some, then again on the next turn if needed.
    private func continueITSWork() {
        var more = false
        for vm in registry.vms.values where vm.its.hasPendingWork && !vm.commandsHeld {
            _ = vm.its.processCommands(budget: configuration.workBudget, memory: vm.memory, redistributors: &vm.operations)
            reportGuestErrors(vm)
            markDirty(vm)
            more = more || Self.hasRunnableWork(vm)
        }
        flushLaneWork()
        if more { workTimer?.start(timeout: 0) }
    }
}

/// Lane work queued for one session's NO_REPLY requests, not yet covered by a barrier.
struct LaneWorkCharge {
    /// The connection of the session charged (its session is looked up when the charge is released).
    var connection: UInt64
    var count: Int
}

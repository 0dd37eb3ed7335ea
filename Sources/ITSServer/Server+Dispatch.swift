import CLibUV
import Glibc
import ITSModel
import ITSWire

/// Requests: what each message does (Protocol/PROTOCOL.md, section 6).
extension Server {
    func handle(_ frame: Frame, fds: [Int32], session: Session) {
        let opcode = frame.message.opcode
        counters.requests &+= 1
        func fail(_ status: WireStatus, detail: UInt32 = 0, _ text: String = "") {
            counters.errorReplies &+= 1
            fds.forEach { _ = close($0) }
            if frame.noReply, !session.capabilities.contains(.errorReports) { return }
            session.reply(Frame(.error(opcode, ErrorReport(status, detail: detail, text: text)), id: frame.messageID))
        }
        func done(_ message: Message) {
            guard !frame.noReply else { return }
            session.reply(Frame(message, id: frame.messageID))
        }

        guard session.hello != nil else {
            guard case .hello(let proposal) = frame.message else {
                fds.forEach { _ = close($0) }
                session.connection.sendAndClose(Frame(.error(opcode, ErrorReport(.notHelloFirst)), id: frame.messageID))
                return
            }
            switch proposal.answer() {
            case .success(let agreed):
                session.hello = agreed
                session.connection.decoder.limits = agreed.limits
                session.reply(Frame(.helloReply(agreed), id: frame.messageID))
            case .failure(let error):
                session.connection.sendAndClose(error.errorReply())
            }
            return
        }

        // NO_REPLY requests queue lane work nothing answers: charged to the session, bounded.
        if frame.noReply, let id = Self.vmOfNoReplyRequest(frame.message), let vm = attachedVM(id, session) {
            let before = vm.operations.itemsQueued
            defer { chargeLaneWork(vm, vm.operations.itemsQueued - before, to: session) }
            return dispatch(frame, fds: fds, session: session, failing: { fail($0, detail: $1, $2) }, finishing: done)
        }
        dispatch(frame, fds: fds, session: session, failing: { fail($0, detail: $1, $2) }, finishing: done)
    }

    /// The loop's fast path for a NO_REPLY INJECT (``Connection/onInject``): what ``handle(_:fds:session:)``
    /// does for one, without a `Frame`. Returns false, having done nothing, when the request needs
    /// the general path: before HELLO or AUTHENTICATE, or when it names a VM the session is not
    /// attached to (whose error the general path reports).
    func injectWithoutReply(_ request: InjectRequest, session: Session) -> Bool {
        guard session.hello != nil, unauthenticated.isEmpty || !unauthenticated.contains(session.connection.id),
              let vm = attachedVM(request.vm, session)
        else { return false }
        counters.requests &+= 1
        let before = vm.operations.itemsQueued
        let device = DeviceID(request.device.rawValue)
        let result = vm.its.signal(device, EventID(request.event.rawValue), redistributors: &vm.operations)
        vm.msis.count(device, injected: result.isSuccess, from: .inject)
        markDirty(vm)
        chargeLaneWork(vm, vm.operations.itemsQueued - before, to: session)
        if case .failure(let failure) = result {
            counters.errorReplies &+= 1
            if session.capabilities.contains(.errorReports) {
                let status: WireStatus = failure == .disabled ? .itsDisabled : .translationBlocked
                session.reply(Frame(.error(.inject, ErrorReport(status)), id: request.messageID))
            }
        }
        return true
    }

    /// The MSIs of an INJECT_BATCH into a VM's ITS and lanes, with the outcomes of
    /// ``ITS/signal(_:_:redistributors:)`` for each pair in turn, each counted in `msis`; returns
    /// how many were injected and blocked.
    ///
    /// Up to 64 pairs at a time: they are read into buffers on the stack, translated in one call
    /// (``ITS/translateEach(_:_:into:)``, whose result says which translated), the translated ones
    /// queued to the lanes in one call (``LaneRedistributors/setPending(_:)``), and each run of pairs
    /// from one device counted at once. Nothing outside the ITS reads the lanes' queues in between,
    /// so translating a chunk before queuing any of it changes nothing seen.
    /// - Context: the loop thread.
    static func inject(_ batch: InjectBatch, its: inout ITS, operations: inout LaneRedistributors,
                       msis: inout MSIStatistics) -> (injected: UInt32, blocked: UInt32)
    {
        let limit = ITS.outcomeBatchLimit
        return withUnsafeTemporaryAllocation(of: DeviceID.self, capacity: limit) { devices in
            withUnsafeTemporaryAllocation(of: EventID.self, capacity: limit) { events in
                withUnsafeTemporaryAllocation(of: ITS.Translation.self, capacity: limit) { translations in
                    var injected: UInt32 = 0
                    var chunk = 0
                    // SAFETY: chunk < limit at every store (the chunk is flushed when it reaches
                    // limit), and translateEach writes at most chunk <= limit translations.
                    func flush() {
                        let outcomes = its.translateEach(UnsafeBufferPointer(rebasing: devices[..<chunk]),
                                                         UnsafeBufferPointer(rebasing: events[..<chunk]),
                                                         into: translations)
                        let translated = outcomes.nonzeroBitCount
                        operations.setPending(UnsafeBufferPointer(rebasing: translations[..<translated]))
                        countRuns(outcomes)
                        injected &+= UInt32(translated)
                        chunk = 0
                    }
                    func countRuns(_ outcomes: UInt64) {
                        var start = 0
                        while start < chunk {
                            let device = devices[start]
                            var end = start &+ 1
                            while end < chunk, devices[end] == device { end &+= 1 }
                            let length = end &- start
                            // The run's bits of `outcomes` (a run of 64 is the whole chunk: no mask).
                            let run = length == 64 ? outcomes : outcomes >> UInt64(start) & (1 &<< UInt64(length) &- 1)
                            let runInjected = UInt64(run.nonzeroBitCount)
                            msis.count(device, injected: runInjected, blocked: UInt64(length) &- runInjected,
                                       from: .injectBatch)
                            start = end
                        }
                    }
                    batch.forEach { entry in
                        devices[chunk] = DeviceID(entry.deviceID.rawValue)
                        events[chunk] = EventID(entry.eventID.rawValue)
                        chunk &+= 1
                        if chunk == limit { flush() }
                    }
                    if chunk > 0 { flush() }
                    return (injected, UInt32(batch.count) &- injected)
                }
            }
        }
    }

    /// The VM of a request that may carry NO_REPLY.
    static func vmOfNoReplyRequest(_ message: Message) -> VMID? {
        switch message {
        case .inject(let id, _, _): id
        case .injectBatch(let batch): batch.vm
        case .mmioWrite(let access, _, _): access.vm
        default: nil
        }
    }

    private func dispatch(_ frame: Frame, fds: [Int32], session: Session, failing: (WireStatus, UInt32, String) -> Void,
                          finishing: (Message) -> Void)
    {
        func fail(_ status: WireStatus, detail: UInt32 = 0, _ text: String = "") { failing(status, detail, text) }
        func done(_ message: Message) { finishing(message) }
        let opcode = frame.message.opcode
        if unauthenticated.contains(session.connection.id) {
            guard case .authenticate(let secret) = frame.message, let expected = configuration.tcp?.secret,
                  Self.constantTimeEqual(secret, expected)
            else {
                counters.errorReplies &+= 1
                configuration.logger.notice("connection \(session.connection.id): TCP peer refused (no or wrong secret)")
                session.connection.sendAndClose(Frame(.error(opcode, ErrorReport(.permissionDenied, text: "AUTHENTICATE with the listener's secret first")),
                                                      id: frame.messageID))
                return
            }
            unauthenticated.remove(session.connection.id)
            return done(.done(.authenticate))
        }

        switch frame.message {
        case .hello:
            fail(.helloRepeated)
        case .authenticate:
            // A Unix socket's peer was admitted by its credentials already.
            done(.done(.authenticate))
        case .ping(let nonce):
            done(.pingReply(nonce: nonce))
        case .createVM(let config):
            switch registry.create(config, by: session.connection.id) {
            case .success(let vm):
                configuration.logger.info("VM \(vm.key) created: \(config.vcpuCount) vCPUs, DeviceID bits \(config.deviceIDBits), EventID bits \(config.eventIDBits), INTID bits \(config.intidBits)")
                done(.createVMReply(VMID(rawValue: vm.key.rawValue), token: vm.token))
            case .failure(let failure): fail(status(of: failure))
            }
        case let .attachVM(id, token):
            let asOperator = session.isOperator && token.matches(.operatorAttachToken)
            let result = asOperator ? registry.attachAsOperator(VMKey(id.rawValue), by: session.connection.id)
                : registry.attach(VMKey(id.rawValue), token: token, by: session.connection.id)
            switch result {
            case .success(let vm):
                if asOperator {
                    let peer = session.connection.peer
                    configuration.logger.info("VM \(vm.key) attached by operator uid \(peer.uid) (pid \(peer.pid), connection \(session.connection.id))")
                }
                done(.attachVMReply(id, vm.config))
            case .failure(let failure): fail(status(of: failure), detail: id.rawValue)
            }
        case .destroyVM(let id):
            if let vm = registry.vms[VMKey(id.rawValue)], vm.commandsHeld, vm.attached.contains(session.connection.id) {
                return fail(.busy, detail: 0, "a snapshot of this VM is being captured")
            }
            switch registry.destroy(VMKey(id.rawValue), by: session.connection.id) {
            case .success:
                configuration.logger.info("VM \(id.rawValue) destroyed by connection \(session.connection.id)")
                done(.done(.destroyVM))
                vmGone(VMKey(id.rawValue), .destroyed)
            case .failure(let failure): fail(status(of: failure), detail: id.rawValue)
            }
        case .listVMs:
            let infos = registry.vms.values.sorted { $0.key < $1.key }.map { vm in
                VMInfo(vm: VMID(rawValue: vm.key.rawValue), config: vm.config, state: vm.attached.isEmpty ? .orphaned : .attached,
                       connections: UInt16(clamping: vm.attached.count))
            }
            done(.listVMsReply(infos))
        case .addMemRegion(let region):
            guard let vm = attachedVM(region.vm, session, fail) else { return }
            guard fds.count == 1 else { return fail(.fdCountMismatch, detail: 1) }
            let refusal = vm.memory.addRegion(base: GuestAddress(region.guestAddress), size: region.size,
                                              fileOffset: region.fileOffset, fd: fds[0])
            close(fds[0])
            switch refusal {
            case nil: done(.done(.addMemRegion))
            case .overlaps?: fail(.memRegionOverlap)
            case .notSealedAgainstShrinking?, .beyondFileSize?, .system?: fail(.badFD, "\(refusal!)")
            case .tooManyRegions?: fail(.limitExceeded, detail: UInt32(vm.memory.maximumRegions))
            case .misaligned?, .emptyOrOverflowing?: fail(.badMemRegion, "\(refusal!)")
            }
        case let .removeMemRegion(id, address, size):
            guard let vm = attachedVM(id, session, fail) else { return }
            guard vm.memory.regions.contains(where: { $0.base == GuestAddress(address) && $0.size == size }) else {
                return fail(.noSuchMemRegion)
            }
            // Lanes may be reading the region: unmap it once each lane has drained what it holds.
            removeRegionAfterBarrier(vm, GuestAddress(address), size, session: session, frame: frame)
        case .mmioRead(let access):
            mmio(access, write: nil, deviceID: 0, session: session, frame: frame, fail: fail)
        case let .mmioWrite(access, value, deviceID):
            mmio(access, write: value, deviceID: deviceID.rawValue, session: session, frame: frame, fail: fail)
        case let .inject(id, device, event):
            guard let vm = attachedVM(id, session, fail) else { return }
            let result = vm.its.signal(DeviceID(device.rawValue), EventID(event.rawValue), redistributors: &vm.operations)
            vm.msis.count(DeviceID(device.rawValue), injected: result.isSuccess, from: .inject)
            markDirty(vm)
            switch result {
            case .success: done(.done(.inject))
            case .failure(.disabled): fail(.itsDisabled)
            case .failure: fail(.translationBlocked)
            }
        case .injectBatch(let batch):
            guard let vm = attachedVM(batch.vm, session, fail) else { return }
            guard vm.its.enabled else {
                batch.forEach { vm.msis.count(DeviceID($0.deviceID.rawValue), injected: false, from: .injectBatch) }
                return fail(.itsDisabled)
            }
            let (injected, blocked) = Self.inject(batch, its: &vm.its, operations: &vm.operations, msis: &vm.msis)
            markDirty(vm)
            if frame.noReply {
                if blocked > 0 { fail(.translationBlocked, detail: blocked) }
            } else {
                done(.injectBatchReply(injected: injected, blocked: blocked))
            }
        case let .setVCPUNotify(id, vcpu):
            guard let vm = attachedVM(id, session, fail) else { return }
            guard fds.count == 1 else { return fail(.fdCountMismatch, detail: 1) }
            guard vcpu.rawValue < vm.config.vcpuCount else { return fail(.noSuchVCPU, detail: UInt32(vcpu.rawValue)) }
            laneRequest(vm, vcpu, .setNotifyFD(fds[0]), session: session, frame: frame) { _ in .done(.setVCPUNotify) }
        case let .clearVCPUNotify(id, vcpu):
            guard let vm = attachedVM(id, session, fail) else { return }
            guard vcpu.rawValue < vm.config.vcpuCount else { return fail(.noSuchVCPU, detail: UInt32(vcpu.rawValue)) }
            laneRequest(vm, vcpu, .setNotifyFD(nil), session: session, frame: frame) { _ in .done(.clearVCPUNotify) }
        case let .setAckSlot(id, vcpu, offset):
            guard let vm = attachedVM(id, session, fail) else { return }
            guard fds.count == 1 else { return fail(.fdCountMismatch, detail: 1) }
            guard vcpu.rawValue < vm.config.vcpuCount else { return fail(.noSuchVCPU, detail: UInt32(vcpu.rawValue)) }
            let slot: AcknowledgeSlot
            do {
                slot = try AcknowledgeSlot(fd: fds[0], offset: offset)
            } catch {
                // `fail` closes the descriptor.
                return fail(.badFD, detail: error.rawValue, error.explanation)
            }
            close(fds[0])
            laneRequest(vm, vcpu, .setAcknowledgeSlot(slot), session: session, frame: frame) { _ in .done(.setAckSlot) }
        case let .clearAckSlot(id, vcpu):
            guard let vm = attachedVM(id, session, fail) else { return }
            guard vcpu.rawValue < vm.config.vcpuCount else { return fail(.noSuchVCPU, detail: UInt32(vcpu.rawValue)) }
            laneRequest(vm, vcpu, .setAcknowledgeSlot(nil), session: session, frame: frame) { _ in .done(.clearAckSlot) }
        case let .subscribe(id, events):
            guard session.capabilities.contains(.events) else { return fail(.capabilityNotAgreed, detail: 1 << 1) }
            guard let vm = attachedVM(id, session, fail) else { return }
            session.subscriptions[vm.key] = events.isEmpty ? nil : events
            done(.done(.subscribe))
        case let .hppi(id, vcpu):
            session.vcpuAsked(VMKey(id.rawValue), vcpu.rawValue)
            guard let vm = attachedVM(id, session, fail) else { return }
            guard vcpu.rawValue < vm.config.vcpuCount else { return fail(.noSuchVCPU, detail: UInt32(vcpu.rawValue)) }
            laneRequest(vm, vcpu, .highestPriorityPending(priorityMask: .lowest), session: session, frame: frame) { reply in
                .hppiReply(Self.wireLPI(reply))
            }
        case let .ack(id, vcpu, mask):
            session.vcpuAsked(VMKey(id.rawValue), vcpu.rawValue)
            guard let vm = attachedVM(id, session, fail) else { return }
            guard vcpu.rawValue < vm.config.vcpuCount else { return fail(.noSuchVCPU, detail: UInt32(vcpu.rawValue)) }
            // Two closures that capture nothing, rather than one capturing the session's version:
            // a capture would allocate a context for each ACK.
            let answer: (LaneReply) -> Message = session.reportsMore
                ? { reply in
                    let (lpi, more) = Self.acknowledged(reply, reportsMore: true)
                    return .ackReply(lpi, more: more)
                }
                : { reply in .ackReply(Self.wireLPI(reply), more: false) }
            laneRequest(vm, vcpu, .acknowledge(priorityMask: Priority(mask)), session: session, frame: frame, answer: answer)
        case let .waitAck(id, vcpu, mask, timeout):
            session.vcpuAsked(VMKey(id.rawValue), vcpu.rawValue)
            guard let vm = attachedVM(id, session, fail) else { return }
            guard vcpu.rawValue < vm.config.vcpuCount else { return fail(.noSuchVCPU, detail: UInt32(vcpu.rawValue)) }
            waitAcknowledge(vm, vcpu, mask: mask, timeoutMicroseconds: timeout, session: session, frame: frame)
        case let .wake(id, vcpu):
            guard let vm = attachedVM(id, session, fail) else { return }
            guard vcpu.rawValue < vm.config.vcpuCount else { return fail(.noSuchVCPU, detail: UInt32(vcpu.rawValue)) }
            wake(vm, vcpu, session: session, frame: frame)
        case let .pending(id, vcpu, cursor, maxEntries):
            session.vcpuAsked(VMKey(id.rawValue), vcpu.rawValue)
            guard let vm = attachedVM(id, session, fail) else { return }
            guard vcpu.rawValue < vm.config.vcpuCount else { return fail(.noSuchVCPU, detail: UInt32(vcpu.rawValue)) }
            let from = INTID(max(cursor, 8192))
            // As many as fit in the agreed frame length (header, count and cursor, 8 bytes each),
            // which is also what max_entries 0 asks for.
            let frameLimit = Int(session.hello?.limits.maxFrameLength ?? Limits.defaults.maxFrameLength)
            let fit = (frameLimit - Wire.headerLength - 8) / 8
            let limit = maxEntries == 0 ? fit : min(Int(maxEntries), fit)
            laneRequest(vm, vcpu, .pendingLPIs(from: from, limit: limit), session: session, frame: frame) { reply in
                guard case .pending(let page) = reply else { return .pendingReply([], nextCursor: 0) }
                let lpis = page.lpis.map { ITSWire.PendingLPI(intid: Wire.INTID(rawValue: $0.intid.rawValue),
                                                              priority: $0.config.priority.rawValue, enabled: $0.config.isEnabled) }
                return .pendingReply(lpis, nextCursor: page.next?.rawValue ?? 0)
            }
        case let .bindIRQFD(key, startMasked):
            if bindIRQFD(key, startMasked: startMasked, fds: fds, session: session, fail: fail) { done(.done(.bindIRQFD)) }
        case .unbindIRQFD(let key):
            if updateIRQFD(key, mask: nil, session: session, fail: fail) { done(.done(.unbindIRQFD)) }
        case .mask(let key):
            if updateIRQFD(key, mask: true, session: session, fail: fail) { done(.done(.mask)) }
        case .unmask(let key):
            if updateIRQFD(key, mask: false, session: session, fail: fail) { done(.done(.unmask)) }
        case let .snapshotVM(id, offset, maxBytes):
            snapshotVM(id, offset: offset, maxBytes: maxBytes, session: session, frame: frame, fail: fail)
        case .restoreVM(let chunk):
            restoreVM(chunk, session: session, frame: frame, fail: fail)
        case let .dump(id, section, cursor, maxEntries):
            dump(id, section, cursor: cursor, maxEntries: maxEntries, session: session, frame: frame, fail: fail)
        case let .stats(id, includeSchema):
            stats(id, includeSchema: includeSchema, session: session, frame: frame, fail: fail)
        default:
            fail(.internal, "\(opcode) is not served by this build of itsd yet")
        }
    }

    /// Compares without stopping at the first difference, so that the time taken tells nothing of
    /// where a guess went wrong.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference: UInt8 = a.count == b.count ? 0 : 1
        for index in 0 ..< max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }

    /// The VM `id` names if this session is attached to it; otherwise answers with the failure.
    func attachedVM(_ id: VMID, _ session: Session, _ fail: (WireStatus, UInt32, String) -> Void) -> ServerVM? {
        if let vm = attachedVM(id, session) { return vm }
        switch registry.vm(VMKey(id.rawValue), for: session.connection.id) {
        case .success(let vm): return vm
        case .failure(let failure):
            fail(status(of: failure), id.rawValue, "")
            return nil
        }
    }

    /// The VM `id` names if this session is attached to it, from the session's cache when it
    /// names the VM of the session's last request.
    @inline(__always)
    func attachedVM(_ id: VMID, _ session: Session) -> ServerVM? {
        if let vm = session.lastVM, vm.key.rawValue == id.rawValue, !vm.isRemoved { return vm }
        guard case .success(let vm) = registry.vm(VMKey(id.rawValue), for: session.connection.id) else { return nil }
        session.lastVM = vm
        return vm
    }

    func status(of failure: VMRegistry.Failure) -> WireStatus {
        switch failure {
        case .badConfig: .badVMConfig
        case .noSuchVM: .noSuchVM
        case .badToken: .badToken
        case .notAttached: .notAttached
        case .tooManyVMs: .limitExceeded
        }
    }

    static func wireLPI(_ reply: LaneReply) -> ITSWire.PendingLPI {
        switch reply {
        case let .intid(intid, config), let .acknowledged(intid, config, _):
            return ITSWire.PendingLPI(intid: Wire.INTID(rawValue: intid.rawValue), priority: config?.priority.rawValue ?? 0xFF,
                                      enabled: config?.isEnabled ?? false)
        default:
            return .none
        }
    }

    /// An ACK or WAIT_ACK reply from the lane's answer: the LPI, and `more` only for a session that
    /// agreed 1.2 or later (``Session/reportsMore``), since an older client knows no such bit.
    static func acknowledged(_ reply: LaneReply, reportsMore: Bool) -> (lpi: ITSWire.PendingLPI, more: Bool) {
        guard reportsMore, case .acknowledged(_, _, more: true) = reply else { return (wireLPI(reply), false) }
        return (wireLPI(reply), true)
    }

    /// Sends `request` to the lane of `vcpu`; the reply (built by `answer`) goes out in order.
    @discardableResult
    func laneRequest(_ vm: ServerVM, _ vcpu: Wire.VCPU, _ request: LaneRequest, session: Session, frame: Frame,
                     answer: @escaping (LaneReply) -> Message) -> ReplyTicket
    {
        let slot: UInt64? = frame.noReply ? nil : session.reserveSlot()
        let id = frame.messageID
        let connection = session.connection.id
        let ticket = ticket { [unowned self] reply in
            guard let session = self.sessions[connection], let slot else { return }
            session.fill(slot, with: Frame(answer(reply), id: id))
        }
        let index = VCPUIndex(vcpu.rawValue)
        vm.operations.queue(.request(vm.key, index, request, ticket: ticket), for: index)
        markDirty(vm)
        return ticket
    }
}

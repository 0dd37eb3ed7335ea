import ITSModel
import ITSWire

/// MMIO forwarding and guest memory regions (Protocol/PROTOCOL.md, 6.7 - 6.9).
extension Server {
    /// The size of the ITS frame and of a redistributor frame (RD_base and SGI_base).
    static let mmioFrameSize: UInt64 = 0x2_0000
    /// RD_base is the first 64K of a redistributor frame; SGI_base (no LPI registers) the second.
    static let rdBaseSize: UInt64 = 0x1_0000

    func mmio(_ access: MMIOAccess, write value: UInt64?, deviceID: UInt32, session: Session, frame: Frame,
              fail: (WireStatus, UInt32, String) -> Void)
    {
        guard let vm = attachedVM(access.vm, session, fail) else { return }
        if value != nil { vm.guestHasRun = true }
        let bytes = UInt64(access.width.rawValue)
        guard access.offset < Self.mmioFrameSize, access.offset % bytes == 0 else {
            return fail(.badMMIOOffset, UInt32(truncatingIfNeeded: access.offset), "")
        }
        let width = ITSModel.MMIOWidth(rawValue: Int(bytes))!
        let opcode = frame.message.opcode
        func answer(_ result: Result<UInt64, MMIOIgnoredReason>) -> Message {
            switch result {
            case .success(let read): return value == nil ? .mmioReadReply(value: read) : .done(opcode)
            case .failure(.unsupportedWidth): return .error(opcode, ErrorReport(.badMMIOWidth, detail: UInt32(bytes)))
            case .failure(.misaligned): return .error(opcode, ErrorReport(.badMMIOOffset, detail: UInt32(truncatingIfNeeded: access.offset)))
            // Reserved locations read as zero and ignore writes.
            case .failure: return value == nil ? .mmioReadReply(value: 0) : .done(opcode)
            }
        }
        func reply(_ message: Message) {
            if case .error = message, frame.noReply, !session.capabilities.contains(.errorReports) { return }
            if case .done = message, frame.noReply { return }
            session.reply(Frame(message, id: frame.messageID))
        }
        switch access.frame {
        case .its:
            if let value {
                let blockedBefore = vm.its.counters.translationsBlocked &+ vm.its.counters.translaterWritesIgnored
                let ignored = vm.its.mmioWrite(offset: access.offset, width: width, value: value, deviceID: DeviceID(deviceID),
                                               memory: vm.memory, redistributors: &vm.operations, budget: workBudget(for: vm))
                reportGuestErrors(vm)
                if access.offset == ITS.Offset.translater {
                    let blocked = vm.its.counters.translationsBlocked &+ vm.its.counters.translaterWritesIgnored != blockedBefore
                    vm.msis.count(DeviceID(deviceID), injected: !blocked, from: .translater)
                }
                markDirty(vm)
                reply(answer(ignored.map { .failure($0) } ?? .success(0)))
            } else {
                reply(answer(vm.its.mmioRead(offset: access.offset, width: width)))
            }
        case .redistributor(let vcpu):
            guard vcpu.rawValue < vm.config.vcpuCount else { return fail(.noSuchVCPU, UInt32(vcpu.rawValue), "") }
            guard access.offset < Self.rdBaseSize else { return reply(value == nil ? .mmioReadReply(value: 0) : .done(opcode)) }
            if let value {
                laneRequest(vm, vcpu, .mmioWrite(offset: access.offset, width: width, value: value), session: session,
                            frame: frame) { [unowned self, key = vm.key] laneReply in
                    guard case let .mmioWrite(ignored, disabledLPIs) = laneReply else { return .done(opcode) }
                    // EnableLPIs 1 -> 0 invalidates the ITS's translations, as KVM does.
                    if disabledLPIs { self.registry.vms[key]?.its.invalidateTranslations(.all) }
                    return answer(ignored.map { .failure($0) } ?? .success(0))
                }
            } else {
                laneRequest(vm, vcpu, .mmioRead(offset: access.offset, width: width), session: session, frame: frame) { laneReply in
                    guard case .mmioRead(let result) = laneReply else { return .mmioReadReply(value: 0) }
                    return answer(result)
                }
            }
        }
    }

    /// REMOVE_MEM_REGION: the region leaves the table at once; it is unmapped, and the reply sent,
    /// once every lane has handled a barrier queued behind whatever could still be reading it.
    func removeRegionAfterBarrier(_ vm: ServerVM, _ base: GuestAddress, _ size: UInt64, session: Session, frame: Frame) {
        guard let region = vm.memory.detachRegion(base: base, size: size) else { return }
        vm.operations.flush()
        let slot: UInt64? = frame.noReply ? nil : session.reserveSlot()
        var outstanding = lanes.lanes.count
        let id = frame.messageID
        let memory = vm.memory
        let connection = session.connection.id
        for lane in lanes.lanes {
            let barrier = ticket { [unowned self] _ in
                outstanding -= 1
                guard outstanding == 0 else { return }
                memory.unmap(region)
                if let session = self.sessions[connection], let slot { session.fill(slot, with: Frame(.done(.removeMemRegion), id: id)) }
            }
            lane.submit(.barrier(ticket: barrier))
        }
    }
}

import Glibc
import ITSModel
import ITSWire

/// BIND_IRQFD, UNBIND_IRQFD, MASK and UNMASK (Protocol/PROTOCOL.md, 6.12 - 6.13).
extension Server {
    func bindIRQFD(_ key: IRQFDKey, startMasked: Bool, fds: [Int32], session: Session,
                   fail: (WireStatus, UInt32, String) -> Void) -> Bool
    {
        guard let vm = attachedVM(key.vm, session, fail) else { return false }
        guard fds.count == 1 else {
            fds.forEach { _ = close($0) }
            fail(.fdCountMismatch, 1, "")
            return false
        }
        guard IRQFDBinding.isEventFD(fds[0]) else {
            close(fds[0])
            fail(.badFD, 0, "not an eventfd")
            return false
        }
        let pair = IRQFDKeyPair(device: DeviceID(key.deviceID.rawValue), event: EventID(key.eventID.rawValue))
        guard vm.irqfds[pair] != nil || vm.irqfds.count < ServerVM.maximumIRQFDs else {
            close(fds[0])
            fail(.limitExceeded, UInt32(ServerVM.maximumIRQFDs), "")
            return false
        }
        guard let binding = try? IRQFDBinding(fd: fds[0], device: pair.device, event: pair.event, masked: startMasked, loop: loop,
                                              signal: { [unowned self, unowned vm] device, event in
                                                  let result = vm.its.signal(device, event, redistributors: &vm.operations)
                                                  vm.msis.count(device, injected: result.isSuccess, from: .irqfd)
                                                  self.markDirty(vm)
                                                  self.flushLaneWork()
                                              })
        else {
            close(fds[0])
            fail(.internal, 0, "cannot poll the eventfd")
            return false
        }
        // Rebinding replaces: the old eventfd is closed.
        vm.irqfds.updateValue(binding, forKey: pair)?.close()
        return true
    }

    /// UNBIND_IRQFD (`mask` nil), MASK (true) and UNMASK (false).
    func updateIRQFD(_ key: IRQFDKey, mask: Bool?, session: Session, fail: (WireStatus, UInt32, String) -> Void) -> Bool {
        guard let vm = attachedVM(key.vm, session, fail) else { return false }
        let pair = IRQFDKeyPair(device: DeviceID(key.deviceID.rawValue), event: EventID(key.eventID.rawValue))
        guard let binding = vm.irqfds[pair] else {
            fail(.notBound, 0, "")
            return false
        }
        if let mask {
            binding.setMasked(mask)
            markDirty(vm)
        } else {
            binding.close()
            vm.irqfds[pair] = nil
        }
        return true
    }
}

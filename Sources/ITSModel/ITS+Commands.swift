/// Carrying out ITS commands (IHI 0069, 5.3). Each handler checks its parameters first (a bad one
/// is a command error: skipped and counted with its E_ITS_* code), then writes the table entry the
/// command changes to guest memory (a fault stalls the queue with nothing changed), then updates
/// the mappings and tells the redistributors.
extension ITS {
    /// The result of one command.
    enum CommandResult: Hashable {
        case done
        case error(ITSCommandError)
        /// A guest-memory fault: the queue stalls at this command.
        case fault(GuestMemoryFault)
        /// The command continues as ``operation`` in later budgets.
        case inProgress
    }

    /// Carries out `command`, charging work beyond the command itself (MOVALL's LPIs) to `budget`.
    mutating func execute<M: GuestMemory, R: RedistributorOperations>(
        _ command: ITSCommand, budget: inout Int, memory: M, redistributors: inout R
    ) -> CommandResult {
        switch command {
        case let .mapd(device, itt, bits, valid):
            return mapDevice(device, itt: itt, eventIDBits: bits, valid: valid, memory: memory)
        case let .mapc(collection, rdbase, valid):
            return mapCollection(collection, rdbase: rdbase, valid: valid, memory: memory)
        case let .mapti(device, event, intid, collection):
            return mapEvent(ITSCommand.Opcode.mapti, device, event, intid, collection, memory: memory, redistributors: &redistributors)
        case let .mapi(device, event, collection):
            return mapEvent(ITSCommand.Opcode.mapi, device, event, INTID(event.rawValue), collection, memory: memory,
                            redistributors: &redistributors)
        case let .movi(device, event, collection):
            return moveEvent(device, event, to: collection, memory: memory, redistributors: &redistributors)
        case let .discard(device, event):
            return discardEvent(device, event, memory: memory, redistributors: &redistributors)
        case let .inv(device, event):
            return withMappedEvent(ITSCommand.Opcode.inv, device, event) { ite, vcpu in
                redistributors.invalidate(ite.intid, on: vcpu)
            }
        case let .int(device, event):
            let result = withMappedEvent(ITSCommand.Opcode.int, device, event) { ite, vcpu in
                redistributors.setPending(ite.intid, on: vcpu)
            }
            if case .error = result { counters.translationsBlocked += 1 }
            return result
        case let .clear(device, event):
            return withMappedEvent(ITSCommand.Opcode.clear, device, event) { ite, vcpu in
                redistributors.clearPending(ite.intid, on: vcpu)
            }
        case let .invall(collection):
            guard collectionEntryAddress(collection) != nil else {
                return .error(ITSCommandError(ITSCommand.Opcode.invall, .collectionOutOfRange))
            }
            guard let vcpu = collections.load(UInt64(collection.rawValue)) else {
                return .error(ITSCommandError(ITSCommand.Opcode.invall, .unmappedCollection))
            }
            redistributors.invalidateAll(on: vcpu)
            return .done
        case .sync(let rdbase):
            // Commands complete before CREADR passes them; what may still be under way is an
            // INVALL's re-reading or a MOVALL at the redistributor, which SYNC waits for. An
            // RDbase beyond the vCPUs has nothing to wait for.
            guard rdbase < UInt64(configuration.vcpuCount),
                  redistributors.hasBackgroundWork(on: VCPUIndex(UInt16(rdbase)))
            else { return .done }
            operation = .synchronize(VCPUIndex(UInt16(rdbase)))
            return .inProgress
        case let .movall(from, to):
            guard from < UInt64(configuration.vcpuCount), to < UInt64(configuration.vcpuCount) else {
                return .error(ITSCommandError(ITSCommand.Opcode.movall, .deviceOrProcessorOutOfRange))
            }
            invalidateTranslations(.all)
            budget -= redistributors.moveAllPending(from: VCPUIndex(UInt16(from)), to: VCPUIndex(UInt16(to))) - 1
            return .done
        case .virtual:
            counters.virtualCommands += 1
            return .done
        case .unknown:
            counters.unknownCommands += 1
            return .done
        }
    }

    /// MAPD. A valid mapping of a device that is mapped already replaces it, dropping its events
    /// first, as an unmapping does (KVM's choice; the architecture leaves it UNPREDICTABLE).
    mutating func mapDevice<M: GuestMemory>(_ device: DeviceID, itt: GuestAddress, eventIDBits: Int, valid: Bool,
                                            memory: M) -> CommandResult
    {
        let opcode = ITSCommand.Opcode.mapd
        guard UInt64(device.rawValue) >> UInt64(configuration.deviceIDBits) == 0 else {
            return .error(ITSCommandError(opcode, .deviceOrProcessorOutOfRange))
        }
        guard !valid || eventIDBits <= configuration.eventIDBits else {
            return .error(ITSCommandError(opcode, .sizeOrProcessorOutOfRange))
        }
        let address: GuestAddress
        switch deviceEntryAddress(device, memory: memory) {
        case .failure(let fault): return .fault(fault)
        case .success(nil): return .error(ITSCommandError(opcode, .deviceOrProcessorOutOfRange))
        case .success(let found?): address = found
        }
        let mapping = DeviceMapping(ittAddress: itt, eventIDBits: UInt8(eventIDBits))
        guard !valid || devices.count < configuration.maximumDevices || devices.contains(UInt64(device.rawValue)) else {
            counters.mappingLimitReached += 1
            return .done
        }
        do { try memory.writeUInt64(valid ? Self.encodeDTE(mapping) : 0, at: address) } catch { return .fault(error) }
        let replacement = valid ? mapping : nil
        guard let old = devices.erase(UInt64(device.rawValue)) else {
            if let replacement { devices.store(replacement, at: UInt64(device.rawValue)) }
            return .done
        }
        invalidateTranslations(.device(device))
        operation = .unmapDevice(device, itt: old.ittAddress, next: eventKeys(of: device).lowerBound, then: replacement)
        return .inProgress
    }

    /// MAPC. Mapping a collection routes its existing events' LPIs to the new redistributor, with
    /// their pending state (KVM's choice); unmapping it unmaps them.
    mutating func mapCollection<M: GuestMemory>(_ collection: CollectionID, rdbase: UInt64, valid: Bool,
                                                memory: M) -> CommandResult
    {
        let opcode = ITSCommand.Opcode.mapc
        guard let address = collectionEntryAddress(collection) else {
            return .error(ITSCommandError(opcode, .collectionOutOfRange))
        }
        guard !valid || rdbase < UInt64(configuration.vcpuCount) else {
            return .error(ITSCommandError(opcode, .sizeOrProcessorOutOfRange))
        }
        let target = VCPUIndex(UInt16(truncatingIfNeeded: rdbase))
        do { try memory.writeUInt64(valid ? Self.encodeCTE(collection, vcpu: target) : 0, at: address) } catch {
            return .fault(error)
        }
        let key = UInt64(collection.rawValue)
        let old = collections.load(key)
        if valid { collections.store(target, at: key) } else { collections.erase(key) }
        if old == (valid ? target : nil) { return .done }
        if old != nil { invalidateTranslations(.all) }
        operation = .retargetCollection(collection, from: old, to: valid ? target : nil, next: 0)
        return .inProgress
    }

    /// MAPTI and MAPI. Mapping an event that is mapped already replaces its mapping.
    mutating func mapEvent<M: GuestMemory, R: RedistributorOperations>(
        _ opcode: UInt8, _ device: DeviceID, _ event: EventID, _ intid: INTID, _ collection: CollectionID,
        memory: M, redistributors: inout R
    ) -> CommandResult {
        guard let mapping = devices.load(UInt64(device.rawValue)) else {
            return .error(ITSCommandError(opcode, .unmappedDevice))
        }
        guard UInt64(event.rawValue) >> UInt64(mapping.eventIDBits) == 0,
              let address = Self.eventEntryAddress(event, itt: mapping.ittAddress)
        else { return .error(ITSCommandError(opcode, .eventOutOfRange)) }
        guard intid.isLPI, UInt64(intid.rawValue) >> UInt64(configuration.intidBits) == 0 else {
            return .error(ITSCommandError(opcode, .physicalIDOutOfRange))
        }
        guard collectionEntryAddress(collection) != nil else {
            return .error(ITSCommandError(opcode, .collectionOutOfRange))
        }
        let ite = EventMapping(intid: intid, collection: collection)
        let key = eventKey(device, event)
        guard events.count < configuration.maximumEvents || events.contains(key) else {
            counters.mappingLimitReached += 1
            return .done
        }
        do { try memory.writeUInt64(Self.encodeITE(ite), at: address) } catch { return .fault(error) }
        if let old = events.store(ite, at: key) {
            invalidateTranslations(.event(device, event))
            if let vcpu = collections.load(UInt64(old.collection.rawValue)) { redistributors.unmapLPI(old.intid, on: vcpu) }
        }
        if let vcpu = collections.load(UInt64(collection.rawValue)) { redistributors.mapLPI(intid, on: vcpu) }
        return .done
    }

    /// MOVI: the LPI follows, pending state included.
    mutating func moveEvent<M: GuestMemory, R: RedistributorOperations>(
        _ device: DeviceID, _ event: EventID, to collection: CollectionID, memory: M, redistributors: inout R
    ) -> CommandResult {
        let opcode = ITSCommand.Opcode.movi
        let found: (ite: EventMapping, address: GuestAddress, vcpu: VCPUIndex)
        switch lookUpEvent(opcode, device, event) {
        case .failure(let error): return .error(error)
        case .success(let result): found = result
        }
        guard collectionEntryAddress(collection) != nil else { return .error(ITSCommandError(opcode, .collectionOutOfRange)) }
        guard let target = collections.load(UInt64(collection.rawValue)) else {
            return .error(ITSCommandError(opcode, .unmappedCollection))
        }
        let moved = EventMapping(intid: found.ite.intid, collection: collection)
        do { try memory.writeUInt64(Self.encodeITE(moved), at: found.address) } catch { return .fault(error) }
        events.store(moved, at: eventKey(device, event))
        invalidateTranslations(.event(device, event))
        redistributors.moveLPI(moved.intid, from: found.vcpu, to: target)
        return .done
    }

    /// DISCARD: the event's mapping goes, and the pending state of its LPI with it; the ITE is
    /// zeroed in guest memory so that no saved table carries it.
    mutating func discardEvent<M: GuestMemory, R: RedistributorOperations>(
        _ device: DeviceID, _ event: EventID, memory: M, redistributors: inout R
    ) -> CommandResult {
        let found: (ite: EventMapping, address: GuestAddress, vcpu: VCPUIndex)
        switch lookUpEvent(ITSCommand.Opcode.discard, device, event) {
        case .failure(let error): return .error(error)
        case .success(let result): found = result
        }
        do { try memory.writeUInt64(0, at: found.address) } catch { return .fault(error) }
        events.erase(eventKey(device, event))
        invalidateTranslations(.event(device, event))
        redistributors.unmapLPI(found.ite.intid, on: found.vcpu)
        return .done
    }

    /// Runs `body` with a mapped event's ITE and target vCPU (INV, INT, CLEAR).
    mutating func withMappedEvent(_ opcode: UInt8, _ device: DeviceID, _ event: EventID,
                                  _ body: (EventMapping, VCPUIndex) -> Void) -> CommandResult
    {
        switch lookUpEvent(opcode, device, event) {
        case .failure(let error): return .error(error)
        case .success(let found):
            body(found.ite, found.vcpu)
            return .done
        }
    }

    /// The ITE of a mapped event in a mapped collection, its guest address and target vCPU, or the
    /// command error that applies.
    func lookUpEvent(_ opcode: UInt8, _ device: DeviceID, _ event: EventID)
        -> Result<(ite: EventMapping, address: GuestAddress, vcpu: VCPUIndex), ITSCommandError>
    {
        guard let mapping = devices.load(UInt64(device.rawValue)) else {
            return .failure(ITSCommandError(opcode, .unmappedDevice))
        }
        guard UInt64(event.rawValue) >> UInt64(mapping.eventIDBits) == 0,
              let address = Self.eventEntryAddress(event, itt: mapping.ittAddress)
        else { return .failure(ITSCommandError(opcode, .eventOutOfRange)) }
        guard let ite = events.load(eventKey(device, event)) else {
            return .failure(ITSCommandError(opcode, .unmappedInterrupt))
        }
        guard let vcpu = collections.load(UInt64(ite.collection.rawValue)) else {
            return .failure(ITSCommandError(opcode, .unmappedCollection))
        }
        return .success((ite, address, vcpu))
    }
}

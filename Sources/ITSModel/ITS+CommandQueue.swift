/// The command queue (IHI 0069, 5.3 and 12.19 GITS_CBASER, GITS_CWRITER, GITS_CREADR): a ring of
/// 32-byte commands in guest memory, (CBASER.Size + 1) 4K pages long. The guest advances CWRITER;
/// the ITS reads, decodes and carries out the commands from CREADR up to CWRITER, wrapping at the
/// end, and advances CREADR past each command once it is complete.
extension ITS {
    /// Where the queue stands after some processing.
    public enum QueueState: Hashable, Sendable {
        /// Nothing to do: CREADR equals CWRITER (or the ITS is disabled).
        case idle
        /// The budget ran out with commands or a command's work left.
        case moreWork
        /// A guest-memory fault stopped the queue; GITS_CREADR.Stalled is 1 until the guest writes
        /// GITS_CWRITER with Retry set.
        case stalled
    }

    public static let commandSize: UInt64 = 32

    /// The queue's bytes, or nil when GITS_CBASER is not Valid.
    var queueBytes: UInt64? {
        cbaser >> 63 != 0 ? ((cbaser & 0xFF) + 1) * 4096 : nil
    }

    var queueBase: GuestAddress { GuestAddress(cbaser & 0x000F_FFFF_FFFF_F000) }

    /// Whether the queue waits on a SYNC for redistributor work: nothing progresses until the
    /// redistributors report it done, so a caller should not spin on ``hasPendingWork``.
    public var isWaitingForRedistributors: Bool {
        if case .synchronize = operation { return true }
        return false
    }

    /// Whether commands or a command's work remain to be processed.
    public var hasPendingWork: Bool {
        enabled && !stalled && (operation != nil || creadr != cwriter)
    }

    /// Processes commands for at most `budget` units of work: one per command, one per event or
    /// LPI a long command (MAPD unmapping a device, MAPC moving a collection) touches. A command
    /// left unfinished continues in the next call and holds CREADR until it completes.
    /// - Context: the ITS's thread.
    public mutating func processCommands<M: GuestMemory, R: RedistributorOperations>(
        budget: Int, memory: M, redistributors: inout R
    ) -> QueueState {
        guard enabled else { return .idle }
        guard !stalled else { return .stalled }
        var remaining = budget
        while remaining > 0 {
            if operation != nil {
                if let fault = continueOperation(budget: &remaining, memory: memory, redistributors: &redistributors) {
                    return stall(fault)
                }
                guard operation == nil else { return .moreWork }
                completeCommand()
                continue
            }
            guard creadr != cwriter, let size = queueBytes else { return .idle }
            guard creadr < size, let address = queueBase.adding(creadr) else { return stall(nil) }
            var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
            do {
                try withUnsafeMutableBytes(of: &words) { (buffer) throws(GuestMemoryFault) in
                    try memory.read(at: address, into: buffer)
                }
            } catch {
                return stall(error)
            }
            let command = ITSCommand(UInt64(littleEndian: words.0), UInt64(littleEndian: words.1),
                                     UInt64(littleEndian: words.2), UInt64(littleEndian: words.3))
            remaining -= 1
            let outcome = execute(command, budget: &remaining, memory: memory, redistributors: &redistributors)
            // A command that faulted runs again once the queue is restarted: counted then.
            if case .fault = outcome {} else { countByNumber(command) }
            switch outcome {
            case .done:
                completeCommand()
            case .error(let error):
                counters.commandErrors[error.code, default: 0] += 1
                completeCommand()
            case .fault(let fault):
                return stall(fault)
            case .inProgress:
                continue
            }
        }
        return hasPendingWork ? .moreWork : .idle
    }

    mutating func countByNumber(_ command: ITSCommand) {
        switch command {
        case .virtual, .unknown: return
        default: counters.commandsByNumber[Int(command.opcode) & (Counters.commandNumbers - 1)] &+= 1
        }
    }

    /// Advances CREADR past the current command.
    mutating func completeCommand() {
        counters.commandsProcessed += 1
        let size = queueBytes ?? Self.commandSize
        creadr = (creadr + Self.commandSize) % size
    }

    mutating func stall(_ fault: GuestMemoryFault?) -> QueueState {
        stalled = true
        lastStallFault = fault
        counters.stalls += 1
        return .stalled
    }

    /// Continues ``operation`` for at most `budget` units. Returns a fault that stalls the queue;
    /// the operation then resumes where it stopped once the queue is restarted.
    mutating func continueOperation<M: GuestMemory, R: RedistributorOperations>(
        budget: inout Int, memory: M, redistributors: inout R
    ) -> GuestMemoryFault? {
        switch operation {
        case nil:
            return nil
        case .synchronize(let vcpu):
            if !redistributors.hasBackgroundWork(on: vcpu) { operation = nil }
            return nil
        case let .unmapDevice(device, itt, next, then):
            var batch: [(UInt64, EventMapping)] = []
            var resume: UInt64?
            let keys = eventKeys(of: device)
            events.forEach(in: next ... keys.upperBound) { key, ite in
                guard batch.count < max(budget, 1) else {
                    resume = key
                    return false
                }
                batch.append((key, ite))
                return true
            }
            for (key, ite) in batch {
                budget -= 1
                let event = EventID(UInt32(truncatingIfNeeded: key - keys.lowerBound))
                if let address = Self.eventEntryAddress(event, itt: itt) {
                    do { try memory.writeUInt64(0, at: address) } catch {
                        operation = .unmapDevice(device, itt: itt, next: key, then: then)
                        return error
                    }
                }
                events.erase(key)
                if let vcpu = collections.load(UInt64(ite.collection.rawValue)) { redistributors.unmapLPI(ite.intid, on: vcpu) }
            }
            if let resume {
                operation = .unmapDevice(device, itt: itt, next: resume, then: then)
            } else {
                if let then { devices.store(then, at: UInt64(device.rawValue)) }
                operation = nil
            }
            return nil
        case let .retargetCollection(collection, from, to, next):
            var resume: UInt64?
            var scanned = 0
            var members: [INTID] = []
            events.forEach(in: next ... .max) { key, ite in
                guard scanned < max(budget, 1) else {
                    resume = key
                    return false
                }
                scanned += 1
                if ite.collection == collection { members.append(ite.intid) }
                return true
            }
            budget -= scanned
            for intid in members {
                switch (from, to) {
                case let (source?, target?): redistributors.moveLPI(intid, from: source, to: target)
                case let (nil, target?): redistributors.mapLPI(intid, on: target)
                case let (source?, nil): redistributors.unmapLPI(intid, on: source)
                case (nil, nil): break
                }
            }
            operation = resume.map { .retargetCollection(collection, from: from, to: to, next: $0) }
            return nil
        }
    }
}

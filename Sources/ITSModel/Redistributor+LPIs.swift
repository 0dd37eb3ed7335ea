/// Mapping, pending state and configuration of the LPIs that target this redistributor.
extension Redistributor {
    /// What became of a request to map an LPI here.
    public enum MapOutcome: Hashable, Sendable {
        /// Mapped; its configuration byte was read from the LPI Configuration table.
        case mapped
        /// Another mapping already routes this INTID here; the count of mappings went up.
        case alreadyMapped
        /// The INTID is not an LPI below the GICR_PROPBASER.IDbits limit; nothing changed.
        case outOfRange
        /// Mapped, but its configuration byte could not be read: it stays disabled until an INV.
        case mappedConfigUnreadable(GuestMemoryFault)
        /// The redistributor already holds ``Configuration/maximumLPIs`` LPIs: refused, counted.
        case limitReached
    }

    /// Routes LPI `intid` to this vCPU for one more ITS mapping (MAPTI, MAPI, MOVI's destination).
    /// A new LPI reads its configuration byte now (IHI 0069, 5.1.1: configuration is read when an
    /// LPI is mapped and on invalidation) and starts not pending: a mapping never inherits the state
    /// of an earlier mapping of the same INTID.
    /// - Context: the owning lane.
    /// `epoch` tags this mapping (see ``LPIRecord``); the single-threaded model passes 0.
    public mutating func mapLPI<M: GuestMemory>(_ intid: INTID, epoch: UInt16 = 0, memory: M) -> MapOutcome {
        var sink = NoDeliverySink()
        return mapLPI(intid, epoch: epoch, memory: memory, sink: &sink)
    }

    /// ``mapLPI(_:epoch:memory:)`` reporting to `sink` when re-reading the configuration of an LPI
    /// that is pending already makes it deliverable.
    public mutating func mapLPI<M: GuestMemory, S: LPIDeliverySink>(_ intid: INTID, epoch: UInt16 = 0, memory: M,
                                                                  sink: inout S) -> MapOutcome {
        guard accepts(intid) else {
            counters.intidsOutOfRange += 1
            return .outOfRange
        }
        if var record = lpis.load(UInt64(intid.rawValue)) {
            // Another mapping or a direct LPI already made the record; the new mapping still reads
            // the configuration byte, as a fresh one would (KVM's vgic_add_lpi does too).
            record.mappings = record.mappings == .max ? .max : record.mappings + 1
            record.epoch = epoch
            lpis.store(record, at: UInt64(intid.rawValue))
            invalidate(intid, memory: memory, sink: &sink)
            return record.mappings == 1 ? .mapped : .alreadyMapped
        }
        guard lpis.count < configuration.maximumLPIs else {
            counters.lpiLimitReached += 1
            return .limitReached
        }
        switch readConfig(intid, memory: memory) {
        case .success(let config):
            lpis.store(LPIRecord(config: config, mappings: 1, epoch: epoch), at: UInt64(intid.rawValue))
            return .mapped
        case .failure(let fault):
            counters.configReadFaults += 1
            lpis.store(LPIRecord(config: .unreadable, mappings: 1, epoch: epoch), at: UInt64(intid.rawValue))
            return .mappedConfigUnreadable(fault)
        }
    }

    /// Removes one ITS mapping of `intid` (DISCARD, MAPD V=0, MOVI's source). Its pending state is
    /// cleared, so an LPI unmapped while pending is never delivered later; the record goes when no
    /// mapping is left. Returns whether the LPI was pending, for MOVI to carry over.
    /// - Context: the owning lane.
    @discardableResult
    public mutating func unmapLPI(_ intid: INTID) -> Bool {
        let key = UInt64(intid.rawValue)
        guard var record = lpis.load(key) else { return false }
        let wasPending = removePending(intid, config: record.config)
        if record.mappings > 1 {
            record.mappings -= 1
            lpis.store(record, at: key)
        } else {
            lpis.erase(key)
        }
        return wasPending
    }

    /// Makes a mapped LPI pending: the end of an ITS translation (INT, an MSI, MOVI carrying pending
    /// state). Reports the edge to `sink` when the vCPU had nothing deliverable before.
    ///
    /// Inlinable around the non-generic ``makePending(_:)``, so that the caller's sink is called
    /// directly and no generic code runs per LPI.
    /// - Context: the owning lane; the hot path of every MSI.
    @inlinable public mutating func setPending<S: LPIDeliverySink>(_ intid: INTID, sink: inout S) -> LPIPendOutcome {
        let hadDeliverable = deliverableCount != 0
        let outcome = makePending(intid)
        if !hadDeliverable, deliverableCount != 0 { sink.lpiBecameDeliverable(on: configuration.vcpu) }
        return outcome
    }

    /// ``setPending(_:sink:)`` without a sink: the vCPU went from nothing deliverable to something
    /// when ``deliverableCount`` was 0 before and is not after (one call adds at most one).
    ///
    /// One function with the walk and the mark inlined (``SparseIndex/mark(_:)``): the refusals are
    /// checked first, then one walk finds the record and marks it.
    /// - Context: the owning lane.
    @usableFromInline mutating func makePending(_ intid: INTID) -> LPIPendOutcome {
        if let refusal = refusesPending(intid) { return refusal }
        guard let (record, newlyPending) = lpis.mark(UInt64(intid.rawValue)) else {
            counters.lpisNotMapped &+= 1
            return .notMapped
        }
        var edges = NoDeliverySink()
        return pendingMarked(intid, newly: newlyPending, config: record.config, sink: &edges)
    }

    /// ``makePending(_:)`` for an LPI whose record ``SparseIndex/locate(_:)`` found already (nil:
    /// there is none), with nothing but marks changed since.
    mutating func makePending(_ intid: INTID, located: SparseIndex<LPIRecord>.Located?) -> LPIPendOutcome {
        if let refusal = refusesPending(intid) { return refusal }
        guard let (record, newlyPending) = lpis.mark(UInt64(intid.rawValue), located: located) else {
            counters.lpisNotMapped &+= 1
            return .notMapped
        }
        var edges = NoDeliverySink()
        return pendingMarked(intid, newly: newlyPending, config: record.config, sink: &edges)
    }

    /// Makes a mapped LPI pending only if the mapping routing it here is still the one tagged
    /// `epoch`: the pending state of an LPI moved here from another vCPU, arriving after the move's
    /// mapping (docs/ARCHITECTURE.md). A mapping removed or replaced in the meantime drops it
    /// (`staleMove`, counted), so no ghost is delivered and no new mapping inherits it.
    /// - Context: the owning lane.
    public mutating func setPendingIfMapped<S: LPIDeliverySink>(_ intid: INTID, epoch: UInt16,
                                                                sink: inout S) -> LPIPendOutcome
    {
        guard let record = lpis.load(UInt64(intid.rawValue)), record.mappings > 0, record.epoch == epoch else {
            counters.staleMoves += 1
            return .staleMove
        }
        return setPending(intid, sink: &sink)
    }

    /// Makes an LPI pending whether or not the ITS maps it: GICR_SETLPIR, and the pending table
    /// loaded at enable (GICR_TYPER.DirectLPI is 1). An unmapped LPI reads its configuration byte
    /// and lives until it is no longer pending.
    /// - Context: the owning lane.
    public mutating func setPendingDirect<M: GuestMemory, S: LPIDeliverySink>(
        _ intid: INTID, memory: M, sink: inout S
    ) -> LPIPendOutcome {
        guard lpisEnabled else {
            counters.lpisDroppedDisabled += 1
            return .droppedLPIsDisabled
        }
        guard accepts(intid) else {
            counters.intidsOutOfRange += 1
            return .outOfRange
        }
        let key = UInt64(intid.rawValue)
        if let (record, newlyPending) = lpis.mark(key) {
            return pendingMarked(intid, newly: newlyPending, config: record.config, sink: &sink)
        }
        guard lpis.count < configuration.maximumLPIs else {
            counters.lpiLimitReached += 1
            return .limitReached
        }
        var config = LPIConfig.unreadable
        switch readConfig(intid, memory: memory) {
        case .success(let value): config = value
        case .failure: counters.configReadFaults += 1
        }
        lpis.store(LPIRecord(config: config, mappings: 0), at: key)
        _ = lpis.mark(key)   // a new key is stored unmarked, so this mark is new
        return pendingMarked(intid, newly: true, config: config, sink: &sink)
    }

    /// Clears the pending state of `intid` (GICR_CLRLPIR, the ITS's CLEAR and DISCARD). Returns
    /// whether it was pending. An LPI with no mapping left disappears with its pending state.
    /// - Context: the owning lane.
    @discardableResult
    public mutating func clearPending(_ intid: INTID) -> Bool {
        let key = UInt64(intid.rawValue)
        guard let record = lpis.load(key) else { return false }
        let wasPending = removePending(intid, config: record.config)
        if record.mappings == 0 { lpis.erase(key) }
        return wasPending
    }

    /// Re-reads the configuration byte of `intid` from guest memory (GICR_INVLPIR, the ITS's INV).
    /// A pending LPI that becomes enabled becomes deliverable; one that becomes disabled stays
    /// pending but is not delivered. Returns the fault when the byte could not be read (the cached
    /// configuration is then kept).
    /// - Context: the owning lane.
    @discardableResult
    public mutating func invalidate<M: GuestMemory, S: LPIDeliverySink>(
        _ intid: INTID, memory: M, sink: inout S
    ) -> GuestMemoryFault? {
        let key = UInt64(intid.rawValue)
        guard var record = lpis.load(key), accepts(intid) else { return nil }
        switch readConfig(intid, memory: memory) {
        case .failure(let fault):
            counters.configReadFaults += 1
            return fault
        case .success(let config):
            guard config != record.config else { return nil }
            let old = record.config
            record.config = config
            lpis.store(record, at: key)
            if lpis.isMarked(key) { reprioritise(intid, from: old, to: config, sink: &sink) }
            return nil
        }
    }

    /// Starts re-reading every LPI's configuration byte (GICR_INVALLR, the ITS's INVALL), doing at
    /// most `budget` LPIs now; ``performPendingWork(budget:memory:sink:)`` does the rest, and
    /// GICR_SYNCR.Busy reads 1 until it is done. A sweep already under way starts over.
    /// - Context: the owning lane.
    public mutating func invalidateAll<M: GuestMemory, S: LPIDeliverySink>(
        budget: Int, memory: M, sink: inout S
    ) {
        invalidateAllCursor = 0
        _ = performPendingWork(budget: budget, memory: memory, sink: &sink)
    }

    /// Continues background work — a pending-table load, then an invalidate-all sweep — for at most
    /// `budget` units (pending-table words or LPIs). Returns whether work remains.
    /// - Context: the owning lane.
    public mutating func performPendingWork<M: GuestMemory, S: LPIDeliverySink>(
        budget: Int, memory: M, sink: inout S
    ) -> Bool {
        var remaining = budget
        if pendingTableLoadCursor != nil { loadPendingTable(budget: &remaining, memory: memory, sink: &sink) }
        if let start = invalidateAllCursor, remaining > 0 {
            invalidateAllCursor = rereadConfigurations(from: start, budget: &remaining, memory: memory, sink: &sink)
        }
        return hasPendingWork
    }

    /// Re-reads the configuration bytes of the LPIs from INTID `start` on, at most `budget` of them,
    /// a leaf of the LPI index (64 INTIDs) at a time: one guest-memory read per leaf, byte by byte
    /// only when that read faults (an unreadable byte keeps the cached configuration). Returns the
    /// INTID to continue from, or nil when every LPI has been re-read.
    mutating func rereadConfigurations<M: GuestMemory, S: LPIDeliverySink>(
        from start: UInt64, budget: inout Int, memory: M, sink: inout S
    ) -> UInt64? {
        let bits = effectiveIDBits
        let limit: UInt64 = bits >= 14 ? 1 << UInt64(bits) : 0
        let table = configurationTable
        var cursor = start
        return withUnsafeTemporaryAllocation(byteCount: SparseNode.fanout, alignment: 1) { bytes -> UInt64? in
            while budget > 0 {
                guard let leaf = lpis.leafForUpdate(atOrAfter: cursor) else { return nil }
                // The LPIs of this leaf still to do, without any outside 8192 ..< limit (possible only
                // after GICR_PROPBASER.IDbits changed): those are passed over.
                let first = cursor > leaf.base ? Int(cursor - leaf.base) : 0
                var due = leaf.occupied & (~0 << UInt64(first)) & Self.slots(of: leaf.base, in: 8192 ..< max(8192, limit))
                if due == 0 { budget -= 1 }   // a leaf with nothing to do still costs a unit
                var loaded = false
                if due != 0 {
                    let low = due.trailingZeroBitCount
                    let high = 63 - due.leadingZeroBitCount
                    let window = UnsafeMutableRawBufferPointer(rebasing: bytes[low ... high])
                    if let address = table.adding(leaf.base + UInt64(low) - 8192) {
                        loaded = (try? memory.read(at: address, into: window)) != nil
                    }
                    while due != 0 {
                        let slot = due.trailingZeroBitCount
                        guard budget > 0 else { return leaf.base + UInt64(slot) }
                        due &= due &- 1
                        budget -= 1
                        let intid = INTID(UInt32(truncatingIfNeeded: leaf.base) + UInt32(slot))
                        let config: LPIConfig
                        if loaded {
                            config = LPIConfig(rawValue: bytes[slot])
                        } else if case .success(let value) = readConfig(intid, memory: memory) {
                            config = value
                        } else {
                            continue
                        }
                        var record = leaf[slot]
                        guard config != record.config else { continue }
                        let old = record.config
                        record.config = config
                        leaf[slot] = record
                        if leaf.marked & (1 << UInt64(slot)) != 0 { reprioritise(intid, from: old, to: config, sink: &sink) }
                    }
                }
                guard leaf.base <= UInt64.max - 64 else { return nil }
                cursor = leaf.base + 64
            }
            return lpis.first(atOrAfter: cursor)?.key
        }
    }

    /// The slots of the leaf whose slot 0 is INTID `base` that lie in `range`, as a bitmap.
    static func slots(of base: UInt64, in range: Range<UInt64>) -> UInt64 {
        let low = max(range.lowerBound, base)
        let high = min(range.upperBound, base + 64)
        guard low < high else { return 0 }
        let width = high - low
        return (width == 64 ? ~0 : (1 << width) - 1) << (low - base)
    }

    // MARK: - Pending and deliverable sets

    /// Why `intid` cannot be made pending here, counted, or nil when it may be: LPIs disabled
    /// (GICR_CTLR.EnableLPIs 0) or an INTID outside the range in force.
    @inline(__always) mutating func refusesPending(_ intid: INTID) -> LPIPendOutcome? {
        guard lpisEnabled else {
            counters.lpisDroppedDisabled &+= 1
            return .droppedLPIsDisabled
        }
        guard accepts(intid) else {
            counters.intidsOutOfRange &+= 1
            return .outOfRange
        }
        return nil
    }

    /// The rest of making `intid` pending once its record is marked: `newly` tells whether the mark
    /// is new (else the signal merges with the pending LPI); an enabled LPI becomes deliverable.
    mutating func pendingMarked<S: LPIDeliverySink>(_ intid: INTID, newly: Bool, config: LPIConfig,
                                                    sink: inout S) -> LPIPendOutcome
    {
        guard newly else {
            counters.lpisCoalesced &+= 1
            return .alreadyPending
        }
        counters.lpisMadePending &+= 1
        if config.isEnabled { addDeliverable(intid, level: config.priority.level, sink: &sink) }
        return .madePending
    }

    /// Clears the pending mark of `intid` and takes it out of its deliverable set; returns whether
    /// it was pending.
    mutating func removePending(_ intid: INTID, config: LPIConfig) -> Bool {
        guard lpis.unmark(UInt64(intid.rawValue)) else { return false }
        if config.isEnabled { removeDeliverable(intid, level: config.priority.level) }
        return true
    }

    mutating func addDeliverable<S: LPIDeliverySink>(_ intid: INTID, level: Int, sink: inout S) {
        deliverable[level].insert(UInt64(intid.rawValue))
        deliverableLevels |= 1 &<< UInt64(level)
        deliverableCount &+= 1
        if deliverableCount == 1 { sink.lpiBecameDeliverable(on: configuration.vcpu) }
    }

    mutating func removeDeliverable(_ intid: INTID, level: Int) {
        deliverable[level].remove(UInt64(intid.rawValue))
        if deliverable[level].isEmpty { deliverableLevels &= ~(1 << UInt64(level)) }
        deliverableCount -= 1
    }

    /// Moves a pending LPI between deliverable sets after its configuration changed.
    mutating func reprioritise<S: LPIDeliverySink>(_ intid: INTID, from old: LPIConfig, to new: LPIConfig, sink: inout S) {
        if old.isEnabled { removeDeliverable(intid, level: old.priority.level) }
        if new.isEnabled { addDeliverable(intid, level: new.priority.level, sink: &sink) }
    }

    /// Reads the configuration byte of `intid` (which `accepts`) from the LPI Configuration table.
    func readConfig<M: GuestMemory>(_ intid: INTID, memory: M) -> Result<LPIConfig, GuestMemoryFault> {
        guard let address = configurationTable.adding(UInt64(intid.rawValue) - 8192) else {
            return .failure(GuestMemoryFault(.addressOverflow, address: configurationTable, length: 1))
        }
        do {
            return .success(LPIConfig(rawValue: try memory.readUInt8(at: address)))
        } catch {
            return .failure(error)
        }
    }
}

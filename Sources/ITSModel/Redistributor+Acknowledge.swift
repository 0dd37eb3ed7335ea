/// The CPU side: which LPI the vCPU takes next, taking it, and listing what is pending.
extension Redistributor {
    /// The highest-priority deliverable LPI whose priority is strictly higher (numerically lower)
    /// than `priorityMask`, ties going to the lowest INTID; nil when there is none. O(h): the
    /// occupied priority levels are a bitmap and each level's smallest INTID is found through the
    /// sparse set's bitmaps, so no LPI is scanned.
    /// - Context: the owning lane.
    public func highestPriorityPending(priorityMask: Priority = .lowest) -> INTID? {
        Self.highestPriorityPending(in: deliverable, levels: deliverableLevels, priorityMask: priorityMask)
    }

    /// The work of ``highestPriorityPending(priorityMask:)`` on the deliverable sets alone, so that
    /// mutating callers do not copy the whole redistributor to call it.
    static func highestPriorityPending(in deliverable: [SparseBitSet], levels occupied: UInt64,
                                       priorityMask: Priority) -> INTID?
    {
        // Levels l with l * 4 < mask, i.e. l < ceil(mask / 4).
        let levels = (Int(priorityMask.rawValue) + 3) >> 2
        let eligible = levels >= 64 ? occupied : occupied & ((1 << UInt64(levels)) - 1)
        guard eligible != 0, let intid = deliverable[eligible.trailingZeroBitCount].first else { return nil }
        return INTID(UInt32(truncatingIfNeeded: intid))
    }

    /// Takes the LPI ``highestPriorityPending(priorityMask:)`` names: clears its pending state and
    /// returns it, or returns 1023 (spurious) when nothing is deliverable under the mask. LPIs have
    /// no active state, so the acknowledge is complete in this one step (IHI 0069, 5.1).
    /// - Context: the owning lane.
    public mutating func acknowledge(priorityMask: Priority = .lowest) -> INTID {
        guard let intid = Self.highestPriorityPending(in: deliverable, levels: deliverableLevels, priorityMask: priorityMask)
        else { return .spurious }
        clearPending(intid)
        counters.lpisAcknowledged += 1
        return intid
    }

    /// Up to `limit` pending LPIs (enabled or not) from INTID `cursor` on, in INTID order, and the
    /// cursor of the next page. O(h + limit + leaves of the LPI index passed over): the pending
    /// LPIs are the marked records (see ``SparseIndex/forEachMarked(in:_:)``).
    /// - Context: the owning lane.
    public func pendingLPIs(from cursor: INTID = .firstLPI, limit: Int) -> PendingPage {
        let limit = max(0, limit)
        var page: [PendingLPI] = []
        var next: INTID?
        lpis.forEachMarked(in: UInt64(cursor.rawValue) ... .max) { key, record in
            let intid = INTID(UInt32(truncatingIfNeeded: key))
            guard page.count < limit else {
                next = intid
                return false
            }
            page.append(PendingLPI(intid: intid, config: record.config))
            return true
        }
        return PendingPage(lpis: page, next: next)
    }

    /// Whether `intid` is pending here. O(h).
    public func isPending(_ intid: INTID) -> Bool { lpis.isMarked(UInt64(intid.rawValue)) }

    /// Drops every pending LPI (EnableLPIs going from 1 to 0, as KVM does) and the records of LPIs
    /// that existed only because they were pending; stops any pending-table load.
    mutating func dropAllPending() {
        counters.lpisDroppedOnDisable += UInt64(pendingCount)
        var direct: [UInt64] = []
        lpis.forEachMarked { key, record in
            if record.mappings == 0 { direct.append(key) }
            return true
        }
        for key in direct { lpis.erase(key) }
        lpis.unmarkAll()
        for level in 0 ..< 64 where deliverableLevels & (1 << UInt64(level)) != 0 { deliverable[level].removeAll() }
        deliverableLevels = 0
        deliverableCount = 0
        pendingTableLoadCursor = nil
    }
}

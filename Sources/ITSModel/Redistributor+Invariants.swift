/// Consistency of a redistributor's LPI state (STYLE.md principle 8).
extension Redistributor {
    /// Checks, stopping the process when broken, that:
    /// - the LPI index is sound, its marks (the pending LPIs) included, and a record with no
    ///   mapping is pending (a direct LPI lives only while pending);
    /// - the deliverable sets hold exactly the pending, enabled LPIs, each at its priority level;
    /// - `deliverableCount` and the occupied-level bitmap match those sets;
    /// - nothing is pending while EnableLPIs is 0.
    /// O(LPIs); tests call it after steps of their random sequences.
    public func checkInvariants() {
        lpis.checkInvariants()
        var deliverable = 0
        lpis.forEachMarked { key, record in
            if record.config.isEnabled {
                precondition(self.deliverable[record.config.priority.level].contains(key), "LPI \(key) missing from its level")
                deliverable += 1
            }
            return true
        }
        lpis.forEach { key, record in
            precondition(record.mappings > 0 || lpis.isMarked(key), "direct LPI \(key) kept though not pending")
            return true
        }
        var counted = 0
        for level in 0 ..< 64 {
            let members = self.deliverable[level].count
            counted += members
            precondition((members > 0) == (deliverableLevels & (1 << UInt64(level)) != 0), "level bitmap disagrees at \(level)")
        }
        precondition(counted == deliverable && deliverableCount == deliverable, "deliverable counts disagree")
        precondition(lpisEnabled || pendingCount == 0, "LPIs pending while EnableLPIs is 0")
    }
}

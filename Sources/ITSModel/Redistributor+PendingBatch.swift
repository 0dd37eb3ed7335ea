/// Making a batch of translated LPIs pending across a VM's redistributors (INJECT_BATCH).
extension Redistributor {
    /// The most translations ``makePending(_:at:)`` takes in one call: one bit of its result each.
    @usableFromInline static let pendingBatchLimit = 64

    /// Makes each translation's LPI pending at its vCPU's redistributor, in order, with the outcome
    /// ``makePending(_:)`` gives one at a time. Returns the edges: bit i is set when translation i
    /// took its vCPU from nothing deliverable to something (at most one per vCPU).
    ///
    /// Two passes: the first locates every LPI's record (``SparseIndex/locate(_:)``), a short loop
    /// of independent walks whose cache misses overlap; the second marks each record through its
    /// location and updates the deliverable sets. Only marks change in between, so the locations
    /// stay valid. Marking straight away instead waits on each record's miss in turn.
    /// - Context: the thread that owns every redistributor in `redistributors`.
    @usableFromInline static func makePending(_ translations: UnsafeBufferPointer<ITS.Translation>,
                                              at redistributors: UnsafeMutableBufferPointer<Redistributor>) -> UInt64
    {
        precondition(translations.count <= pendingBatchLimit, "at most \(pendingBatchLimit) translations at a time")
        for translation in translations {
            precondition(Int(translation.vcpu.rawValue) < redistributors.count,
                         "a translation to vCPU \(translation.vcpu), which the VM does not have")
        }
        // SAFETY: every subscript of `redistributors` below is a translation's vCPU, checked above to
        // lie inside the buffer; `located` has pendingBatchLimit >= translations.count elements,
        // each initialised by the first pass before the second reads it.
        return withUnsafeTemporaryAllocation(of: SparseIndex<LPIRecord>.Located?.self, capacity: pendingBatchLimit) {
            located in
            for (index, translation) in translations.enumerated() {
                let intid = UInt64(translation.intid.rawValue)
                located.initializeElement(at: index, to: redistributors[Int(translation.vcpu.rawValue)].lpis.locate(intid))
            }
            var edges: UInt64 = 0
            for (index, translation) in translations.enumerated() {
                let vcpu = Int(translation.vcpu.rawValue)
                let hadDeliverable = redistributors[vcpu].deliverableCount != 0
                _ = redistributors[vcpu].makePending(translation.intid, located: located[index])
                if !hadDeliverable, redistributors[vcpu].deliverableCount != 0 { edges |= 1 << UInt64(index) }
            }
            // Locations hold no references, so leaving them initialised in the temporary buffer
            // leaks nothing.
            return edges
        }
    }
}

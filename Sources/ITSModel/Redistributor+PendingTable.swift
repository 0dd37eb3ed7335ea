/// The LPI Pending table in guest memory (IHI 0069, 5.1.2): one bit per INTID, LPI n at bit n % 8 of
/// byte n / 8 from GICR_PENDBASER.PA. The model reads it when EnableLPIs goes from 0 to 1 and writes it
/// back on request (what KVM's SAVE_PENDING_TABLES does, for migration); in between the pending state
/// lives in the model.
extension Redistributor {
    /// The first and past-the-last 64-bit words of the table that hold LPIs.
    var pendingTableWords: Range<UInt64> {
        let limit: UInt64 = effectiveIDBits >= 14 ? 1 << UInt64(effectiveIDBits) : 8192
        return 8192 / 64 ..< limit / 64
    }

    /// Starts loading the pending table after EnableLPIs went from 0 to 1, unless PTZ said it is
    /// zero. Work beyond `budget` words continues in ``performPendingWork(budget:memory:sink:)``.
    mutating func startPendingTableLoad<M: GuestMemory, S: LPIDeliverySink>(budget: Int, memory: M, sink: inout S) {
        guard !pendingTableZero else {
            pendingTableZero = false
            return
        }
        pendingTableLoadCursor = pendingTableWords.lowerBound
        var remaining = budget
        loadPendingTable(budget: &remaining, memory: memory, sink: &sink)
    }

    /// Reads up to `budget` words of the pending table. Each set bit makes its LPI pending and is
    /// then cleared in guest memory, so that a later enable cannot deliver the same LPI again (as
    /// KVM does). A word that cannot be read ends the load and is counted.
    mutating func loadPendingTable<M: GuestMemory, S: LPIDeliverySink>(budget: inout Int, memory: M, sink: inout S) {
        guard var word = pendingTableLoadCursor else { return }
        let end = pendingTableWords.upperBound
        while word < end, budget > 0 {
            budget -= 1
            guard let address = pendingTable.adding(index: word, stride: 8),
                  let bits = try? memory.readUInt64(at: address)
            else {
                counters.pendingTableFaults += 1
                pendingTableLoadCursor = nil
                return
            }
            if bits != 0 {
                var remaining = bits
                while remaining != 0 {
                    let intid = INTID(UInt32(word * 64) + UInt32(remaining.trailingZeroBitCount))
                    remaining &= remaining - 1
                    _ = setPendingDirect(intid, memory: memory, sink: &sink)
                }
                if (try? memory.writeUInt64(0, at: address)) == nil { counters.pendingTableFaults += 1 }
            }
            word += 1
        }
        pendingTableLoadCursor = word < end ? word : nil
    }

    /// Writes every word of the LPI Pending table that holds LPIs (INTIDs 8192 up to the
    /// GICR_PROPBASER.IDbits limit; IHI 0069, 5.1.2): the bit of each pending LPI set, every other
    /// bit cleared — what KVM's SAVE_PENDING_TABLES does for migration. No bit of an earlier save
    /// survives, so an LPI saved as pending and then acknowledged or unmapped cannot come back as a
    /// pending direct LPI when the table is loaded at the next enable. Meaningful while EnableLPIs
    /// is 1, when the table belongs to the redistributor. Returns the first fault, after which
    /// nothing more is written.
    /// - Complexity: O(2^IDbits / 64) writes, the same words the load at enable reads.
    /// - Context: the owning lane.
    public func savePendingTable<M: GuestMemory>(to memory: M) -> GuestMemoryFault? {
        let table = pendingTable
        for word in pendingTableWords {
            guard let address = table.adding(index: word, stride: 8) else {
                return GuestMemoryFault(.addressOverflow, address: table, length: 8)
            }
            do { try memory.writeUInt64(lpis.markWord(word), at: address) } catch { return error }
        }
        return nil
    }
}

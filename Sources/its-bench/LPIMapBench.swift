import ITSModel

/// `its-bench lpi-map`: the sparse LPI index against a Swift Dictionary holding the same records, a
/// singly linked list (the design KVM had before its xarray), and a floor: one dependent random
/// memory access over a working set as large as the index.
///
/// Every lookup is dependent on the one before (its result feeds the next index), so each figure
/// is a latency, comparable with the floor, not a throughput that memory-level parallelism hides.
enum LPIMapBench {
    static let sizes = [1024, 65536, 1_048_576]

    struct Row {
        var size: Int
        var indexLookup: Double
        var indexDependent: Double
        var dictDependent: Double
        var indexPendAck: Double
        var indexBytesPerLPI: Double
        var dictLookup: Double
        var listLookup: Double
        var floor: Double
    }

    /// A node of the linked list baseline.
    final class ListNode {
        let intid: UInt32
        let record: LPIRecord
        let next: ListNode?
        init(intid: UInt32, record: LPIRecord, next: ListNode?) {
            self.intid = intid
            self.record = record
            self.next = next
        }
    }

    static func run(json: Bool) {
        var rows: [Row] = []
        for size in sizes { rows.append(measure(size: size, seed: 0x5EED_0000 + UInt64(size))) }
        if json {
            func array(_ values: [Double]) -> String { "[" + values.map(ITSBench.json).joined(separator: ", ") + "]" }
            print("{\"sizes\": [\(rows.map { String($0.size) }.joined(separator: ", "))], "
                + "\"index_lookup_ns\": \(array(rows.map(\.indexLookup))), "
                + "\"index_pend_ack_ns\": \(array(rows.map(\.indexPendAck))), "
                + "\"index_bytes_per_lpi\": \(array(rows.map(\.indexBytesPerLPI))), "
                + "\"dict_lookup_ns\": \(array(rows.map(\.dictLookup))), "
                + "\"list_lookup_ns\": \(array(rows.map(\.listLookup))), "
                + "\"floor_ns\": \(array(rows.map(\.floor))), "
                + "\"index_dependent_lookup_ns\": \(array(rows.map(\.indexDependent))), "
                + "\"dict_dependent_lookup_ns\": \(array(rows.map(\.dictDependent)))}")
            return
        }
        print("LPI lookup, ns per lookup, median of 5 (INTIDs: a random quarter of 8192 ..< 8192 + 4 x size)")
        print("stream: independent lookups; dependent: each lookup waits for the one before, like the floor")
        let header = ["size", "index", "dict", "list", "floor", "idx/dict", "idx/floor", "list/idx",
                      "idx dep", "dict dep", "pend+ack", "bytes/LPI"]
        print(header.map { pad($0, 10) }.joined())
        for row in rows {
            let cells = [String(row.size), fmt(row.indexLookup), fmt(row.dictLookup), fmt(row.listLookup), fmt(row.floor),
                         fmt(row.indexLookup / row.dictLookup), fmt(row.indexLookup / row.floor),
                         fmt(row.listLookup / row.indexLookup), fmt(row.indexDependent), fmt(row.dictDependent),
                         fmt(row.indexPendAck), fmt(row.indexBytesPerLPI)]
            print(cells.map { pad($0, 10) }.joined())
        }
    }

    static func measure(size: Int, seed: UInt64) -> Row {
        var rng = SplitMix64(seed: seed)
        // A random quarter of the range: exactly `size` distinct INTIDs.
        var range = Array(UInt32(8192) ..< UInt32(8192 + 4 * size))
        range.shuffle(using: &rng)
        let intids = Array(range.prefix(size))
        let records = intids.map { LPIRecord(config: LPIConfig(rawValue: UInt8(truncatingIfNeeded: $0) | 2), mappings: 1) }

        let (index, dict, list) = build(intids: intids, records: records)

        let lookups = 2_000_000
        var order = [UInt32](repeating: 0, count: lookups + 1)
        for i in order.indices { order[i] = intids[Int.random(in: 0 ..< size, using: &rng)] }
        let keys = order

        let indexLookup = timeLookups(keys, dependent: false) { index.load(UInt64($0))! }
        let dictLookup = timeLookups(keys, dependent: false) { dict[$0]! }
        let indexDependent = timeLookups(keys, dependent: true) { index.load(UInt64($0))! }
        let dictDependent = timeLookups(keys, dependent: true) { dict[$0]! }
        let listLookups = size <= 1024 ? 50_000 : size <= 65536 ? 1000 : 24
        let listLookup = medianNanoseconds(operations: listLookups, repeats: 3) {
            var position = 0
            var sum: UInt32 = 0
            for _ in 0 ..< listLookups {
                let wanted = keys[position]
                var node = list
                while let current = node, current.intid != wanted { node = current.next }
                sum &+= UInt32(node!.record.config.rawValue)
                position += 1
            }
            blackHole(sum)
        }
        let floor = floorNanoseconds(workingSetBytes: index.bytesUsed, accesses: lookups, rng: &rng)
        let pendAck = pendAckNanoseconds(intids: intids, rng: &rng)
        return Row(size: size, indexLookup: indexLookup, indexDependent: indexDependent, dictDependent: dictDependent,
                   indexPendAck: pendAck,
                   indexBytesPerLPI: Double(index.bytesUsed) / Double(size), dictLookup: dictLookup,
                   listLookup: listLookup, floor: floor)
    }

    /// Nanoseconds per lookup of `keys` (median of 5 passes). Independent lookups are a stream, as
    /// an MSI stream is: the processor overlaps consecutive lookups. Dependent ones feed each result
    /// into the next key's position, so each lookup's full latency is paid, as in the floor.
    @inline(__always)
    static func timeLookups(_ keys: [UInt32], dependent: Bool, _ lookup: (UInt32) -> LPIRecord) -> Double {
        let count = keys.count - 1
        let step = dependent ? opaqueZero : 0
        return keys.withUnsafeBufferPointer { keys in
            medianNanoseconds(operations: count) {
                var position = 0
                var sum: UInt32 = 0
                if dependent {
                    for _ in 0 ..< count {
                        let record = lookup(keys[position])
                        sum &+= UInt32(record.config.rawValue)
                        position += 1 + (Int(record.mappings) & step)
                    }
                } else {
                    for _ in 0 ..< count {
                        sum &+= UInt32(lookup(keys[position]).config.rawValue)
                        position += 1
                    }
                }
                blackHole(sum)
            }
        }
    }

    /// The three structures holding the same records. The linked list is built the way KVM's was,
    /// each new LPI added at the head.
    static func build(intids: [UInt32], records: [LPIRecord]) -> (SparseIndex<LPIRecord>, [UInt32: LPIRecord], ListNode?) {
        var index = SparseIndex<LPIRecord>()
        var dict: [UInt32: LPIRecord] = [:]
        dict.reserveCapacity(intids.count)
        var list: ListNode?
        for (intid, record) in zip(intids, records) {
            index.store(record, at: UInt64(intid))
            dict[intid] = record
            list = ListNode(intid: intid, record: record, next: list)
        }
        return (index, dict, list)
    }

    /// One dependent random access per step over `workingSetBytes`: a single random cycle through
    /// cache-line-sized slots (Sattolo's algorithm), chased pointer by pointer.
    static func floorNanoseconds(workingSetBytes: Int, accesses: Int, rng: inout SplitMix64) -> Double {
        let wordsPerLine = 8
        let lines = max(2, workingSetBytes / 64)
        var cycle = Array(0 ..< lines)
        for i in stride(from: lines - 1, to: 0, by: -1) { cycle.swapAt(i, Int.random(in: 0 ..< i, using: &rng)) }
        var slots = [UInt64](repeating: 0, count: lines * wordsPerLine)
        for i in 0 ..< lines { slots[i * wordsPerLine] = UInt64(cycle[i] * wordsPerLine) }
        return slots.withUnsafeBufferPointer { buffer in
            medianNanoseconds(operations: accesses) {
                var position = 0
                for _ in 0 ..< accesses { position = Int(buffer[position]) }
                blackHole(position)
            }
        }
    }

    /// Set pending then acknowledge, per LPI: every LPI of one vCPU made pending in random order,
    /// then all acknowledged in priority order.
    static func pendAckNanoseconds(intids: [UInt32], rng: inout SplitMix64) -> Double {
        let size = intids.count
        let configTable = GuestAddress(0x100_0000)
        let memory = InMemoryGuestMemory(base: configTable, size: 4 * size + 8192)
        for intid in intids {
            let config = LPIConfig(priority: Priority(UInt8(truncatingIfNeeded: intid &* 2_654_435_761 >> 24)), enabled: true)
            try! memory.writeUInt8(config.rawValue, at: configTable.adding(UInt64(intid - 8192))!)
        }
        var sink = DeliveryLog()
        var redistributor = Redistributor(.init(vcpu: VCPUIndex(0), isLast: true, intidBits: 32))
        redistributor.mmioWrite(offset: Redistributor.Offset.propbaser, width: .doubleword, value: configTable.rawValue | 31,
                                memory: memory, sink: &sink)
        redistributor.mmioWrite(offset: Redistributor.Offset.pendbaser, width: .doubleword, value: 1 << 62,
                                memory: memory, sink: &sink)
        redistributor.mmioWrite(offset: Redistributor.Offset.ctlr, width: .word, value: 1, memory: memory, sink: &sink)
        for intid in intids { _ = redistributor.mapLPI(INTID(intid), memory: memory) }
        var order = intids.map { INTID($0) }
        order.shuffle(using: &rng)
        return medianNanoseconds(operations: size, repeats: 3) {
            for intid in order { _ = redistributor.setPending(intid, sink: &sink) }
            var taken = 0
            while redistributor.acknowledge() != .spurious { taken += 1 }
            precondition(taken == size, "pend/ack lost LPIs")
            sink.removeAll()
        }
    }

    static func fmt(_ value: Double) -> String {
        value >= 100 ? String(Int(value.rounded())) : String((value * 100).rounded() / 100)
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : String(repeating: " ", count: width - text.count) + text
    }
}

/// Payload layouts of replies (Protocol/PROTOCOL.md, "Messages"). Counts are checked against the
/// bytes that remain before any array is reserved, so a hostile count cannot make the decoder allocate.
extension FrameDecoder {
    func decodeReply(_ opcode: Opcode, _ r: inout ByteReader, slice: ArraySlice<UInt8>) throws(WireError) -> Message {
        if opcode.traits?.replyIsEmpty == true { return .done(opcode) }
        switch opcode {
        case .hello:
            return .helloReply(try Self.readHello(&r))
        case .ping:
            return .pingReply(nonce: try r.u64())
        case .createVM:
            let vm = VMID(try r.u32())
            try r.zeros(4)
            return .createVMReply(vm, token: try Self.readToken(&r))
        case .attachVM:
            let vm = VMID(try r.u32())
            return .attachVMReply(vm, try Self.readVMConfig(&r, reserved: 7))
        case .listVMs:
            let count = try r.u32()
            try r.zeros(4)
            try r.expectEntries(count, size: 16)
            var list: [VMInfo] = []
            list.reserveCapacity(Int(count))
            for _ in 0..<count {
                let vm = VMID(try r.u32())
                let config = try Self.readVMConfig(&r, reserved: 0)
                let rawState = try r.u8()
                guard let state = VMState(rawValue: rawState) else {
                    throw WireError(.badValue, detail: UInt32(rawState))
                }
                let connections = try r.u16()
                try r.zeros(4)
                list.append(VMInfo(vm: vm, config: config, state: state, connections: connections))
            }
            return .listVMsReply(list)
        case .mmioRead:
            return .mmioReadReply(value: try r.u64())
        case .injectBatch:
            return .injectBatchReply(injected: try r.u32(), blocked: try r.u32())
        case .hppi:
            return .hppiReply(try Self.readPendingLPI(&r))
        case .ack:
            let (lpi, more) = try Self.readAcknowledgedLPI(&r)
            return .ackReply(lpi, more: more)
        case .waitAck:
            let (lpi, more) = try Self.readAcknowledgedLPI(&r)
            return .waitAckReply(lpi, more: more)
        case .pending:
            let count = try r.u32()
            let next = try r.u32()
            try r.expectEntries(count, size: 8)
            var list: [PendingLPI] = []
            list.reserveCapacity(Int(count))
            for _ in 0..<count { list.append(try Self.readPendingLPI(&r)) }
            return .pendingReply(list, nextCursor: next)
        case .stats:
            return .statsReply(try Self.readStatsReport(&r))
        case .dump:
            return .dumpReply(try Self.readDumpPage(&r))
        case .snapshotVM:
            return .snapshotReply(try Self.readSnapshotChunk(&r, slice: slice))
        default:
            throw WireError(.unknownOpcode, detail: UInt32(opcode.rawValue))
        }
    }

    /// `u32 intid, u8 priority, u8 flags (bit 0 enabled), u16 reserved`: an HPPI reply or a
    /// PENDING entry. Any other flag bit is `BAD_VALUE` (detail: the flags byte).
    static func readPendingLPI(_ r: inout ByteReader) throws(WireError) -> PendingLPI {
        try readLPI(&r, defined: PendingLPI.enabledFlag).lpi
    }

    /// An ACK or WAIT_ACK reply: the layout of ``readPendingLPI(_:)`` with flags bit 1 `more`
    /// (PROTOCOL.md 6.16, added in 1.2).
    static func readAcknowledgedLPI(_ r: inout ByteReader) throws(WireError) -> (lpi: PendingLPI, more: Bool) {
        let (lpi, flags) = try readLPI(&r, defined: PendingLPI.enabledFlag | PendingLPI.moreFlag)
        return (lpi, flags & PendingLPI.moreFlag != 0)
    }

    private static func readLPI(_ r: inout ByteReader, defined: UInt8) throws(WireError) -> (lpi: PendingLPI, flags: UInt8) {
        let intid = Wire.INTID(try r.u32())
        let priority = try r.u8()
        let flags = try r.u8()
        guard flags & ~defined == 0 else { throw WireError(.badValue, detail: UInt32(flags)) }
        try r.zeros(2)
        return (PendingLPI(intid: intid, priority: priority, enabled: flags & PendingLPI.enabledFlag != 0), flags)
    }

    static func readDumpPage(_ r: inout ByteReader) throws(WireError) -> DumpPage {
        let vm = VMID(try r.u32())
        let section = try readDumpSection(&r)
        let entrySize = try r.u16()
        guard Int(entrySize) == section.entrySize else { throw WireError(.badValue, detail: UInt32(entrySize)) }
        let count = try r.u32()
        try r.zeros(4)
        let next = try r.u64()
        try r.expectEntries(count, size: section.entrySize)
        let entries: DumpEntries
        switch section {
        case .devices:
            var list: [DumpDevice] = []
            list.reserveCapacity(Int(count))
            for _ in 0..<count {
                let device = Wire.DeviceID(try r.u32())
                let bits = try r.u8()
                try r.zeros(3)
                list.append(DumpDevice(deviceID: device, eventIDBits: bits, ittAddress: try r.u64()))
            }
            entries = .devices(list)
        case .itt:
            var list: [DumpITTEntry] = []
            list.reserveCapacity(Int(count))
            for _ in 0..<count {
                let device = Wire.DeviceID(try r.u32())
                let event = Wire.EventID(try r.u32())
                let intid = Wire.INTID(try r.u32())
                let collection = Wire.CollectionID(try r.u16())
                try r.zeros(2)
                list.append(DumpITTEntry(deviceID: device, eventID: event, intid: intid, collection: collection))
            }
            entries = .itt(list)
        case .collections:
            var list: [DumpCollection] = []
            list.reserveCapacity(Int(count))
            for _ in 0..<count {
                let collection = Wire.CollectionID(try r.u16())
                let vcpu = Wire.VCPU(try r.u16())
                try r.zeros(4)
                list.append(DumpCollection(collection: collection, vcpu: vcpu))
            }
            entries = .collections(list)
        case .lpis:
            var list: [DumpLPI] = []
            list.reserveCapacity(Int(count))
            for _ in 0..<count {
                let intid = Wire.INTID(try r.u32())
                let priority = try r.u8()
                let flags = try r.u8()
                guard flags & ~3 == 0 else { throw WireError(.badValue, detail: UInt32(flags)) }
                let vcpu = Wire.VCPU(try r.u16())
                list.append(DumpLPI(intid: intid, priority: priority, enabled: flags & 1 != 0,
                                    pending: flags & 2 != 0, vcpu: vcpu))
            }
            entries = .lpis(list)
        }
        return DumpPage(vm: vm, entries: entries, nextCursor: next)
    }

    /// `u64 schema_id, u32 stat_count, u32 flags (bit 0 schema included)`, then the descriptors when
    /// included, then one value record per statistic.
    static func readStatsReport(_ r: inout ByteReader) throws(WireError) -> StatsReport {
        let schemaID = try r.u64()
        let count = try r.u32()
        let flags = try r.u32()
        guard flags & ~1 == 0 else { throw WireError(.badValue, detail: flags) }
        let hasSchema = flags & 1 != 0
        // A descriptor is at least 8 bytes and a value record at least 16: the count must fit.
        let minimum = UInt64(count) * (hasSchema ? 24 : 16)
        guard minimum <= UInt64(r.remaining) else { throw WireError(.batchCountMismatch, detail: count) }
        var schema: [StatDescriptor]? = nil
        if hasSchema {
            var list: [StatDescriptor] = []
            list.reserveCapacity(Int(count))
            for _ in 0..<count { list.append(try readStatDescriptor(&r)) }
            schema = list
        }
        var values: [StatValue] = []
        values.reserveCapacity(Int(count))
        for index in 0..<Int(count) {
            let value = try readStatValue(&r)
            if let schema {
                let descriptor = schema[index]
                guard value.kind == descriptor.kind else {
                    throw WireError(.badValue, detail: UInt32(value.kind.rawValue))
                }
                if case .histogram(_, _, let buckets) = value, buckets.count != descriptor.bucketBounds.count + 1 {
                    throw WireError(.batchCountMismatch, detail: UInt32(buckets.count + 2))
                }
            }
            values.append(value)
        }
        return StatsReport(schemaID: schemaID, schema: schema, values: values)
    }

    /// `u8 kind, u8 unit, u16 bucket_count, u16 name_length, u16 help_length`, name, help, zero padding
    /// to 8, then `bucket_count` u64 bounds. Names match `[a-z_][a-z0-9_]*` (a counter's ends in
    /// `_total`); help has no line feed.
    static func readStatDescriptor(_ r: inout ByteReader) throws(WireError) -> StatDescriptor {
        let rawKind = try r.u8()
        guard let kind = StatKind(rawValue: rawKind) else { throw WireError(.badValue, detail: UInt32(rawKind)) }
        let rawUnit = try r.u8()
        guard let unit = StatUnit(rawValue: rawUnit) else { throw WireError(.badValue, detail: UInt32(rawUnit)) }
        let bucketCount = Int(try r.u16())
        let nameLength = Int(try r.u16())
        let helpLength = Int(try r.u16())
        guard nameLength > 0, nameLength <= StatDescriptor.maxNameLength, helpLength <= StatDescriptor.maxHelpLength
        else { throw WireError(.badString, detail: UInt32(r.offset)) }
        guard bucketCount <= StatDescriptor.maxBuckets, (kind == .histogram) == (bucketCount > 0) else {
            throw WireError(.badValue, detail: UInt32(bucketCount))
        }
        let nameOffset = r.offset
        let name = try r.string(length: nameLength)
        guard name.utf8.allSatisfy({ $0 == 0x5F || (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) }),
              let first = name.utf8.first, !(0x30...0x39).contains(first),
              kind != .counter || name.hasSuffix("_total")
        else { throw WireError(.badString, detail: UInt32(nameOffset)) }
        let helpOffset = r.offset
        let help = try r.string(length: helpLength)
        guard !help.utf8.contains(0x0A) else { throw WireError(.badString, detail: UInt32(helpOffset)) }
        try r.padding(after: nameLength + helpLength)
        try r.need(bucketCount * 8)
        var bounds: [UInt64] = []
        bounds.reserveCapacity(bucketCount)
        for index in 0..<bucketCount {
            let bound = try r.u64()
            if let last = bounds.last, bound <= last { throw WireError(.badValue, detail: UInt32(index)) }
            bounds.append(bound)
        }
        return StatDescriptor(name: name, kind: kind, unit: unit, help: help, bucketBounds: bounds)
    }

    /// `u8 kind, u8 reserved[3], u32 slot_count`, then the slots (u64 each): one for a counter or
    /// gauge; count, sum and bucket_count + 1 bucket counts for a histogram (bucket_count 1...64).
    static func readStatValue(_ r: inout ByteReader) throws(WireError) -> StatValue {
        let rawKind = try r.u8()
        guard let kind = StatKind(rawValue: rawKind) else { throw WireError(.badValue, detail: UInt32(rawKind)) }
        try r.zeros(3)
        let slots = try r.u32()
        guard UInt64(slots) * 8 <= UInt64(r.remaining) else { throw WireError(.batchCountMismatch, detail: slots) }
        switch kind {
        case .counter, .gauge:
            guard slots == 1 else { throw WireError(.batchCountMismatch, detail: slots) }
            let raw = try r.u64()
            return kind == .counter ? .counter(raw) : .gauge(Int64(bitPattern: raw))
        case .histogram:
            guard slots >= 4, slots <= UInt32(StatDescriptor.maxBuckets) + 3 else {
                throw WireError(.batchCountMismatch, detail: slots)
            }
            let count = try r.u64()
            let sum = try r.u64()
            var buckets: [UInt64] = []
            buckets.reserveCapacity(Int(slots) - 2)
            for _ in 2..<slots { buckets.append(try r.u64()) }
            return .histogram(count: count, sum: sum, buckets: buckets)
        }
    }
}

/// INJECT_BATCH without a copy (Protocol/PROTOCOL.md, "INJECT_BATCH"): the payload is `u32 vm, u32 count`
/// then `count` pairs of `u32 device_id, u32 event_id`, and the decoder hands out a view of those pairs
/// inside the received buffer. Iterating allocates nothing.
public struct InjectBatch: Hashable, Sendable {
    public var vm: VMID
    /// The pairs, 8 bytes each, exactly `count * 8` bytes (checked by the decoder or the initialiser).
    public let entryBytes: ArraySlice<UInt8>

    /// Number of (DeviceID, EventID) pairs.
    @inlinable public var count: Int { entryBytes.count >> 3 }

    /// A view over already-validated bytes. Only the decoder and `init(vm:entries:)` build batches this way.
    @usableFromInline
    init(vm: VMID, validatedEntryBytes: ArraySlice<UInt8>) {
        self.vm = vm
        self.entryBytes = validatedEntryBytes
    }

    /// A batch to send, from its pairs (the client side; this copies them once into wire order).
    /// Inlinable so that it is specialised for the caller's sequence: iterating an unspecialised
    /// `some Sequence` costs a heap-allocated accessor frame per element.
    @inlinable
    public init(vm: VMID, entries: some Sequence<InjectEntry>) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(entries.underestimatedCount * 8)
        for entry in entries {
            withUnsafeBytes(of: entry.deviceID.rawValue.littleEndian) { bytes.append(contentsOf: $0) }
            withUnsafeBytes(of: entry.eventID.rawValue.littleEndian) { bytes.append(contentsOf: $0) }
        }
        self.init(vm: vm, validatedEntryBytes: bytes[...])
    }

    /// Calls `body` with each pair in order, with one buffer access for the whole batch.
    @inlinable
    public func forEach(_ body: (InjectEntry) throws -> Void) rethrows {
        let count = self.count
        try entryBytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var index = 0
            while index < count {
                // SAFETY: `entryBytes.count == count * 8` holds by construction (the decoder checked
                // `count * 8` against the frame length; the public initialiser writes 8 bytes per
                // entry), so bytes index*8 ..< index*8+8 lie inside `raw`. loadUnaligned needs no
                // alignment, and the slice is immutable for the duration of the closure.
                let device = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: index &* 8, as: UInt32.self))
                let event = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: index &* 8 &+ 4, as: UInt32.self))
                try body(InjectEntry(deviceID: Wire.DeviceID(device), eventID: Wire.EventID(event)))
                index &+= 1
            }
        }
    }

    /// The pair at `index`, with a bounds check.
    @inlinable
    public subscript(index: Int) -> InjectEntry {
        precondition(index >= 0 && index < count, "InjectBatch index out of range")
        // SAFETY: with the precondition and `entryBytes.count == count * 8`, bytes index*8 ..< index*8+8
        // lie inside `raw`; loadUnaligned has no alignment needs.
        return entryBytes.withUnsafeBytes { raw in
            InjectEntry(
                deviceID: Wire.DeviceID(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: index * 8, as: UInt32.self))),
                eventID: Wire.EventID(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: index * 8 + 4, as: UInt32.self))))
        }
    }

    /// The pairs copied into an array (tests and diagnostics; not for the hot path).
    public var entries: [InjectEntry] {
        var result: [InjectEntry] = []
        result.reserveCapacity(count)
        forEach { result.append($0) }
        return result
    }

    public static func == (a: InjectBatch, b: InjectBatch) -> Bool {
        a.vm == b.vm && a.entryBytes.elementsEqual(b.entryBytes)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(vm)
        hasher.combine(count)
        forEach { hasher.combine($0) }
    }
}

/// One MSI: the DeviceID that wrote GITS_TRANSLATER and the EventID it wrote.
public struct InjectEntry: Hashable, Sendable, BitwiseCopyable {
    public var deviceID: Wire.DeviceID
    public var eventID: Wire.EventID

    @inlinable
    public init(deviceID: Wire.DeviceID, eventID: Wire.EventID) {
        self.deviceID = deviceID
        self.eventID = eventID
    }
}

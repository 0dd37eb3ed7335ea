/// INJECT and INJECT_BATCH frames written straight into a caller's byte buffer (Protocol/PROTOCOL.md,
/// 6.10 and 6.11), for a client's fast path: no `Message`, no `InjectBatch`, no array per MSI. When the
/// buffer has the capacity reserved, appending allocates nothing. The bytes are those `Frame.encode`
/// writes for the same frame.
public enum InjectEncoding {
    /// Bytes of one INJECT frame: the header and the 16-byte payload.
    public static let injectFrameLength = Wire.headerLength + 16
    /// Bytes of an INJECT_BATCH frame before its pairs: the header, `u32 vm`, `u32 count`.
    public static let batchHeaderLength = Wire.headerLength + 8
    /// Bytes per (DeviceID, EventID) pair.
    public static let batchEntryLength = 8

    /// Appends one INJECT frame.
    /// - Context: any thread; touches only `bytes`.
    public static func appendInject(vm: VMID, deviceID: Wire.DeviceID, eventID: Wire.EventID, id: MessageID,
                                    noReply: Bool, to bytes: inout [UInt8]) {
        appendHeader(length: UInt32(injectFrameLength), opcode: .inject, noReply: noReply, id: id, to: &bytes)
        ByteWriter.appendLE(vm.rawValue, to: &bytes)
        ByteWriter.appendLE(deviceID.rawValue, to: &bytes)
        ByteWriter.appendLE(eventID.rawValue, to: &bytes)
        ByteWriter.appendLE(UInt32(0), to: &bytes)
    }

    /// Appends the start of an INJECT_BATCH frame with a count of 0 and returns the offset of the
    /// frame in `bytes`, which `finishBatch` takes once the pairs are appended.
    public static func beginBatch(vm: VMID, id: MessageID, noReply: Bool, to bytes: inout [UInt8]) -> Int {
        let start = bytes.count
        appendHeader(length: UInt32(batchHeaderLength), opcode: .injectBatch, noReply: noReply, id: id, to: &bytes)
        ByteWriter.appendLE(vm.rawValue, to: &bytes)
        ByteWriter.appendLE(UInt32(0), to: &bytes)
        return start
    }

    /// Appends one pair to the batch begun last in `bytes`.
    @inline(__always)
    public static func appendBatchEntry(deviceID: Wire.DeviceID, eventID: Wire.EventID, to bytes: inout [UInt8]) {
        ByteWriter.appendLE(deviceID.rawValue, to: &bytes)
        ByteWriter.appendLE(eventID.rawValue, to: &bytes)
    }

    /// Writes the length and count of the batch that starts at `start` from the bytes appended after
    /// it, and returns its count of pairs.
    /// - Precondition: `start` is what `beginBatch` returned, and only whole pairs were appended since.
    @discardableResult
    public static func finishBatch(at start: Int, in bytes: inout [UInt8]) -> Int {
        let length = bytes.count - start
        precondition(length >= batchHeaderLength && (length - batchHeaderLength) % batchEntryLength == 0,
                     "an INJECT_BATCH holds whole pairs")
        let count = (length - batchHeaderLength) / batchEntryLength
        patch(UInt32(length), at: start, in: &bytes)
        patch(UInt32(count), at: start + Wire.headerLength + 4, in: &bytes)
        return count
    }

    /// The most pairs one INJECT_BATCH may carry under `limits`: the agreed batch limit, and what fits
    /// in the agreed frame length.
    public static func maxBatchEntries(_ limits: Limits) -> Int {
        let fit = (Int(limits.maxFrameLength) - batchHeaderLength) / batchEntryLength
        return Swift.max(0, Swift.min(Int(limits.maxBatchEntries), fit))
    }

    private static func appendHeader(length: UInt32, opcode: Opcode, noReply: Bool, id: MessageID,
                                     to bytes: inout [UInt8]) {
        ByteWriter.appendLE(length, to: &bytes)
        ByteWriter.appendLE(opcode.rawValue, to: &bytes)
        ByteWriter.appendLE((noReply ? FrameFlags.noReply : []).rawValue, to: &bytes)
        ByteWriter.appendLE(id.rawValue, to: &bytes)
        ByteWriter.appendLE(WireStatus.ok.rawValue, to: &bytes)
    }

    private static func patch(_ value: UInt32, at offset: Int, in bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            for index in 0 ..< 4 { bytes[offset + index] = raw[index] }
        }
    }
}

/// Reads little-endian fields from one frame's payload, failing with a specific `WireError` rather
/// than reading past the frame. The decoder has already checked that the whole frame is in `bytes`.
struct ByteReader {
    /// The frame, header included.
    let bytes: UnsafeRawBufferPointer
    /// Offset of the next unread byte from the start of the frame.
    private(set) var offset: Int

    init(frame bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        self.offset = Wire.headerLength
    }

    var remaining: Int { bytes.count - offset }

    /// Fails with TRUNCATED unless `count` more bytes are in the frame.
    @inline(__always)
    func need(_ count: Int) throws(WireError) {
        guard count <= remaining else { throw WireError(.truncated, detail: UInt32(truncatingIfNeeded: offset)) }
    }

    @inline(__always)
    mutating func load<T: FixedWidthInteger>(_: T.Type) throws(WireError) -> T {
        try need(MemoryLayout<T>.size)
        // SAFETY: `need` checked that the field lies inside `bytes`; loadUnaligned has no alignment needs.
        let value = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset &+= MemoryLayout<T>.size
        return value
    }

    mutating func u8() throws(WireError) -> UInt8 { try load(UInt8.self) }
    mutating func u16() throws(WireError) -> UInt16 { try load(UInt16.self) }
    mutating func u32() throws(WireError) -> UInt32 { try load(UInt32.self) }
    mutating func u64() throws(WireError) -> UInt64 { try load(UInt64.self) }

    /// Skips `count` reserved or padding bytes, failing with NONZERO_PADDING if any is not zero.
    mutating func zeros(_ count: Int) throws(WireError) {
        try need(count)
        // SAFETY: `need` checked that offset ..< offset + count lies inside `bytes`.
        for index in offset..<(offset + count) where bytes[index] != 0 {
            throw WireError(.nonzeroPadding, detail: UInt32(truncatingIfNeeded: index))
        }
        offset &+= count
    }

    /// Skips the zero padding that brings `length` up to a multiple of 8.
    mutating func padding(after length: Int) throws(WireError) {
        try zeros((8 - length & 7) & 7)
    }

    /// Advances over `count` bytes and returns where they started (for views into the buffer).
    mutating func skip(_ count: Int) throws(WireError) -> Int {
        try need(count)
        let start = offset
        offset &+= count
        return start
    }

    /// Reads `length` bytes of UTF-8, failing with BAD_STRING if they are not valid UTF-8.
    mutating func string(length: Int) throws(WireError) -> String {
        let start = try skip(length)
        // SAFETY: `skip` checked that start ..< start + length lies inside `bytes`.
        let view = UnsafeRawBufferPointer(rebasing: bytes[start..<(start + length)])
        guard let string = String(validating: view, as: UTF8.self) else {
            throw WireError(.badString, detail: UInt32(truncatingIfNeeded: start))
        }
        return string
    }

    /// Fails with TRAILING_BYTES unless the whole frame has been read.
    func finish() throws(WireError) {
        guard remaining == 0 else { throw WireError(.trailingBytes, detail: UInt32(truncatingIfNeeded: offset)) }
    }

    /// Fails with BATCH_COUNT_MISMATCH unless exactly `count` entries of `size` bytes remain.
    func expectEntries(_ count: UInt32, size: Int) throws(WireError) {
        guard UInt64(count) &* UInt64(size) == UInt64(remaining) else {
            throw WireError(.batchCountMismatch, detail: count)
        }
    }
}

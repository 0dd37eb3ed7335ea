/// Appends little-endian fields to an encoding buffer.
struct ByteWriter {
    var bytes: [UInt8]

    /// Byte by byte, least significant first: a one-byte append into reserved capacity is a store,
    /// where appending a raw buffer goes through the generic sequence path (some hundred
    /// instructions per field, a fifth of a small reply's cost).
    @inline(__always)
    static func appendLE<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        var shift = 0
        while shift < T.bitWidth {
            bytes.append(UInt8(truncatingIfNeeded: value >> shift))
            shift += 8
        }
    }

    @inline(__always) mutating func u8(_ value: UInt8) { bytes.append(value) }
    @inline(__always) mutating func u16(_ value: UInt16) { Self.appendLE(value, to: &bytes) }
    @inline(__always) mutating func u32(_ value: UInt32) { Self.appendLE(value, to: &bytes) }
    @inline(__always) mutating func u64(_ value: UInt64) { Self.appendLE(value, to: &bytes) }

    mutating func zeros(_ count: Int) {
        for _ in 0 ..< count { bytes.append(0) }
    }

    /// Zero bytes that bring `length` up to a multiple of 8.
    mutating func padding(after length: Int) {
        zeros((8 - length & 7) & 7)
    }

    /// Overwrites a u32 already written at `offset`.
    mutating func patch(_ value: UInt32, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            for index in 0..<4 { bytes[offset + index] = raw[index] }
        }
    }
}

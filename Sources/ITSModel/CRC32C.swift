/// CRC-32C (Castagnoli: polynomial 0x1EDC6F41, bit-reflected 0x82F63B78, initial value and final
/// XOR 0xFFFFFFFF), the checksum of iSCSI (RFC 3720, B.4), ext4 and Btrfs. It detects every error
/// burst of up to 32 bits, so every changed byte of a snapshot image. Its check value, the CRC of
/// the ASCII bytes "123456789", is 0xE3069283. It guards against corruption, not against an image
/// made to deceive: decoding and restoring check everything they rely on regardless.
enum CRC32C {
    /// The CRC of each byte value, for one table lookup per byte.
    static let table: [UInt32] = (0 ..< 256).map { (byte: UInt32) in
        var crc = byte
        for _ in 0 ..< 8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { table in
            for byte in bytes { crc = table[Int(UInt8(truncatingIfNeeded: crc) ^ byte)] ^ (crc >> 8) }
        }
        return ~crc
    }
}

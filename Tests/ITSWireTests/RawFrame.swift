@testable import ITSWire

/// A frame as raw bytes, built field by field so that a test controls every byte: a header with
/// `opcode`, `flags` and message id `id`, then `payload` as it is.
func rawFrame(_ opcode: Opcode, flags: UInt16 = 0, id: UInt32, payload: [UInt8]) -> [UInt8] {
    var w = ByteWriter(bytes: [])
    w.u32(UInt32(16 + payload.count))
    w.u16(opcode.rawValue)
    w.u16(flags)
    w.u32(id)
    w.u32(0)
    w.bytes += payload
    return w.bytes
}

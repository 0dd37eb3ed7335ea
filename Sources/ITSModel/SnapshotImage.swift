/// The byte image of a ``VGICSnapshot``: what SNAPSHOT_VM hands out and RESTORE_VM takes back
/// (Protocol/PROTOCOL.md 6.19). docs/SEMANTICS.md ("Snapshot image") documents the layout.
///
/// Little-endian throughout:
///
/// | offset | size | field |
/// | --- | --- | --- |
/// | 0 | 8 | magic, the ASCII bytes `ITSDSNAP` |
/// | 8 | u32 | image format version, ``VGICSnapshot/version`` |
/// | 12 | u64 | length of the whole image, checksum included |
/// | 20 | varies | the ITS section, then a u64 count of redistributors and a section for each |
/// | length - 4 | u32 | CRC-32C of bytes 0 ..< length - 4 |
///
/// Inside the sections every field of the snapshot appears in declaration order: identifiers,
/// registers and counters at their own width; `Int` as i64; `Bool` as a byte 0 or 1; an optional
/// as a byte 0 (absent) or 1 followed by the value; an enum as a byte, its case in declaration
/// order from 0, followed by the case's values; a list as a u64 count followed by the elements;
/// ``ITS/Counters/commandErrors`` as a list of (u32 code, u64 count) in strictly ascending code
/// order. There is no padding, so equal snapshots have byte-identical images, and an image that
/// decodes encodes again to the same bytes.
enum SnapshotImage {
    /// `ITSDSNAP` read as a little-endian u64.
    static let magic: UInt64 = 0x5041_4E53_4453_5449
    static let headerSize = 8 + 4 + 8
    static let checksumSize = 4

    // The fewest bytes one list element takes: a count is checked against the bytes left before
    // anything is allocated for it.
    static let deviceSize = 4 + 8 + 1
    static let eventSize = 4 + 4 + 4 + 2
    static let collectionSize = 2 + 2
    static let translationSize = 4 + 4 + 4 + 2
    static let commandErrorSize = 4 + 8
    static let lpiSize = 4 + 1 + 1 + 2
    static let pendingSize = 4
    /// Configuration, registers and PTZ, two empty lists, two absent cursors and the counters.
    static let minimumRedistributorSize = (2 + 4 + 1 + 8 + 8) + (1 + 8 + 8 + 1) + 8 + 8 + 1 + 1 + 12 * 8

    /// The part of `image` the sections are decoded from, once the header and the checksum hold:
    /// the image without its checksum.
    static func body(of image: UnsafeRawBufferPointer) throws(SnapshotImageError) -> UnsafeRawBufferPointer {
        var header = SnapshotImageReader(image)
        guard try header.load(UInt64.self) == magic else { throw SnapshotImageError(offset: 0, reason: .badMagic) }
        let version = try header.load(UInt32.self)
        guard version == UInt32(VGICSnapshot.version) else {
            throw SnapshotImageError(offset: 8, reason: .unsupportedVersion(version))
        }
        let length = try header.load(UInt64.self)
        guard length >= UInt64(headerSize + checksumSize) else { throw SnapshotImageError(offset: 12, reason: .badValue("length")) }
        guard length <= UInt64(image.count) else { throw SnapshotImageError(offset: image.count, reason: .truncated) }
        guard length == UInt64(image.count) else { throw SnapshotImageError(offset: Int(length), reason: .trailingBytes) }
        let end = image.count - checksumSize
        // length == image.count >= headerSize + checksumSize, so the body ends after the header.
        let body = UnsafeRawBufferPointer(rebasing: image[0 ..< end])
        var trailer = SnapshotImageReader(image, offset: end)
        guard try trailer.load(UInt32.self) == CRC32C.checksum(body) else {
            throw SnapshotImageError(offset: end, reason: .checksumMismatch)
        }
        return body
    }
}

extension VGICSnapshot {
    /// The image: magic, image format version, length, every field, checksum. Equal snapshots
    /// have byte-identical images. The snapshot's own ``version`` is written as the format version
    /// (truncated to 32 bits), so an image of a snapshot of another version does not decode.
    /// - Context: any thread. O(size of the snapshot).
    public func image() -> [UInt8] {
        // Room for the lists, and for the fixed fields, which take less than the 512 and 16 bytes.
        var capacity = SnapshotImage.headerSize + SnapshotImage.checksumSize + 512
            + its.devices.count * SnapshotImage.deviceSize + its.events.count * SnapshotImage.eventSize
            + its.collections.count * SnapshotImage.collectionSize + its.translations.count * SnapshotImage.translationSize
            + its.counters.commandErrors.count * SnapshotImage.commandErrorSize
        for redistributor in redistributors {
            capacity += SnapshotImage.minimumRedistributorSize + 16 + redistributor.lpis.count * SnapshotImage.lpiSize
                + redistributor.pending.count * SnapshotImage.pendingSize
        }
        var writer = SnapshotImageWriter(capacity: capacity)
        writer.integer(SnapshotImage.magic)
        writer.integer(UInt32(truncatingIfNeeded: version))
        let lengthOffset = writer.bytes.count
        writer.integer(0 as UInt64)
        writer.append(its)
        writer.list(redistributors) { $0.append($1) }
        writer.patch(UInt64(writer.bytes.count + SnapshotImage.checksumSize), at: lengthOffset)
        let checksum = writer.bytes.withUnsafeBytes { CRC32C.checksum($0) }
        writer.integer(checksum)
        return writer.bytes
    }

    /// Decodes an image, checking in order its magic, format version, length against the bytes
    /// given, checksum, and then the structure of the sections: every count against the bytes
    /// left, every enum case, optional and bool, strictly ascending error codes, no bytes left
    /// over. Whether the state makes sense (IDs in range, lists sorted, the parts consistent) is
    /// for ``VirtualGIC/init(restoring:memory:sink:)`` and ``VirtualGIC/restore(_:)`` to check.
    /// Never traps, and allocates no more than the image's size warrants.
    /// - Throws: the offset in the image of the first defect found and what it is.
    /// - Context: any thread. O(image length).
    public init(image: UnsafeRawBufferPointer) throws(SnapshotImageError) {
        var reader = SnapshotImageReader(try SnapshotImage.body(of: image), offset: SnapshotImage.headerSize)
        let its = try reader.itsState()
        let count = try reader.count("redistributors", minimumElementSize: SnapshotImage.minimumRedistributorSize)
        var redistributors: [RedistributorState] = []
        redistributors.reserveCapacity(count)
        for index in 0 ..< count { redistributors.append(try reader.redistributorState(index)) }
        try reader.finish()
        self.init(its: its, redistributors: redistributors)
    }

    /// Decodes an image held in an array, as the initializer from a buffer does.
    public init(image: [UInt8]) throws(SnapshotImageError) {
        let result = image.withUnsafeBytes { bytes in
            Result { () throws(SnapshotImageError) in try VGICSnapshot(image: bytes) }
        }
        self = try result.get()
    }
}

/// Why an image did not decode, and where: the offset in the image of the first defect found.
public struct SnapshotImageError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Reason: Hashable, Sendable {
        /// The image does not start with `ITSDSNAP`.
        case badMagic
        /// The image has a format version this build does not read.
        case unsupportedVersion(UInt32)
        /// The image ends before its length field says, or a field runs past the end of the sections.
        case truncated
        /// The image goes on past its length field, or bytes are left after the sections.
        case trailingBytes
        /// The checksum does not match the bytes before it.
        case checksumMismatch
        /// A field holds a value no snapshot has (named as a path in the snapshot,
        /// "its.operation", "redistributors[2].lpisEnabled"): an unknown enum case, a bool or
        /// optional tag other than 0 or 1, error codes out of order, an impossible length.
        case badValue(String)
        /// A list's count is more than the bytes left could hold (named as for ``badValue(_:)``).
        case countTooLarge(String)
    }

    public var offset: Int
    public var reason: Reason

    public init(offset: Int, reason: Reason) {
        self.offset = offset
        self.reason = reason
    }

    public var description: String {
        let what = switch reason {
        case .badMagic: "not a snapshot image (bad magic)"
        case .unsupportedVersion(let version): "unsupported image format version \(version)"
        case .truncated: "truncated"
        case .trailingBytes: "trailing bytes"
        case .checksumMismatch: "checksum mismatch"
        case .badValue(let field): "bad value of \(field)"
        case .countTooLarge(let field): "count of \(field) larger than the image"
        }
        return "snapshot image: \(what) at offset \(offset)"
    }
}

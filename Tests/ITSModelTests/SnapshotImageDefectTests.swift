import Testing
@testable import ITSModel

/// Damaged and hostile images: each is rejected with the offset of its defect and its own reason,
/// without trapping and without allocating for counts the image cannot hold.
@Suite struct SnapshotImageDefectTests {
    /// Every proper prefix, down to nothing, is truncated where it ends (or, shorter than the
    /// header, where the field it cuts starts).
    @Test func everyProperPrefixIsTruncated() throws {
        let image = try ImageFixture.rich().image()
        for length in 0 ..< image.count {
            let error = ImageFixture.error(decoding: Array(image[0 ..< length]))
            let expected = switch length {
            case 0 ..< 8: 0
            case 8 ..< 12: 8
            case 12 ..< 20: 12
            default: length
            }
            #expect(error == SnapshotImageError(offset: expected, reason: .truncated), "length \(length)")
        }
    }

    /// Every proper prefix of the sections, with a length and checksum that fit it (as a hostile
    /// image would have), is rejected by the structure: a field or a list runs past the end.
    @Test func everyResealedPrefixIsRejected() throws {
        let image = try ImageFixture.rich().image()
        let end = image.count - SnapshotImage.checksumSize
        for cut in SnapshotImage.headerSize ..< end {
            let prefix = ImageFixture.resealed(Array(image[0 ..< cut]) + [0, 0, 0, 0])
            let error = ImageFixture.error(decoding: prefix)
            switch error?.reason {
            case .truncated?, .countTooLarge?:
                #expect(error!.offset >= SnapshotImage.headerSize && error!.offset <= cut, "cut at \(cut): \(error!)")
            default:
                Issue.record("cut at \(cut): \(String(describing: error))")
            }
        }
    }

    /// Each byte inverted in turn: the magic, the version and the length are reported as such,
    /// anything after them as a checksum mismatch.
    @Test func aChangedByteAnywhereIsRejected() throws {
        let image = try SnapshotFixture.source().snapshot().image()
        let checksumOffset = image.count - 4
        for offset in image.indices {
            var damaged = image
            damaged[offset] ^= 0xFF
            let expected: SnapshotImageError
            switch offset {
            case 0 ..< 8:
                expected = SnapshotImageError(offset: 0, reason: .badMagic)
            case 8 ..< 12:
                expected = SnapshotImageError(offset: 8, reason: .unsupportedVersion(ImageFixture.u32(damaged, at: 8)))
            case 12 ..< 20:
                let length = ImageFixture.u64(damaged, at: 12)
                expected = length > UInt64(image.count) ? SnapshotImageError(offset: image.count, reason: .truncated)
                    : length < 24 ? SnapshotImageError(offset: 12, reason: .badValue("length"))
                    : SnapshotImageError(offset: Int(length), reason: .trailingBytes)
            default:
                expected = SnapshotImageError(offset: checksumOffset, reason: .checksumMismatch)
            }
            #expect(ImageFixture.error(decoding: damaged) == expected, "offset \(offset)")
        }
    }

    /// A count far beyond the image is refused at the count, before anything is allocated for it;
    /// one that fits the bytes but not the data runs into the next field.
    @Test func aHugeCountIsRefusedBeforeAllocating() throws {
        let snapshot = try SnapshotFixture.source().snapshot()
        let image = snapshot.image()
        var writer = SnapshotImageWriter(capacity: 0)
        writer.append(snapshot.its)
        let redistributorsCountOffset = SnapshotImage.headerSize + writer.bytes.count
        let devicesLeft = UInt64((image.count - 4 - ImageFixture.devicesCountOffset - 8) / SnapshotImage.deviceSize)
        let cases: [(Int, UInt64, String)] = [
            (ImageFixture.devicesCountOffset, .max, "its.devices"),
            (ImageFixture.devicesCountOffset, 1 << 61, "its.devices"),
            (ImageFixture.devicesCountOffset, devicesLeft + 1, "its.devices"),
            (redistributorsCountOffset, .max, "redistributors"),
            (redistributorsCountOffset, UInt64(Int.max), "redistributors"),
        ]
        for (offset, count, field) in cases {
            var hostile = image
            ImageFixture.put(count, &hostile, at: offset)
            let expected = SnapshotImageError(offset: offset, reason: .countTooLarge(field))
            #expect(ImageFixture.error(decoding: ImageFixture.resealed(hostile)) == expected, "\(field) = \(count)")
        }
        var fitting = image
        ImageFixture.put(devicesLeft, &fitting, at: ImageFixture.devicesCountOffset)
        #expect(ImageFixture.error(decoding: ImageFixture.resealed(fitting)) != nil)
    }

    /// A tag, bool or optional byte no snapshot has, and error codes out of order, each named.
    /// The offset is the first byte of the sections where the images of two variants differ.
    @Test(arguments: badValues.indices)
    func aValueNoSnapshotHasIsNamed(_ index: Int) throws {
        let (field, prepare, vary, bad) = Self.badValues[index]
        var snapshot = try ImageFixture.rich()
        prepare?(&snapshot)
        var other = snapshot
        vary(&other)
        let image = snapshot.image()
        let otherImage = other.image()
        let offset = try #require((SnapshotImage.headerSize ..< min(image.count, otherImage.count)).first { image[$0] != otherImage[$0] })
        var hostile = image
        hostile[offset] = bad
        let expected = SnapshotImageError(offset: offset, reason: .badValue(field))
        #expect(ImageFixture.error(decoding: ImageFixture.resealed(hostile)) == expected)
    }

    typealias Change = @Sendable (inout VGICSnapshot) -> Void

    /// A field; a change to ``ImageFixture/rich()`` to start from, if any; a change whose first
    /// changed byte is the field's tag, bool or key; and a byte to put there that no snapshot has.
    static let badValues: [(String, Change?, Change, UInt8)] = [
        ("its.enabled", nil, { $0.its.enabled.toggle() }, 2),
        ("its.stalled", nil, { $0.its.stalled.toggle() }, 0xFF),
        ("its.lastStallFault", nil, { $0.its.lastStallFault = nil }, 2),
        ("its.lastStallFault.kind", nil, { $0.its.lastStallFault?.kind = .addressOverflow }, 2),
        ("its.operation", nil, { $0.its.operation = nil }, 2),
        ("its.operation", nil, { $0.its.operation = .synchronize(VCPUIndex(0)) }, 3),
        ("its.operation.then", nil, {
            $0.its.operation = .unmapDevice(DeviceID(0xFFFF_FFFF), itt: GuestAddress(0x1234_5678_9ABC), nextEvent: EventID(77), then: nil)
        }, 7),
        ("its.operation.from", {
            $0.its.operation = .retargetCollection(CollectionID(1), from: nil, to: VCPUIndex(1), nextDevice: DeviceID(0),
                                                   nextEvent: EventID(0))
        }, {
            $0.its.operation = .retargetCollection(CollectionID(1), from: VCPUIndex(0), to: VCPUIndex(1), nextDevice: DeviceID(0),
                                                   nextEvent: EventID(0))
        }, 2),
        // Codes 1, 2, 0x0A01, 0xFFFFFFFF: the second code made equal to the first, then smaller.
        ("its.counters.commandErrors", nil, { $0.its.counters.commandErrors[2] = nil; $0.its.counters.commandErrors[3] = 2 }, 1),
        ("its.counters.commandErrors", nil, { $0.its.counters.commandErrors[2] = nil; $0.its.counters.commandErrors[3] = 2 }, 0),
        ("redistributors[3].configuration.isLast", nil, { $0.redistributors[3].configuration.isLast.toggle() }, 2),
        ("redistributors[0].lpisEnabled", nil, { $0.redistributors[0].lpisEnabled.toggle() }, 2),
        ("redistributors[2].pendingTableZero", nil, { $0.redistributors[2].pendingTableZero.toggle() }, 0x80),
        ("redistributors[1].invalidateAllCursor", nil, { $0.redistributors[1].invalidateAllCursor = nil }, 2),
        ("redistributors[1].pendingTableLoadCursor", nil, { $0.redistributors[1].pendingTableLoadCursor = nil }, 2),
    ]

    /// Bytes after the image, or between the sections and the checksum.
    @Test func trailingBytesAreRejected() throws {
        let image = try SnapshotFixture.source().snapshot().image()
        #expect(ImageFixture.error(decoding: image + [0]) == SnapshotImageError(offset: image.count, reason: .trailingBytes))
        let end = image.count - 4
        let padded = ImageFixture.resealed(Array(image[0 ..< end]) + [0, 0, 0, 0, 0, 0, 0, 0])
        #expect(ImageFixture.error(decoding: padded) == SnapshotImageError(offset: end, reason: .trailingBytes))
    }

    /// An image of another format version is refused at the version, before anything else is read.
    @Test func anotherVersionIsRejected() throws {
        var snapshot = try SnapshotFixture.source().snapshot()
        snapshot.version = VGICSnapshot.version + 1
        let bumped = UInt32(VGICSnapshot.version + 1)
        #expect(ImageFixture.error(decoding: snapshot.image()) == SnapshotImageError(offset: 8, reason: .unsupportedVersion(bumped)))
        let truncated = Array(snapshot.image()[0 ..< 12])
        #expect(ImageFixture.error(decoding: truncated) == SnapshotImageError(offset: 8, reason: .unsupportedVersion(bumped)))
    }

    /// 20,000 random mutations of an image, resealed nine times in ten so that most reach the
    /// structure: each either is rejected, at an offset inside the image, or decodes to a
    /// snapshot whose image is exactly the mutated bytes.
    @Test func randomMutationsAreRejectedOrEncodeBackExactly() throws {
        let seed: UInt64 = 0x1A6E_5EED
        var rng = SplitMix64(seed: seed)
        let image = try ImageFixture.rich().image()
        var outcomes: [String: Int] = [:]
        for iteration in 0 ..< 20_000 {
            var bytes = image
            for _ in 0 ... Int.random(in: 0 ..< 3, using: &rng) { Self.mutate(&bytes, using: &rng) }
            if bytes.count >= SnapshotImage.headerSize + SnapshotImage.checksumSize, Int.random(in: 0 ..< 10, using: &rng) != 0 {
                bytes = ImageFixture.resealed(bytes)
            }
            do {
                let decoded = try VGICSnapshot(image: bytes)
                #expect(decoded.image() == bytes, "seed \(seed) iteration \(iteration)")
                outcomes["decoded", default: 0] += 1
            } catch {
                #expect((0 ... bytes.count).contains(error.offset), "seed \(seed) iteration \(iteration): \(error)")
                outcomes["\(error.reason)".prefix { $0 != "(" }.description, default: 0] += 1
            }
        }
        for outcome in ["decoded", "truncated", "countTooLarge", "badValue", "checksumMismatch", "trailingBytes"] {
            #expect(outcomes[outcome, default: 0] > 0, "\(outcome) never happened: \(outcomes)")
        }
    }

    static func mutate(_ bytes: inout [UInt8], using rng: inout SplitMix64) {
        guard !bytes.isEmpty else { return }
        let at = Int.random(in: 0 ..< bytes.count, using: &rng)
        switch Int.random(in: 0 ..< 7, using: &rng) {
        case 0:
            bytes[at] ^= 1 << UInt8.random(in: 0 ..< 8, using: &rng)
        case 1:
            bytes[at] = [0, 1, 2, 0x7F, 0x80, 0xFF][Int.random(in: 0 ..< 6, using: &rng)]
        case 2:
            let values: [UInt64] = [0, 1, 2, 3, 0xFF, 1 << 32, 1 << 61, .max, UInt64(bytes.count), UInt64.random(in: 0 ..< 64, using: &rng)]
            let value = values[Int.random(in: 0 ..< values.count, using: &rng)]
            for index in at ..< min(at + 8, bytes.count) { bytes[index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index - at))) }
        case 3:
            bytes.removeSubrange(at ..< min(at + Int.random(in: 1 ... 16, using: &rng), bytes.count))
        case 4:
            let inserted = (0 ..< Int.random(in: 1 ... 16, using: &rng)).map { _ in UInt8.random(in: 0 ... 3, using: &rng) }
            bytes.insert(contentsOf: inserted, at: at)
        case 5:
            let copy = Array(bytes[at ..< min(at + Int.random(in: 1 ... 32, using: &rng), bytes.count)])
            bytes.insert(contentsOf: copy, at: at)
        default:
            bytes.removeSubrange(at...)
        }
    }
}

import Testing
@testable import ITSWire

/// Seeded random input: the decoder never traps, and always answers with more-data, a frame that
/// re-encodes to exactly the bytes it consumed, or an error whose status is one of those PROTOCOL.md
/// (section 7) says the decoder returns.
/// A failure prints the seed; `ITSWIRE_SEED=<seed> swift test --filter FuzzTests` replays it.
@Suite struct FuzzTests {
    /// The statuses a decoder may return: codes 1 to 12, and the four payload checks that name a field
    /// of a particular message (PROTOCOL.md, "Status codes").
    static let decoderStatuses = Set((1...12).map { WireStatus(UInt32($0)) }
        + [.fdNotAllowedOnTCP, .badMMIOFrame, .badMMIOWidth, .limitExceeded])

    func check(_ decoder: FrameDecoder, _ bytes: [UInt8], fds: Int, seed: UInt64) {
        switch decoder.decode(bytes, fdCount: fds) {
        case .needMoreData:
            if bytes.count >= 4 {
                let length = Int(bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) })
                #expect(length > bytes.count, "seed \(seed): more data asked with a whole frame present")
            }
        case .frame(let frame, let consumed):
            #expect(consumed >= 16 && consumed <= bytes.count, "seed \(seed)")
            #expect(frame.encoded == Array(bytes[..<consumed]), "seed \(seed): accepted a non-canonical frame")
        case .failure(let error):
            #expect(Self.decoderStatuses.contains(error.status), "seed \(seed): \(error)")
            if let skip = error.resumeAfter { #expect(skip >= 16 && skip <= bytes.count, "seed \(seed)") }
        }
    }

    @Test func randomGarbage() {
        let seed = testSeed()
        var random = SeededRandom(seed: seed)
        let decoders = [FrameDecoder(role: .server, limits: .defaults), FrameDecoder(role: .client, limits: .defaults),
                        FrameDecoder(role: .server, limits: .defaults, transport: .tcp)]
        for _ in 0..<20_000 {
            var bytes = (0..<Int.random(in: 0...96, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            if bytes.count >= 8, Bool.random(using: &random) {
                // A plausible header so that payload decoding is reached often.
                let length = UInt32(bytes.count - Int.random(in: 0...2, using: &random))
                withUnsafeBytes(of: length.littleEndian) { for i in 0..<4 { bytes[i] = $0[i] } }
                let opcode = Opcode.all.randomElement(using: &random)!.rawValue
                bytes[4] = UInt8(opcode & 0xFF)
                bytes[5] = UInt8(opcode >> 8)
                bytes[6] = UInt8.random(in: 0...15, using: &random)
                bytes[7] = 0
                if bytes.count >= 16, Bool.random(using: &random) { for i in 12..<16 { bytes[i] = 0 } }
            }
            let decoder = decoders.randomElement(using: &random)!
            check(decoder, bytes, fds: Int.random(in: 0...2, using: &random), seed: seed)
        }
    }

    @Test func mutatedVectors() throws {
        let seed = testSeed()
        var random = SeededRandom(seed: seed)
        var vectors: [[UInt8]] = []
        for name in try VectorFiles.names() { vectors.append(try VectorFiles.bytes(name)) }
        for _ in 0..<20_000 {
            var bytes = vectors.randomElement(using: &random)!
            let decoder = VectorFiles.decoder(for: bytes)
            let fds = VectorFiles.fdCount(of: bytes)
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                switch Int.random(in: 0..<4, using: &random) {
                case 0: bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                case 1: bytes[Int.random(in: 0..<bytes.count, using: &random)] ^= 1 << UInt8.random(in: 0...7, using: &random)
                case 2: bytes.removeLast(Int.random(in: 0...min(8, bytes.count), using: &random))
                default: bytes += [UInt8](repeating: 0, count: Int.random(in: 1...8, using: &random))
                }
                if bytes.isEmpty { break }
            }
            check(decoder, bytes, fds: fds, seed: seed)
        }
    }
}

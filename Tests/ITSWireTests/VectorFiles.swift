import Foundation
@testable import ITSWire

/// Reads the golden vectors of Protocol/vectors: hex byte pairs, whitespace ignored, `#` to end of line
/// a comment.
enum VectorFiles {
    static let directory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Protocol/vectors")

    /// Every `.hex` file name in the directory, sorted.
    static func names() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".hex") }
            .sorted()
    }

    static func bytes(_ name: String) throws -> [UInt8] {
        let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        return try parse(text)
    }

    struct ParseError: Error, CustomStringConvertible {
        var description: String
    }

    static func parse(_ text: String) throws -> [UInt8] {
        var result: [UInt8] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let data = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let digits = data.filter { !$0.isWhitespace }
            guard digits.count % 2 == 0 else { throw ParseError(description: "odd digit count in \(line)") }
            var index = digits.startIndex
            while index < digits.endIndex {
                let next = digits.index(index, offsetBy: 2)
                guard let byte = UInt8(digits[index..<next], radix: 16) else {
                    throw ParseError(description: "bad hex in \(line)")
                }
                result.append(byte)
                index = next
            }
        }
        return result
    }

    /// The file descriptors a frame carries, as the socket layer would report them.
    static func fdCount(of bytes: [UInt8]) -> Int {
        let opcode = Opcode(UInt16(bytes[4]) | UInt16(bytes[5]) << 8)
        let flags = FrameFlags(rawValue: UInt16(bytes[6]) | UInt16(bytes[7]) << 8)
        guard flags.isDisjoint(with: [.reply, .event]) else { return 0 }
        return opcode.traits?.requestFDs ?? 0
    }

    /// The role that decodes a frame: requests go to the server, replies and events to the client.
    static func role(of bytes: [UInt8]) -> FrameDecoder.Role {
        let flags = FrameFlags(rawValue: UInt16(bytes[6]) | UInt16(bytes[7]) << 8)
        return flags.isDisjoint(with: [.reply, .event]) ? .server : .client
    }

    /// A decoder for the frame with limits large enough for every vector.
    static func decoder(for bytes: [UInt8]) -> FrameDecoder {
        FrameDecoder(role: role(of: bytes), limits: .defaults)
    }
}

/// A small deterministic generator (SplitMix64) so that random tests can print and replay their seed.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The seed for a random test: `ITSWIRE_SEED` from the environment when set (to replay), else fresh.
func testSeed() -> UInt64 {
    if let text = ProcessInfo.processInfo.environment["ITSWIRE_SEED"], let seed = UInt64(text) { return seed }
    return UInt64.random(in: 0...UInt64.max)
}

extension VectorFiles {
    /// Byte offsets of a vector whose annotation says they are reserved or padding.
    static func reservedOffsets(_ name: String) throws -> [Int] {
        let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        var offsets: [Int] = []
        var position = 0
        var inReserved = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let parts = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
            let count = try parse(String(parts.first ?? "")).count
            if parts.count > 1, !(parts.first ?? "").allSatisfy(\.isWhitespace) {
                let comment = parts[1].trimmingCharacters(in: .whitespaces)
                inReserved = comment == "reserved" || comment.hasPrefix("padding")
            } else if parts.count > 1 {
                continue
            }
            if inReserved { offsets += position..<(position + count) }
            position += count
        }
        return offsets
    }
}

extension VectorFiles {
    /// How many lines of a vector carry one of the given annotations.
    static func annotationCount(_ name: String, containing needles: [String]) throws -> Int {
        let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        return text.split(separator: "\n").filter { line in needles.contains { line.contains($0) } }.count
    }
}

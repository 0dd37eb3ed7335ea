import Foundation
import Testing
@testable import ITSWire

/// The example session written out in Protocol/PROTOCOL.md decodes, frame by frame, to what its
/// captions say, and every frame of it is one of the golden vectors (or, for the NO_REPLY batch, the
/// vector with that flag set).
@Suite struct ProtocolDocumentTests {
    struct DocumentFrame {
        var fromClient: Bool
        var caption: String
        var bytes: [UInt8]
    }

    /// The text of Protocol/PROTOCOL.md.
    static func document() throws -> String {
        let url = VectorFiles.directory.deletingLastPathComponent().appendingPathComponent("PROTOCOL.md")
        return try String(contentsOf: url, encoding: .utf8)
    }

    static func exampleSession() throws -> [DocumentFrame] {
        let text = try Self.document()
        let section = try #require(text.range(of: "## 9. Example session"))
        let body = text[section.upperBound...]
        let start = try #require(body.range(of: "```\n"))
        let end = try #require(body[start.upperBound...].range(of: "```"))
        var frames: [DocumentFrame] = []
        for line in body[start.upperBound..<end.lowerBound].split(separator: "\n") {
            if line.hasPrefix("C: ") || line.hasPrefix("S: ") {
                frames.append(DocumentFrame(fromClient: line.hasPrefix("C"), caption: String(line.dropFirst(3)),
                                            bytes: []))
            } else {
                frames[frames.count - 1].bytes += try VectorFiles.parse(String(line))
            }
        }
        return frames
    }

    @Test func exampleSessionDecodes() throws {
        let frames = try Self.exampleSession()
        #expect(frames.count == 9)
        var expectedOpcodes: [Opcode] = [.hello, .hello, .createVM, .createVM, .injectBatch, .destroyVM, .ping,
                                         .destroyVM, .ping]
        for frame in frames {
            let decoder = FrameDecoder(role: frame.fromClient ? .server : .client, limits: .defaults)
            guard case .frame(let decoded, let consumed) = decoder.decode(frame.bytes, fdCount: 0) else {
                Issue.record("\(frame.caption) does not decode")
                continue
            }
            #expect(consumed == frame.bytes.count, "\(frame.caption)")
            #expect(decoded.message.opcode == expectedOpcodes.removeFirst(), "\(frame.caption)")
            #expect(frame.caption.contains("id \(decoded.messageID.rawValue)"), "\(frame.caption)")
            #expect(decoded.noReply == frame.caption.contains("NO_REPLY"), "\(frame.caption)")
        }
    }

    @Test func exampleFramesAreVectors() throws {
        var vectors: [[UInt8]] = []
        for name in try VectorFiles.names() { vectors.append(try VectorFiles.bytes(name)) }
        for frame in try Self.exampleSession() {
            var bytes = frame.bytes
            if frame.caption.contains("NO_REPLY") { bytes[6] &= ~UInt8(FrameFlags.noReply.rawValue) }
            #expect(vectors.contains(bytes), "\(frame.caption) is not in Protocol/vectors")
        }
    }

    /// Every status code of WireStatus appears in the status table with the same number and name.
    @Test func statusTableMatchesTheCode() throws {
        let text = try Self.document()
        for (status, name) in WireStatus.named {
            #expect(text.contains("| \(status.rawValue) | \(name) |"), "\(name) missing from the status table")
        }
        for opcode in Opcode.all {
            let hex = "0x" + String(repeating: "0", count: 4 - String(opcode.rawValue, radix: 16).count)
                + String(opcode.rawValue, radix: 16)
            #expect(text.contains("| \(hex) | \(opcode.description) |"), "\(opcode) missing from a message table")
        }
    }

    /// The "returned by" column of section 7 agrees with the opcode traits for the statuses that follow
    /// from them: the capability a request needs, and the descriptors it carries.
    @Test func statusRowsMatchTheTraits() throws {
        let text = try Self.document()
        func returnedBy(_ status: WireStatus) throws -> Set<String> {
            let prefix = "| \(status.rawValue) | \(status.name) |"
            let row = try #require(text.split(separator: "\n").first { $0.hasPrefix(prefix) })
            let cell = try #require(row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }.last)
            return Set(cell.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        }
        let requests = Opcode.all.compactMap(\.traits).filter { !$0.isEvent }
        #expect(try returnedBy(.capabilityNotAgreed) == Set(requests.filter { !$0.capability.isEmpty }.map(\.name)))
        let withFDs = Set(requests.filter { $0.requestFDs > 0 }.map(\.name))
        #expect(try returnedBy(.fdNotAllowedOnTCP) == withFDs)
        #expect(try returnedBy(.badFD) == withFDs)
    }

    /// The message table of section 6 agrees with the opcode traits: descriptors, NO_REPLY, empty replies.
    @Test func messageTableMatchesTheTraits() throws {
        let text = try Self.document()
        var rows = 0
        for line in text.split(separator: "\n") where line.hasPrefix("| 0x") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count == 6, let raw = UInt16(cells[0].dropFirst(2), radix: 16) else { continue }
            let traits = try #require(Opcode(raw).traits, "\(cells[0]) is not an opcode")
            #expect(cells[1] == traits.name)
            #expect((cells[3] == "0") == traits.replyIsEmpty, "\(traits.name) reply column")
            #expect(cells[4] == String(traits.requestFDs), "\(traits.name) fds column")
            #expect((cells[5] == "yes") == traits.noReplyAllowed, "\(traits.name) NO_REPLY column")
            rows += 1
        }
        #expect(rows == Opcode.all.filter { $0.traits?.isEvent == false }.count)
    }
}

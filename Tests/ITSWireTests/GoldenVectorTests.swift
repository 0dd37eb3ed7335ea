import Testing
@testable import ITSWire

/// Protocol/vectors: every file decodes to the frame PROTOCOL.md describes, and that frame encodes back
/// to the same bytes.
@Suite struct GoldenVectorTests {
    @Test func everyFileHasAnExpectation() throws {
        let names = try VectorFiles.names()
        #expect(Set(names) == Set(ExpectedVectors.all.keys))
    }

    @Test(arguments: ExpectedVectors.all.keys.sorted())
    func decodesAndReencodes(name: String) throws {
        let bytes = try VectorFiles.bytes(name)
        let expected = try #require(ExpectedVectors.all[name])
        let decoder = VectorFiles.decoder(for: bytes)
        let result = decoder.decode(bytes, fdCount: VectorFiles.fdCount(of: bytes))
        guard case .frame(let frame, let consumed) = result else {
            Issue.record("\(name): \(result)")
            return
        }
        #expect(consumed == bytes.count)
        #expect(frame == expected)
        #expect(frame.encoded == bytes)
        #expect(expected.encoded == bytes)
        let header = bytes.withUnsafeBytes { FrameHeader(unchecked: $0) }
        #expect(Int(header.length) == bytes.count)
        #expect(header.opcode == expected.message.opcode)
        #expect(header.flags == expected.flags)
        #expect(header.status == expected.status)
        #expect(header.messageID == expected.messageID)
    }

    /// Each opcode of version 1.2 has a request vector and a reply (or event) vector.
    @Test func everyOpcodeIsCovered() {
        var requests = Set<Opcode>()
        var answers = Set<Opcode>()
        for frame in ExpectedVectors.all.values {
            switch frame.message.kind {
            case .request: requests.insert(frame.message.opcode)
            case .reply, .event: answers.insert(frame.message.opcode)
            }
        }
        for opcode in Opcode.all {
            if opcode.traits?.isEvent == true {
                #expect(answers.contains(opcode), "no vector for \(opcode)")
            } else {
                #expect(requests.contains(opcode), "no request vector for \(opcode)")
                #expect(answers.contains(opcode), "no reply vector for \(opcode)")
            }
        }
    }

    /// The INJECT_BATCH view reads the pairs out of the received buffer without copying them.
    @Test func injectBatchViewSharesTheBuffer() throws {
        let bytes = try VectorFiles.bytes("12-inject_batch.request.hex")
        let slice = bytes[...]
        guard case .frame(let frame, _) = FrameDecoder(role: .server, limits: .defaults).decode(slice, fdCount: 0),
              case .injectBatch(let batch) = frame.message
        else {
            Issue.record("not a batch")
            return
        }
        #expect(batch.vm == VMID(1))
        #expect(batch.count == 3)
        #expect(batch.entryBytes.startIndex == 24)
        #expect(batch.entryBytes.count == 24)
        #expect(batch[2] == InjectEntry(deviceID: Wire.DeviceID(0x208), eventID: Wire.EventID(7)))
        var seen: [UInt32] = []
        batch.forEach { seen.append($0.deviceID.rawValue << 8 | $0.eventID.rawValue) }
        #expect(seen == [0x10000, 0x10001, 0x20807])
        let sharesStorage = bytes.withUnsafeBytes { whole in
            batch.entryBytes.withUnsafeBytes { view in view.baseAddress == whole.baseAddress! + 24 }
        }
        #expect(sharesStorage)
    }
}

import Testing
@testable import ITSWire

/// A frame that arrives in pieces: every prefix shorter than the frame asks for more data, and the
/// whole frame decodes the same however it was split; frames back to back decode one after another.
@Suite struct SplitAndStreamTests {
    @Test(arguments: ExpectedVectors.all.keys.sorted())
    func everyPrefixNeedsMoreData(name: String) throws {
        let bytes = try VectorFiles.bytes(name)
        let decoder = VectorFiles.decoder(for: bytes)
        let fds = VectorFiles.fdCount(of: bytes)
        for cut in 0..<bytes.count {
            let prefix = Array(bytes[..<cut])
            #expect(decoder.decode(prefix, fdCount: fds) == .needMoreData, "\(name) cut at \(cut)")
            // The rest arrives and the buffer is reassembled, as a connection's read buffer would be.
            var buffer = prefix
            buffer.append(contentsOf: bytes[cut...])
            guard case .frame(let frame, let consumed) = decoder.decode(buffer, fdCount: fds) else {
                Issue.record("\(name) did not decode after a cut at \(cut)")
                continue
            }
            #expect(consumed == bytes.count)
            #expect(frame == ExpectedVectors.all[name])
        }
    }

    /// All request vectors in one stream to the server, and all reply and event vectors in one stream to
    /// the client, received in random chunk sizes: each frame comes out once, in order, and the decoder
    /// never reports an error.
    @Test(arguments: [FrameDecoder.Role.server, .client])
    func streamInRandomChunks(role: FrameDecoder.Role) throws {
        let seed = testSeed()
        var random = SeededRandom(seed: seed)
        let names = try VectorFiles.names().filter { name in
            let bytes = try VectorFiles.bytes(name)
            return VectorFiles.role(of: bytes) == role
        }
        var stream: [UInt8] = []
        var expected: [Frame] = []
        var fds: [Int] = []
        for name in names {
            let bytes = try VectorFiles.bytes(name)
            stream += bytes
            expected.append(try #require(ExpectedVectors.all[name]))
            fds.append(VectorFiles.fdCount(of: bytes))
        }
        let decoder = FrameDecoder(role: role, limits: .defaults)
        var received: [UInt8] = []
        var sent = 0
        var decoded: [Frame] = []
        while decoded.count < expected.count {
            switch decoder.decode(received[...], fdCount: fds[decoded.count]) {
            case .needMoreData:
                #expect(sent < stream.count, "seed \(seed): stalled")
                if sent >= stream.count { return }
                let chunk = Int.random(in: 1...64, using: &random)
                let end = min(stream.count, sent + chunk)
                received += stream[sent..<end]
                sent = end
            case .frame(let frame, let consumed):
                decoded.append(frame)
                received.removeFirst(consumed)
            case .failure(let error):
                Issue.record("seed \(seed): \(error)")
                return
            }
        }
        #expect(decoded == expected, "seed \(seed)")
        #expect(received.isEmpty && sent == stream.count, "seed \(seed)")
    }
}

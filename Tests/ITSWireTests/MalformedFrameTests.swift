import Testing
@testable import ITSWire

/// Each kind of malformed frame gets its own status, and the decoder says whether the stream can go on.
@Suite struct MalformedFrameTests {
    let server = FrameDecoder(role: .server, limits: .defaults)
    let client = FrameDecoder(role: .client, limits: .defaults)

    /// A frame from raw parts, with the length field computed unless given.
    func frame(_ opcode: Opcode, flags: UInt16 = 0, id: UInt32 = 9, status: UInt32 = 0, payload: [UInt8],
               length: UInt32? = nil) -> [UInt8] {
        var w = ByteWriter(bytes: [])
        w.u32(length ?? UInt32(16 + payload.count))
        w.u16(opcode.rawValue)
        w.u16(flags)
        w.u32(id)
        w.u32(status)
        w.bytes += payload
        return w.bytes
    }

    func le32(_ values: UInt32...) -> [UInt8] {
        var w = ByteWriter(bytes: [])
        for value in values { w.u32(value) }
        return w.bytes
    }

    func status(_ decoder: FrameDecoder, _ bytes: [UInt8], fds: Int = 0) -> WireStatus? {
        failure(decoder, bytes, fds: fds)?.status
    }

    func failure(_ decoder: FrameDecoder, _ bytes: [UInt8], fds: Int = 0) -> WireError? {
        if case .failure(let error) = decoder.decode(bytes, fdCount: fds) { return error }
        return nil
    }

    @Test func truncatedPayload() {
        let bytes = frame(.inject, payload: le32(1, 2, 3))
        guard case .failure(let error) = server.decode(bytes, fdCount: 0) else {
            Issue.record("accepted")
            return
        }
        #expect(error.status == .truncated)
        #expect(error.header?.messageID == MessageID(9))
        #expect(error.resumeAfter == 28)
    }

    /// The error reply for a decoder error echoes the frame's opcode and id, and decodes on the client.
    @Test func errorReplyForADecoderError() {
        guard case .failure(let error) = server.decode(frame(.inject, id: 77, payload: le32(1, 2, 3, 5)), fdCount: 0)
        else {
            Issue.record("accepted")
            return
        }
        let reply = error.errorReply(text: "reserved field")
        guard case .frame(let decoded, _) = client.decode(reply.encoded, fdCount: 0) else {
            Issue.record("error reply does not decode")
            return
        }
        #expect(decoded.messageID == MessageID(77))
        #expect(decoded.message == .error(.inject, ErrorReport(.nonzeroPadding, detail: 28, text: "reserved field")))
        guard case .failure(let fatal) = server.decode(le32(3), fdCount: 0) else { return }
        #expect(fatal.errorReply().messageID == MessageID(0))
        #expect(fatal.errorReply().message == .error(Opcode(0), ErrorReport(.lengthBelowHeader, detail: 3)))
    }

    @Test func trailingBytes() {
        #expect(status(server, frame(.ping, payload: le32(1, 2, 3, 4))) == .trailingBytes)
        #expect(status(server, frame(.listVMs, payload: le32(0, 0))) == .trailingBytes)
        #expect(status(client, frame(.destroyVM, flags: 1, payload: le32(0, 0))) == .trailingBytes)
    }

    /// A bad length is reported as soon as its four bytes arrive, before the rest is buffered.
    @Test func lengthBelowHeaderAndAboveMaximum() {
        for length: UInt32 in [0, 1, 15] {
            guard case .failure(let error) = server.decode(le32(length), fdCount: 0) else {
                Issue.record("length \(length) accepted")
                continue
            }
            #expect(error.status == .lengthBelowHeader)
            #expect(error.resumeAfter == nil)
        }
        for length: UInt32 in [65537, 1 << 20, UInt32.max] {
            guard case .failure(let error) = server.decode(le32(length), fdCount: 0) else {
                Issue.record("length \(length) accepted")
                continue
            }
            #expect(error.status == .frameTooLarge)
            #expect(error.detail == 65536)
            #expect(error.resumeAfter == nil)
        }
        #expect(server.decode(le32(65536), fdCount: 0) == .needMoreData)
        let early = FrameDecoder(role: .server)
        #expect(status(early, le32(4097)) == .frameTooLarge)
        #expect(server.decode(Array(le32(16)[..<3]), fdCount: 0) == .needMoreData)
    }

    @Test func unknownOpcode() {
        #expect(status(server, frame(Opcode(0x7777), payload: [])) == .unknownOpcode)
        #expect(status(server, frame(.eventVMGone, payload: le32(1, 0))) == .unknownOpcode)
        #expect(status(client, frame(.inject, flags: 8, payload: le32(1, 0))) == .unknownOpcode)
        #expect(status(client, frame(Opcode(0x0004), flags: 1, payload: [])) == .unknownOpcode)
        // An error reply may echo an opcode the client does not know.
        guard case .frame(let reply, _) = client.decode(frame(Opcode(0x7777), flags: 5, status: 5,
                                                              payload: le32(0, 0)), fdCount: 0)
        else {
            Issue.record("error reply to an unknown opcode rejected")
            return
        }
        #expect(reply.message == .error(Opcode(0x7777), ErrorReport(.unknownOpcode)))
    }

    @Test func everyReservedFlagBit() {
        for bit in 4..<16 {
            let bytes = frame(.ping, flags: 1 << bit, payload: le32(0, 0))
            #expect(status(server, bytes) == .reservedFlags, "bit \(bit)")
            #expect(status(client, bytes) == .reservedFlags, "bit \(bit)")
        }
    }

    @Test func forbiddenFlagCombinations() {
        let ping = le32(0, 0)
        #expect(status(server, frame(.ping, flags: 1, payload: ping)) == .flagConflict, "reply to the server")
        #expect(status(server, frame(.ping, flags: 8, payload: ping)) == .flagConflict, "event to the server")
        #expect(status(server, frame(.ping, flags: 2, payload: ping)) == .flagConflict, "NO_REPLY on PING")
        #expect(status(server, frame(.ping, flags: 4, payload: ping)) == .flagConflict, "ERROR on a request")
        #expect(status(client, frame(.ping, payload: ping)) == .flagConflict, "request to the client")
        #expect(status(client, frame(.ping, flags: 3, payload: ping)) == .flagConflict, "REPLY|NO_REPLY")
        #expect(status(client, frame(.ping, flags: 5, payload: le32(0, 0))) == .flagConflict, "ERROR with OK")
        #expect(status(client, frame(.eventVMGone, flags: 9, payload: ping)) == .flagConflict, "EVENT|REPLY")
        // NO_REPLY is allowed where the protocol says so.
        for opcode in [Opcode.inject, .mmioWrite] {
            let payload = opcode == .inject ? le32(1, 2, 3, 0) : le32(1, 0x0400, 0, 0, 0, 0, 0, 0)
            guard case .frame(let frame, _) = server.decode(frame(opcode, flags: 2, payload: payload), fdCount: 0)
            else {
                Issue.record("NO_REPLY refused on \(opcode)")
                continue
            }
            #expect(frame.noReply)
        }
    }

    @Test func fdCountMustMatchTheOpcode() {
        let addMem = frame(.addMemRegion, payload: le32(1, 0, 0, 0, 0x1000, 0, 0, 0))
        #expect(status(server, addMem, fds: 0) == .fdCountMismatch)
        #expect(status(server, addMem, fds: 2) == .fdCountMismatch)
        if case .failure(let error) = server.decode(addMem, fdCount: 0) { #expect(error.detail == 1) }
        #expect(status(server, addMem, fds: 1) == nil)
        let inject = frame(.inject, payload: le32(1, 2, 3, 0))
        #expect(status(server, inject, fds: 1) == .fdCountMismatch)
        let bind = frame(.bindIRQFD, payload: le32(1, 2, 3, 0))
        #expect(status(server, bind, fds: 0) == .fdCountMismatch)
        let notify = frame(.setVCPUNotify, payload: le32(1, 0))
        #expect(status(server, notify, fds: 3) == .fdCountMismatch)
        #expect(status(client, frame(.ping, flags: 1, payload: le32(0, 0)), fds: 1) == .fdCountMismatch)
    }

    /// On TCP the opcodes that carry a file descriptor are refused as such, not as a count mismatch.
    @Test func fdOpcodesOnTCP() {
        let tcp = FrameDecoder(role: .server, limits: .defaults, transport: .tcp)
        #expect(status(tcp, frame(.bindIRQFD, payload: le32(1, 2, 3, 0))) == .fdNotAllowedOnTCP)
        #expect(status(tcp, frame(.setVCPUNotify, payload: le32(1, 0))) == .fdNotAllowedOnTCP)
        #expect(status(tcp, frame(.addMemRegion, payload: le32(1, 0, 0, 0, 0x1000, 0, 0, 0))) == .fdNotAllowedOnTCP)
        #expect(status(tcp, frame(.inject, payload: le32(1, 2, 3, 0))) == nil)
    }

    @Test func countsThatDisagreeWithTheLength() {
        #expect(status(server, frame(.injectBatch, payload: le32(1, 4, 1, 1, 2, 2, 3, 3))) == .batchCountMismatch)
        #expect(status(server, frame(.injectBatch, payload: le32(1, 2, 1, 1, 2, 2, 3, 3))) == .batchCountMismatch)
        #expect(status(server, frame(.injectBatch, payload: le32(1, UInt32.max))) == .batchCountMismatch)
        #expect(status(server, frame(.injectBatch, payload: le32(1, 0))) == nil)
        #expect(status(client, frame(.listVMs, flags: 1, payload: le32(3, 0))) == .batchCountMismatch)
        #expect(status(client, frame(.pending, flags: 1, payload: le32(1, 0))) == .batchCountMismatch)
        #expect(status(client, frame(.dump, flags: 1, payload: le32(1, 0x0008_0003, 5, 0, 0, 0))) == .batchCountMismatch)
        #expect(status(client, frame(.stats, flags: 1, payload: le32(0, 0, 1_000_000, 0))) == .batchCountMismatch)
        #expect(status(server, frame(.restoreVM, payload: le32(1, 9, 0, 0, 9, 0, 1, 0, 1, 2, 3, 4, 5, 6)))
                    == .batchCountMismatch)
    }

    @Test func batchAboveTheNegotiatedLimit() {
        var limits = Limits.defaults
        limits.maxBatchEntries = 2
        let small = FrameDecoder(role: .server, limits: limits)
        let three = frame(.injectBatch, payload: le32(1, 3, 1, 1, 2, 2, 3, 3))
        guard case .failure(let error) = small.decode(three, fdCount: 0) else {
            Issue.record("accepted")
            return
        }
        #expect(error.status == .limitExceeded)
        #expect(error.detail == 2)
        #expect(status(small, frame(.injectBatch, payload: le32(1, 2, 1, 1, 2, 2))) == nil)
    }

    /// Every byte the vectors annotate as reserved or padding, set to 1, is NONZERO_PADDING.
    @Test(arguments: ExpectedVectors.all.keys.sorted())
    func everyReservedByteMustBeZero(name: String) throws {
        let bytes = try VectorFiles.bytes(name)
        let decoder = VectorFiles.decoder(for: bytes)
        let offsets = try VectorFiles.reservedOffsets(name)
        let annotated = try VectorFiles.annotationCount(name, containing: ["# reserved", "# padding"])
        #expect(annotated == 0 || offsets.count >= annotated, "\(name): annotations not found")
        for offset in offsets {
            var bad = bytes
            bad[offset] = 1
            guard case .failure(let error) = decoder.decode(bad, fdCount: VectorFiles.fdCount(of: bytes)) else {
                Issue.record("\(name): byte \(offset) set and accepted")
                continue
            }
            #expect(error.status == .nonzeroPadding, "\(name) byte \(offset)")
            #expect(error.detail == UInt32(offset), "\(name) byte \(offset)")
        }
    }

    @Test func requestStatusMustBeZero() {
        #expect(status(server, frame(.ping, status: 1, payload: le32(0, 0))) == .nonzeroPadding)
        #expect(status(client, frame(.ping, flags: 1, status: 64, payload: le32(0, 0))) == .nonzeroPadding)
    }

    @Test func stringsMustBeValidAndShort() {
        // Error text that is not UTF-8.
        #expect(status(client, frame(.ping, flags: 5, status: 64, payload: le32(0, 2) + [0xC3, 0x28, 0, 0, 0, 0, 0, 0]))
                    == .badString)
        // Error text longer than 256 bytes.
        #expect(status(client, frame(.ping, flags: 5, status: 64, payload: le32(0, 300) + [UInt8](repeating: 0x41, count: 304)))
                    == .badString)
        // A statistic name outside [a-z_][a-z0-9_]*.
        var report = ExpectedVectors.statsSchema
        report[0].name = "Bad"
        let encoded = Frame(.statsReply(StatsReport(schemaID: 1, schema: report, values: ExpectedVectors.statsValues)),
                            id: MessageID(1)).encoded
        #expect(status(client, encoded) == .badString)
    }

    @Test func enumeratedFieldsOutsideTheirValues() {
        #expect(status(server, frame(.dump, payload: le32(1, 9, 0, 0, 1, 0))) == .badValue)
        #expect(status(server, frame(.subscribe, payload: le32(1, 4))) == .badValue)
        #expect(status(server, frame(.bindIRQFD, payload: le32(1, 2, 3, 2)), fds: 1) == .badValue)
        #expect(status(server, frame(.stats, payload: le32(1, 2))) == .badValue)
        #expect(status(client, frame(.eventVMGone, flags: 8, payload: le32(1, 7))) == .badValue)
        #expect(status(server, frame(.mmioRead, payload: le32(1, 0x0000_0402, 0, 0))) == .badMMIOFrame)
        #expect(status(server, frame(.mmioRead, payload: le32(1, 0x0000_0300, 0, 0))) == .badMMIOWidth)
        #expect(status(client, frame(.hppi, flags: 1, payload: le32(8192, 0x0000_02A0))) == .badValue)
        var schema = ExpectedVectors.statsSchema
        schema[2].bucketBounds = [10, 10, 20]
        let unsorted = Frame(.statsReply(StatsReport(schemaID: 1, schema: schema, values: ExpectedVectors.statsValues)),
                             id: MessageID(1)).encoded
        #expect(status(client, unsorted) == .badValue)
        let wrongKind = Frame(.statsReply(StatsReport(schemaID: 1, schema: ExpectedVectors.statsSchema,
                                                      values: [.gauge(1), .gauge(2), .counter(3)])),
                              id: MessageID(1)).encoded
        #expect(status(client, wrongKind) == .badValue)
    }

    /// The ITS frame has index 0 only; a redistributor's index is the vCPU, checked by the server.
    @Test func mmioFrameIndex() {
        let itsThree = failure(server, frame(.mmioRead, payload: le32(1, 0x0003_0400, 0, 0)))
        #expect(itsThree?.status == .badMMIOFrame)
        #expect(itsThree?.detail == 3)
        #expect(status(server, frame(.mmioRead, payload: le32(1, 0x0003_0401, 0, 0))) == nil)
    }

    /// MMIO_WRITE carries its value in the low `width` bytes; a bit above them is BAD_VALUE (detail: width).
    @Test func mmioWriteValueWiderThanTheAccess() {
        func write(width: UInt32, value: UInt64) -> [UInt8] {
            frame(.mmioWrite, payload: le32(1, width << 8, 0x40, 0, UInt32(truncatingIfNeeded: value),
                                            UInt32(truncatingIfNeeded: value >> 32), 0, 0))
        }
        for (width, value) in [(1, 0x100), (2, 0x1_0000), (4, 0x1_0000_0000)] as [(UInt32, UInt64)] {
            let error = failure(server, write(width: width, value: value))
            #expect(error?.status == .badValue, "width \(width)")
            #expect(error?.detail == width, "width \(width)")
            #expect(status(server, write(width: width, value: value - 1)) == nil, "width \(width)")
        }
        #expect(status(server, write(width: 8, value: .max)) == nil)
    }

    /// The detail word of payload errors is what PROTOCOL.md section 7 gives for each status.
    @Test func payloadErrorDetails() {
        let longText = failure(client, frame(.ping, flags: 5, status: 64,
                                             payload: le32(0, 300) + [UInt8](repeating: 0x41, count: 304)))
        #expect(longText?.detail == 24, "BAD_STRING: offset of the text")
        var badName = ExpectedVectors.statsSchema
        badName[0].name = "9lives"
        let name = failure(client, Frame(.statsReply(StatsReport(schemaID: 1, schema: badName,
                                                                 values: ExpectedVectors.statsValues)),
                                         id: MessageID(1)).encoded)
        #expect(name?.status == .badString)
        // The name follows the header (16), the reply's fixed fields (16) and the descriptor's (8).
        #expect(name?.detail == UInt32(16 + 16 + 8), "BAD_STRING: offset of the name")
        var untotalled = ExpectedVectors.statsSchema
        untotalled[0].name = "lpis_injected"
        #expect(status(client, Frame(.statsReply(StatsReport(schemaID: 1, schema: untotalled,
                                                             values: ExpectedVectors.statsValues)),
                                     id: MessageID(1)).encoded) == .badString, "a counter's name ends in _total")
        var twoLines = ExpectedVectors.statsSchema
        twoLines[1].help = "first\nsecond"
        let help = failure(client, Frame(.statsReply(StatsReport(schemaID: 1, schema: twoLines,
                                                                 values: ExpectedVectors.statsValues)),
                                         id: MessageID(1)).encoded)
        #expect(help?.status == .badString, "help is one line")
        // Header and reply fields (32), the first descriptor (48), the second's fixed part (8) and name (13).
        let helpOffset: UInt32 = 101
        #expect(help?.detail == helpOffset, "BAD_STRING: offset of the help text")
        var unsorted = ExpectedVectors.statsSchema
        unsorted[2].bucketBounds = [10, 20, 20]
        let bounds = failure(client, Frame(.statsReply(StatsReport(schemaID: 1, schema: unsorted,
                                                                   values: ExpectedVectors.statsValues)),
                                           id: MessageID(1)).encoded)
        #expect(bounds?.status == .badValue)
        #expect(bounds?.detail == 2, "BAD_VALUE: index of the bound that does not increase")
        let kind = failure(client, Frame(.statsReply(StatsReport(schemaID: 1, schema: ExpectedVectors.statsSchema,
                                                                 values: [.counter(1), .counter(2), .counter(3)])),
                                         id: MessageID(1)).encoded)
        #expect(kind?.status == .badValue)
        #expect(kind?.detail == UInt32(StatKind.counter.rawValue), "BAD_VALUE: the value's kind")
        let twoBuckets: [StatValue] = [.counter(1), .gauge(2), .histogram(count: 0, sum: 0, buckets: [0, 0])]
        let buckets = failure(client, Frame(.statsReply(StatsReport(schemaID: 1, schema: ExpectedVectors.statsSchema,
                                                                    values: twoBuckets)),
                                            id: MessageID(1)).encoded)
        #expect(buckets?.status == .batchCountMismatch)
        #expect(buckets?.detail == 4, "BATCH_COUNT_MISMATCH: the slot count")
    }

    /// A histogram has at least one bound, so at least 4 slots: count, sum, one bucket, the overflow.
    @Test func histogramWithoutBuckets() {
        let values = le32(0, 0, 1, 0) + [3, 0, 0, 0] + le32(3, 0, 0, 0, 0, 0, 0)
        let error = failure(client, frame(.stats, flags: 1, payload: values))
        #expect(error?.status == .batchCountMismatch)
        #expect(error?.detail == 3)
    }

    /// Decoding stops at the frame's end: the bytes of the next frame are not part of this one.
    @Test func frameEndsAtItsLength() {
        let ping = frame(.ping, payload: le32(7, 0))
        let bytes = ping + frame(.ping, payload: le32(8, 0))
        guard case .frame(let first, let consumed) = server.decode(bytes, fdCount: 0) else {
            Issue.record("no frame")
            return
        }
        #expect(consumed == ping.count)
        #expect(first.message == .ping(nonce: 7))
        guard case .frame(let second, _) = server.decode(bytes[consumed...], fdCount: 0) else {
            Issue.record("no second frame")
            return
        }
        #expect(second.message == .ping(nonce: 8))
    }

    /// AUTHENTICATE: a secret of 1 to 256 bytes, its reserved word and padding zero.
    @Test func authenticateSecretBounds() {
        let secret = Array("abc".utf8)
        let empty = failure(server, frame(.authenticate, payload: le32(0, 0)))
        #expect(empty?.status == .badValue && empty?.detail == 0)
        let long = failure(server, frame(.authenticate, payload: le32(257, 0) + [UInt8](repeating: 1, count: 264)))
        #expect(long?.status == .badValue && long?.detail == 257)
        #expect(status(server, frame(.authenticate, payload: le32(3, 1) + secret + [0, 0, 0, 0, 0])) == .nonzeroPadding)
        #expect(status(server, frame(.authenticate, payload: le32(3, 0) + secret + [0, 0, 0, 0, 9])) == .nonzeroPadding)
        #expect(status(server, frame(.authenticate, payload: le32(9, 0) + secret)) == .truncated)
        guard case .frame(let decoded, _) = server.decode(frame(.authenticate, payload: le32(3, 0) + secret + [0, 0, 0, 0, 0]), fdCount: 0) else {
            Issue.record("a well-formed AUTHENTICATE")
            return
        }
        #expect(decoded.message == .authenticate(secret: secret))
    }
}

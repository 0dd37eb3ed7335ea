import Testing
@testable import ITSWire

/// HELLO negotiation (PROTOCOL.md, "HELLO"): defaults for 0, caps at the server's maximum, the lower
/// minor, the common capabilities, VERSION_MISMATCH for another major or a too-small frame.
@Suite struct HelloTests {
    @Test func zeroTakesTheDefaults() throws {
        let proposal = Hello(capabilities: [], limits: Limits(maxFrameLength: 0, maxBatchEntries: 0, maxInFlight: 0,
                                                               maxFDsPerMessage: 0))
        let answer = try proposal.answer().get()
        #expect(answer.limits == .defaults)
        #expect(answer.major == 1 && answer.minor == 2)
    }

    @Test func proposalsAreCappedAtTheServerMaximum() throws {
        let proposal = Hello(minor: 7, capabilities: Capabilities(rawValue: 0xFFFF),
                             limits: Limits(maxFrameLength: .max, maxBatchEntries: .max, maxInFlight: .max,
                                            maxFDsPerMessage: .max))
        let answer = try proposal.answer().get()
        #expect(answer.minor == Wire.minorVersion)
        #expect(answer.capabilities == .defined)
        #expect(answer.limits.maxFrameLength == Limits.serverMaximum.maxFrameLength)
        #expect(answer.limits.maxInFlight == Limits.serverMaximum.maxInFlight)
        #expect(answer.limits.maxFDsPerMessage == Limits.serverMaximum.maxFDsPerMessage)
        // A full batch fits in one frame of the agreed size.
        #expect(16 + 8 + 8 * UInt64(answer.limits.maxBatchEntries) <= UInt64(answer.limits.maxFrameLength))
    }

    /// A 1.0 or 1.1 client gets its own minor from a 1.2 server: both sides then speak that version.
    @Test(arguments: [UInt16(0), 1])
    func anOlderMinorIsKept(minor: UInt16) throws {
        let answer = try Hello(minor: minor, capabilities: [], limits: .defaults).answer().get()
        #expect(answer.major == 1 && answer.minor == minor)
    }

    @Test func batchLimitFollowsTheFrameLimit() throws {
        let proposal = Hello(capabilities: [.errorReports], limits: Limits(maxFrameLength: 4096, maxBatchEntries: 4096,
                                                                           maxInFlight: 1, maxFDsPerMessage: 1))
        let answer = try proposal.answer().get()
        #expect(answer.limits.maxBatchEntries == (4096 - 24) / 8)
        #expect(answer.capabilities == [.errorReports])
    }

    @Test func anotherMajorIsRefused() {
        let proposal = Hello(major: 2, capabilities: [], limits: .defaults)
        guard case .failure(let error) = proposal.answer() else {
            Issue.record("accepted major 2")
            return
        }
        #expect(error.status == .versionMismatch)
        #expect(error.detail == 0x0001_0002)
    }

    @Test func aFrameLimitBelowTheMinimumIsRefused() {
        let proposal = Hello(capabilities: [], limits: Limits(maxFrameLength: 100, maxBatchEntries: 0, maxInFlight: 0,
                                                               maxFDsPerMessage: 0))
        guard case .failure(let error) = proposal.answer() else {
            Issue.record("accepted a 100-byte frame limit")
            return
        }
        #expect(error.status == .badValue)
        #expect(error.detail == 4096)
    }

    @Test func statusNamesAreDistinct() {
        let codes = WireStatus.named.map(\.0.rawValue)
        let names = WireStatus.named.map(\.1)
        #expect(Set(codes).count == codes.count)
        #expect(Set(names).count == names.count)
        #expect(WireStatus(9999).name == "STATUS_9999")
        #expect(Opcode(0x7777).description == "OPCODE_0x7777")
    }

    @Test func tokensCompareWithoutShortcuts() {
        let token = VMToken(high: 1, low: 2)
        #expect(token.matches(VMToken(high: 1, low: 2)))
        #expect(!token.matches(VMToken(high: 1, low: 3)))
        #expect(!token.matches(VMToken(high: 0, low: 2)))
        #expect(!"\(token)".contains("1"))
    }
}

/// HELLO: version, capabilities and limits (Protocol/PROTOCOL.md, "HELLO").

/// Optional behaviours a client asks for and the server grants in its HELLO reply.
public struct Capabilities: OptionSet, Hashable, Sendable, BitwiseCopyable {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// A NO_REPLY request that fails is answered by an error frame (otherwise it is only counted).
    public static let errorReports = Capabilities(rawValue: 1 << 0)
    /// The server may send EVENT frames; SUBSCRIBE is allowed.
    public static let events = Capabilities(rawValue: 1 << 1)
    /// SNAPSHOT_VM and RESTORE_VM are allowed.
    public static let snapshot = Capabilities(rawValue: 1 << 2)

    /// Every capability version 1.0 defines. Unknown bits in a proposal are dropped from the reply.
    public static let defined: Capabilities = [.errorReports, .events, .snapshot]
}

/// The limits of a connection. In a HELLO request 0 means "the default"; the reply carries the
/// agreed values, never 0, and both sides hold to them until the connection closes.
public struct Limits: Hashable, Sendable, BitwiseCopyable {
    /// Largest frame, header included, in either direction.
    public var maxFrameLength: UInt32
    /// Largest number of (DeviceID, EventID) pairs in one INJECT_BATCH.
    public var maxBatchEntries: UInt32
    /// Requests the server reads ahead of its replies before it stops reading the socket.
    public var maxInFlight: UInt32
    /// Largest number of file descriptors on one frame.
    public var maxFDsPerMessage: UInt16

    @inlinable
    public init(maxFrameLength: UInt32, maxBatchEntries: UInt32, maxInFlight: UInt32, maxFDsPerMessage: UInt16) {
        self.maxFrameLength = maxFrameLength
        self.maxBatchEntries = maxBatchEntries
        self.maxInFlight = maxInFlight
        self.maxFDsPerMessage = maxFDsPerMessage
    }

    /// The values a 0 in the HELLO request stands for.
    public static let defaults = Limits(maxFrameLength: 65536, maxBatchEntries: 4096, maxInFlight: 64,
                                        maxFDsPerMessage: 1)
    /// The largest values the server agrees to.
    public static let serverMaximum = Limits(maxFrameLength: 1 << 20, maxBatchEntries: 65536, maxInFlight: 4096,
                                             maxFDsPerMessage: 8)
    /// What holds before HELLO completes: 4096-byte frames (so a batch fits (4096 - 24) / 8 pairs, and
    /// the server answers an early batch with NOT_HELLO_FIRST, not a limit), one request, one fd.
    public static let beforeHello = Limits(maxFrameLength: 4096, maxBatchEntries: 509, maxInFlight: 1,
                                           maxFDsPerMessage: 1)
    /// The smallest maximum frame length a client may propose.
    public static let minimumFrameLength: UInt32 = 4096

    /// The limits the server agrees to for a proposal: 0 takes the default, anything else is capped at
    /// `maximum`; the batch limit is further capped so a full INJECT_BATCH fits in one frame.
    /// Returns nil when the proposal asks for a maximum frame below `minimumFrameLength`.
    public static func agreed(proposal: Limits, maximum: Limits = .serverMaximum) -> Limits? {
        func pick<T: FixedWidthInteger>(_ proposed: T, _ fallback: T, _ cap: T) -> T {
            Swift.min(proposed == 0 ? fallback : proposed, cap)
        }
        let frame = pick(proposal.maxFrameLength, defaults.maxFrameLength, maximum.maxFrameLength)
        guard frame >= minimumFrameLength else { return nil }
        let batchFit = (frame - UInt32(Wire.headerLength) - 8) / 8
        return Limits(
            maxFrameLength: frame,
            maxBatchEntries: Swift.min(pick(proposal.maxBatchEntries, defaults.maxBatchEntries,
                                            maximum.maxBatchEntries), batchFit),
            maxInFlight: pick(proposal.maxInFlight, defaults.maxInFlight, maximum.maxInFlight),
            maxFDsPerMessage: pick(proposal.maxFDsPerMessage, defaults.maxFDsPerMessage,
                                   maximum.maxFDsPerMessage))
    }
}

/// The payload of HELLO and of its reply (32 bytes):
///
///     0  u16 major        4  u32 reserved       8  u64 capabilities
///     2  u16 minor       16  u32 max_frame_length   20 u32 max_batch_entries
///     24 u32 max_in_flight   28 u16 max_fds_per_message   30 u16 reserved
public struct Hello: Hashable, Sendable, BitwiseCopyable {
    public var major: UInt16
    public var minor: UInt16
    public var capabilities: Capabilities
    public var limits: Limits

    @inlinable
    public init(major: UInt16 = Wire.majorVersion, minor: UInt16 = Wire.minorVersion,
                capabilities: Capabilities, limits: Limits) {
        self.major = major
        self.minor = minor
        self.capabilities = capabilities
        self.limits = limits
    }

    /// The server's answer to a client's HELLO: same major, the lower minor, the capabilities both
    /// support, the agreed limits. Fails with VERSION_MISMATCH (detail: the server's major << 16 | minor)
    /// when the majors differ, and with BAD_VALUE (detail: the minimum) when the proposed maximum frame
    /// length is below `Limits.minimumFrameLength`. Either way the server closes the connection.
    public func answer(serverCapabilities: Capabilities = .defined,
                       maximum: Limits = .serverMaximum) -> Result<Hello, WireError> {
        guard major == Wire.majorVersion else {
            return .failure(WireError(.versionMismatch,
                                      detail: UInt32(Wire.majorVersion) << 16 | UInt32(Wire.minorVersion)))
        }
        guard let limits = Limits.agreed(proposal: limits, maximum: maximum) else {
            return .failure(WireError(.badValue, detail: Limits.minimumFrameLength))
        }
        return .success(Hello(major: major, minor: Swift.min(minor, Wire.minorVersion),
                              capabilities: capabilities.intersection(serverCapabilities), limits: limits))
    }
}

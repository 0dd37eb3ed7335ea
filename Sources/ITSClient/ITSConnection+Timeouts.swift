import ITSWire

/// The reply timeout of a connection: a silent itsd makes a call throw `.timedOut` rather than hang.
/// Each blocking receive first polls the socket until the reply's deadline.
extension ITSConnection {
    /// The reply timeout a connection starts with.
    public static let defaultReplyTimeout: Duration = .seconds(30)

    /// Throws `.versionNotAgreed` unless HELLO agreed at least 1.`minor`, which `request` needs.
    /// - Context: any thread.
    func requireMinor(_ minor: UInt16, for request: Opcode) throws(ITSClientError) {
        guard agreed.minor >= minor else { throw .versionNotAgreed(request: request, needs: minor, agreed: agreed.minor) }
    }

    /// `duration` in nanoseconds: 0 when negative, `UInt64.max` when it does not fit.
    /// - Context: any thread.
    static func nanoseconds(_ duration: Duration) -> UInt64 {
        guard duration > .zero else { return 0 }
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        let (sum, carry) = whole.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
        return overflow || carry ? .max : sum
    }
}

/// When a reply must have arrived: `timeout` after the moment the wait began.
struct ReplyDeadline {
    /// The timeout, for the error.
    let timeout: Duration
    /// CLOCK_MONOTONIC nanoseconds (``ITSConnection/monotonicNanoseconds()``).
    let instant: UInt64

    init(timeout: Duration) {
        self.timeout = timeout
        let (sum, overflow) = ITSConnection.monotonicNanoseconds()
            .addingReportingOverflow(ITSConnection.nanoseconds(timeout))
        instant = overflow ? .max : sum
    }
}

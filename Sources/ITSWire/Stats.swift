/// STATS: a schema of named, typed statistics, then their values (Protocol/PROTOCOL.md, "STATS").
/// The schema is sent when asked for; `schemaID` changes whenever the set of statistics changes, so a
/// client caches the schema and asks again only when the id differs.

/// What a statistic measures.
public enum StatKind: UInt8, Hashable, Sendable, BitwiseCopyable {
    /// Only grows (resets only with the server): one u64.
    case counter = 1
    /// Goes up and down: one i64.
    case gauge = 2
    /// Distribution over fixed buckets: count, sum, one count per bucket and one above the last bound.
    case histogram = 3
}

/// The unit of a statistic's values (and of a histogram's bounds and sum).
public enum StatUnit: UInt8, Hashable, Sendable, BitwiseCopyable {
    case none = 0
    case bytes = 1
    case nanoseconds = 2
    case boolean = 3
}

/// One entry of the schema.
public struct StatDescriptor: Hashable, Sendable {
    /// Matches `[a-z_][a-z0-9_]*`, at most `maxNameLength` bytes; a counter's ends in `_total`.
    public var name: String
    public var kind: StatKind
    public var unit: StatUnit
    /// One line for people (no line feed), at most `maxHelpLength` bytes of UTF-8.
    public var help: String
    /// Inclusive upper bounds of a histogram's buckets, strictly increasing; empty for other kinds.
    public var bucketBounds: [UInt64]

    public static let maxNameLength = 128
    public static let maxHelpLength = 1024
    public static let maxBuckets = 64

    public init(name: String, kind: StatKind, unit: StatUnit, help: String, bucketBounds: [UInt64] = []) {
        self.name = name
        self.kind = kind
        self.unit = unit
        self.help = help
        self.bucketBounds = bucketBounds
    }
}

/// One statistic's value.
public enum StatValue: Hashable, Sendable {
    case counter(UInt64)
    case gauge(Int64)
    /// `buckets.count` is the descriptor's bound count + 1; the last counts values above every bound.
    case histogram(count: UInt64, sum: UInt64, buckets: [UInt64])

    public var kind: StatKind {
        switch self {
        case .counter: .counter
        case .gauge: .gauge
        case .histogram: .histogram
        }
    }
}

/// The body of a STATS reply.
public struct StatsReport: Hashable, Sendable {
    public var schemaID: UInt64
    /// Present when the request asked for it; then `schema.count == values.count`.
    public var schema: [StatDescriptor]?
    public var values: [StatValue]

    public init(schemaID: UInt64, schema: [StatDescriptor]?, values: [StatValue]) {
        self.schemaID = schemaID
        self.schema = schema
        self.values = values
    }
}

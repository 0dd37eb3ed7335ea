import Histogram
import ITSWire

/// Builds a STATS reply (Protocol/PROTOCOL.md, 6.17): statistics are added in a fixed order with
/// their descriptors, and the schema id is a hash of the descriptors, so that it changes exactly
/// when the set of statistics (names, kinds, units, buckets) does.
struct StatsReportBuilder {
    private(set) var descriptors: [StatDescriptor] = []
    private(set) var values: [StatValue] = []
    /// FNV-1a 64 over every descriptor so far.
    private var hash: UInt64 = 0xCBF2_9CE4_8422_2325

    mutating func counter(_ name: String, _ value: UInt64, unit: StatUnit = .none, _ help: String) {
        add(StatDescriptor(name: name, kind: .counter, unit: unit, help: help), .counter(value))
    }

    mutating func gauge(_ name: String, _ value: Int64, unit: StatUnit = .none, _ help: String) {
        add(StatDescriptor(name: name, kind: .gauge, unit: unit, help: help), .gauge(value))
    }

    /// A histogram in nanoseconds over ``latencyBounds``.
    mutating func latency(_ name: String, _ histogram: Histogram<UInt64>, _ help: String) {
        var buckets: [UInt64] = []
        buckets.reserveCapacity(Self.latencyBounds.count + 1)
        var below: UInt64 = 0
        for bound in Self.latencyBounds {
            let upTo = histogram.totalCount == 0 ? 0 : histogram.count(within: 0 ... bound)
            buckets.append(upTo - min(upTo, below))
            below = max(below, upTo)
        }
        buckets.append(histogram.totalCount - min(histogram.totalCount, below))
        // HdrHistogram keeps no exact sum: the mean times the count is the sum within its precision.
        let sum = histogram.totalCount == 0 ? 0 : UInt64(histogram.mean * Double(histogram.totalCount))
        add(StatDescriptor(name: name, kind: .histogram, unit: .nanoseconds, help: help, bucketBounds: Self.latencyBounds),
            .histogram(count: histogram.totalCount, sum: sum, buckets: buckets))
    }

    private mutating func add(_ descriptor: StatDescriptor, _ value: StatValue) {
        for byte in descriptor.name.utf8 { mix(byte) }
        mix(descriptor.kind.rawValue)
        mix(descriptor.unit.rawValue)
        for bound in descriptor.bucketBounds { withUnsafeBytes(of: bound.littleEndian) { $0.forEach { mix($0) } } }
        mix(0)
        descriptors.append(descriptor)
        values.append(value)
    }

    private mutating func mix(_ byte: UInt8) {
        hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
    }

    func report(includeSchema: Bool) -> StatsReport {
        StatsReport(schemaID: hash, schema: includeSchema ? descriptors : nil, values: values)
    }

    /// Latency bucket bounds: 1, 2, 5 per decade from 1 µs to 10 s, in nanoseconds.
    static let latencyBounds: [UInt64] = {
        var bounds: [UInt64] = []
        var decade: UInt64 = 1000
        while decade <= 1_000_000_000 {
            bounds += [decade, 2 * decade, 5 * decade]
            decade *= 10
        }
        bounds.append(10_000_000_000)
        return bounds
    }()

    /// A histogram for inject-to-acknowledge latencies in nanoseconds: 100 ns to 60 s with two
    /// significant digits (values above 60 s count as 60 s).
    static func makeLatencyHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 100, highestTrackableValue: latencyCeiling, numberOfSignificantValueDigits: .two)
    }

    static let latencyCeiling: UInt64 = 60_000_000_000
}

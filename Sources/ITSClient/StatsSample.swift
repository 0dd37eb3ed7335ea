import ITSWire

/// A label a statistic's name carries: itsd names one vCPU's, one device's and one lane's statistics
/// `vcpu_<n>_…`, `device_<id>_…` and `lane_<n>_…` (Protocol/PROTOCOL.md, 6.17; docs/OPERATIONS.md),
/// and a client presents the number as a label.
public struct StatLabel: Hashable, Sendable {
    public var key: String
    public var value: String

    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

/// One statistic of a sample, with its number taken out of its name into a label.
public struct StatSeries: Hashable, Sendable {
    /// The name as the server sent it, such as `vcpu_3_lpis_delivered_total`.
    public var wireName: String
    /// The name without the number, such as `vcpu_lpis_delivered_total`.
    public var name: String
    /// The label the number became, such as `vcpu="3"`; empty for a statistic without one.
    public var labels: [StatLabel]
    public var descriptor: StatDescriptor
    public var value: StatValue

    public init(descriptor: StatDescriptor, value: StatValue) {
        self.descriptor = descriptor
        self.value = value
        wireName = descriptor.name
        (name, labels) = Self.split(descriptor.name)
    }

    /// The prefixes whose number becomes a label.
    public static let labelledPrefixes = ["vcpu", "device", "lane"]

    /// Splits `vcpu_3_lpis_pending` into `vcpu_lpis_pending` and `vcpu="3"`; other names are kept.
    public static func split(_ wireName: String) -> (name: String, labels: [StatLabel]) {
        let parts = wireName.split(separator: "_", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, labelledPrefixes.contains(String(parts[0])), !parts[1].isEmpty,
              parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), !parts[2].isEmpty
        else { return (wireName, []) }
        return ("\(parts[0])_\(parts[2])", [StatLabel(String(parts[0]), String(parts[1]))])
    }

    /// The value as a number: a counter or a gauge, or a histogram's count.
    public var number: Double {
        switch value {
        case .counter(let raw): Double(raw)
        case .gauge(let raw): Double(raw)
        case .histogram(let count, _, _): Double(count)
        }
    }

    /// The value of the label `key`, if the series has it.
    public func label(_ key: String) -> String? {
        labels.first { $0.key == key }?.value
    }
}

/// The statistics of one STATS reply, read at one moment: a VM's, or the whole server's (`VMID.all`).
public struct StatsSample: Sendable {
    public let vm: VMID
    /// CLOCK_MONOTONIC nanoseconds when the reply arrived, for rates between two samples.
    public let time: UInt64
    public let series: [StatSeries]
    private let index: [String: Int]

    public init(vm: VMID, schema: [StatDescriptor], values: [StatValue], time: UInt64) {
        self.vm = vm
        self.time = time
        series = zip(schema, values).map { StatSeries(descriptor: $0, value: $1) }
        var index: [String: Int] = [:]
        for (position, entry) in series.enumerated() { index[entry.wireName] = position }
        self.index = index
    }

    /// The statistic the server names `wireName`.
    public subscript(wireName: String) -> StatSeries? {
        index[wireName].map { series[$0] }
    }

    /// A counter's value.
    public func counter(_ wireName: String) -> UInt64? {
        if case .counter(let raw)? = self[wireName]?.value { raw } else { nil }
    }

    /// A gauge's value.
    public func gauge(_ wireName: String) -> Int64? {
        if case .gauge(let raw)? = self[wireName]?.value { raw } else { nil }
    }

    /// A counter's increase per second since `earlier`; nil if either sample lacks it, if no time
    /// passed, or if it went down (its VM was destroyed and the server-wide sum dropped).
    public func rate(_ wireName: String, since earlier: StatsSample) -> Double? {
        guard let now = counter(wireName), let then = earlier.counter(wireName), now >= then, time > earlier.time
        else { return nil }
        return Double(now - then) * 1e9 / Double(time - earlier.time)
    }

    /// The main loop's busy share since `earlier`, 0 to 1: one minus the growth of `loop_idle_ns_total`
    /// over the growth of `uptime_ns` (whole-server samples only).
    public func loopUtilisation(since earlier: StatsSample) -> Double? {
        guard let idleNow = counter("loop_idle_ns_total"), let idleThen = earlier.counter("loop_idle_ns_total"),
              let upNow = gauge("uptime_ns"), let upThen = earlier.gauge("uptime_ns"),
              upNow > upThen, idleNow >= idleThen
        else { return nil }
        return Swift.max(0, Swift.min(1, 1 - Double(idleNow - idleThen) / Double(upNow - upThen)))
    }

    /// The upper bound of the bucket holding quantile `q` (0 ... 1) of a histogram's values recorded
    /// since `earlier` (of all values when `earlier` is nil); nil without values. Values above the last
    /// bound report `.infinity`.
    public func quantile(_ q: Double, of wireName: String, since earlier: StatsSample? = nil) -> Double? {
        guard let entry = self[wireName], case .histogram(_, _, let buckets) = entry.value else { return nil }
        var counts = buckets
        if let earlier, case .histogram(_, _, let before)? = earlier[wireName]?.value, before.count == counts.count {
            for position in counts.indices { counts[position] = counts[position] &- Swift.min(before[position], counts[position]) }
        }
        let total = counts.reduce(0, +)
        guard total > 0 else { return nil }
        let target = Swift.max(1, UInt64((q * Double(total)).rounded(.up)))
        var seen: UInt64 = 0
        for (position, count) in counts.enumerated() {
            seen += count
            if seen >= target {
                let bounds = entry.descriptor.bucketBounds
                return position < bounds.count ? Double(bounds[position]) : .infinity
            }
        }
        return .infinity
    }
}

extension VMToken {
    /// The token operators present: 16 zero bytes. itsd attaches a Unix-socket peer whose uid it
    /// counts as an operator with it (root and the server's own uid by default); anyone else gets
    /// BAD_TOKEN.
    public static let operatorToken = VMToken(high: 0, low: 0)

    /// The 16 bytes in wire order (`low`, then `high`, each little-endian) as 32 lowercase hex digits.
    public var hex: String {
        var digits = ""
        for half in [low, high] {
            for shift in stride(from: 0, to: 64, by: 8) {
                let byte = UInt8(truncatingIfNeeded: half >> UInt64(shift))
                digits += byte < 16 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
            }
        }
        return digits
    }

    /// A token from 32 hex digits in wire order (as `hex` writes them); nil for anything else.
    public init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count == 32 else { return nil }
        var halves: [UInt64] = [0, 0]
        for position in 0 ..< 16 {
            guard let high = Self.nibble(digits[2 * position]), let low = Self.nibble(digits[2 * position + 1]) else {
                return nil
            }
            halves[position / 8] |= UInt64(high << 4 | low) << UInt64((position % 8) * 8)
        }
        self.init(high: halves[1], low: halves[0])
    }

    private static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0") ... UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a") ... UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A") ... UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

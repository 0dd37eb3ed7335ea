// The figures of a run, as one JSON object (--json) or as lines for people.
import Histogram
import ToolSupport

extension LoadResult {
    /// Microseconds at `percentile` of `histogram`, nil when it recorded nothing.
    static func micros(_ histogram: Histogram<UInt64>, _ percentile: Double) -> Double? {
        histogram.totalCount == 0 ? nil : Double(histogram.valueAtPercentile(percentile)) / 1000
    }

    var fields: [(String, JSONValue)] {
        let o = options
        let perSecond = seconds > 0 ? Double(msis) / seconds : 0
        let floorP50 = floor.latency.flatMap { Self.micros($0, 50) }
        let pathP50 = Self.micros(pathLatency, 50)
        var growth: JSONValue = .null
        var growthPerLPI: JSONValue = .null
        if let before = rssAnonBeforeVM, let after = rssAnonAfterSetup {
            let delta = Int64(bitPattern: after &- before)
            growth = .int(Int(delta))
            growthPerLPI = .number(Double(delta) / Double(max(o.workload.lpiCount, 1)))
        }
        var percentiles: [(String, JSONValue)] = []
        for p in [50.0, 75, 90, 95, 99, 99.9, 99.99, 100] {
            percentiles.append((p == 100 ? "max" : JSONValue.format(p), Self.micros(latency, p).map(JSONValue.number) ?? .null))
        }
        return [
            ("mode", .string(o.mode.rawValue)),
            ("acknowledge", .string(o.acknowledge.rawValue)),
            ("msis", .int(msis)),
            ("msis_per_s", .number(perSecond)),
            ("seconds", .number(seconds)),
            ("p50_us", Self.micros(latency, 50).map(JSONValue.number) ?? .null),
            ("p99_us", Self.micros(latency, 99).map(JSONValue.number) ?? .null),
            ("p999_us", Self.micros(latency, 99.9).map(JSONValue.number) ?? .null),
            ("latency_us", .object(percentiles)),
            ("path_p50_us", pathP50.map(JSONValue.number) ?? .null),
            ("path_p99_us", Self.micros(pathLatency, 99).map(JSONValue.number) ?? .null),
            ("lost", .int(lost)),
            ("lpis_injected", .int(injectedLPIs)),
            ("acknowledged", .int(acknowledged)),
            ("acks_sent", .int(acksSent)),
            ("timeouts", .int(timeouts)),
            ("server_cpu_ns_per_msi", serverCPUNanoseconds.map { .number(Double($0) / Double(max(msis, 1))) } ?? .null),
            ("server_cpu_s", serverCPUNanoseconds.map { .number(Double($0) / 1e9) } ?? .null),
            ("client_cpu_ns_per_msi", .number(Double(clientCPUNanoseconds) / Double(max(msis, 1)))),
            ("floor_p50_us", floorP50.map(JSONValue.number) ?? .null),
            ("floor_msgs_per_s", .number(floor.messagesPerSecond)),
            ("ratio_to_floor_msgs", .number(floor.messagesPerSecond > 0 ? perSecond / floor.messagesPerSecond : 0)),
            ("ratio_path_p50_to_floor", (pathP50 != nil && floorP50 != nil && floorP50! > 0) ? .number(pathP50! / floorP50!) : .null),
            ("server_rss_bytes", serverRSS.map { .int(Int($0)) } ?? .null),
            ("server_rss_anon_bytes", serverRSSAnon.map { .int(Int($0)) } ?? .null),
            ("rss_anon_growth_bytes", growth),
            ("rss_growth_per_lpi_bytes", growthPerLPI),
            ("setup_s", .number(setupSeconds)),
            ("setup_commands", .int(setupCommands)),
            ("vcpus", .int(o.workload.vcpus)),
            ("devices", .int(o.workload.devices)),
            ("events", .int(o.workload.events)),
            ("lpis", .int(o.workload.lpiCount)),
            ("connections", .int(min(o.connections, o.workload.lpiCount))),
            ("consumers", .int(min(o.consumers, o.workload.vcpus))),
            ("lanes", o.lanes.map { .int($0) } ?? .null),
            ("batch", .int(o.mode == .batch ? o.batch : 1)),
            ("frame_bytes", .int(frameLength)),
        ]
    }

    var json: String { JSONValue.object(fields).rendered(.spaced) }

    var text: String {
        fields.map { name, value in "\(name): \(value.rendered(.spaced))" }.joined(separator: "\n")
    }
}


import Glibc
import ITSClient
import ITSWire

/// What `itsctl stats` shows of a sample, in every format: which statistics (--vm, --vcpu, -f, -z),
/// and the columns of the table and CSV views.
struct StatsSelection {
    var vcpuOnly: Bool
    var filter: Regex<AnyRegexOutput>?
    var skipZero: Bool

    /// The statistics of `sample` that the options select, in the server's order.
    func series(_ sample: StatsSample) -> [StatSeries] {
        sample.series.filter { entry in
            if vcpuOnly, entry.label("vcpu") == nil { return false }
            if let filter, (try? filter.firstMatch(in: entry.wireName)) == nil { return false }
            return true
        }
    }
}

/// One column of the table and CSV views.
struct StatColumn {
    enum Source {
        /// The sum of these counters' rates per second.
        case rate([String])
        /// A gauge's value.
        case gauge(String)
        /// Quantile of a histogram over the interval, in its unit.
        case quantile(Double, String)
        /// The main loop's busy share over the interval, in percent.
        case loopUtilisation
    }

    var header: String
    var source: Source

    /// The column's value for the interval from `previous` to `current`; nil when a statistic is missing.
    func value(_ current: StatsSample, _ previous: StatsSample) -> Double? {
        switch source {
        case .rate(let names):
            var total = 0.0
            for name in names {
                guard let rate = current.rate(name, since: previous) else { return nil }
                total += rate
            }
            return total
        case .gauge(let name):
            return current.gauge(name).map(Double.init)
        case .quantile(let q, let name):
            guard current[name] != nil else { return nil }
            return current.quantile(q, of: name, since: previous) ?? 0
        case .loopUtilisation:
            return current.loopUtilisation(since: previous).map { $0 * 100 }
        }
    }

    /// The cell as a person reads it.
    func cell(_ value: Double?) -> String {
        guard let value else { return "-" }
        switch source {
        case .quantile: return value == 0 ? "0" : Format.duration(value)
        case .loopUtilisation: return Format.fixed(value, 1)
        default: return Format.compact(value)
        }
    }

    /// The default columns: MSIs, LPIs, commands and latency, and for the whole server the VMs,
    /// connections and loop utilisation.
    static func defaults(serverWide: Bool) -> [StatColumn] {
        var columns = [
            StatColumn(header: "msi/s", source: .rate(["msis_inject_total", "msis_inject_batch_total", "msis_irqfd_total",
                                                       "msis_translater_total"])),
            StatColumn(header: "blk/s", source: .rate(["msis_blocked_total"])),
            StatColumn(header: "lpi/s", source: .rate(["lpis_delivered_total"])),
            StatColumn(header: "coal/s", source: .rate(["lpis_coalesced_total"])),
            StatColumn(header: "ack/s", source: .rate(["lpis_acknowledged_total"])),
            StatColumn(header: "drop/s", source: .rate(["lpis_dropped_total"])),
            StatColumn(header: "cmd/s", source: .rate(["its_commands_total"])),
            StatColumn(header: "cerr/s", source: .rate(["its_command_errors_total"])),
            StatColumn(header: "pend", source: .gauge("lpis_pending")),
            StatColumn(header: "lat99", source: .quantile(0.99, "inject_to_ack_latency_ns")),
        ]
        if serverWide {
            columns += [StatColumn(header: "vms", source: .gauge("vms")),
                        StatColumn(header: "conn", source: .gauge("connections")),
                        StatColumn(header: "loop%", source: .loopUtilisation)]
        }
        return columns
    }

    /// A column per selected counter or gauge (histograms appear in JSON and Prometheus only), named
    /// as the server names it, or without the vCPU number for per-vCPU rows.
    static func forSeries(_ series: [StatSeries], perVCPU: Bool) -> [StatColumn] {
        var seen = Set<String>()
        var columns: [StatColumn] = []
        for entry in series {
            let name = perVCPU ? entry.name : entry.wireName
            guard seen.insert(name).inserted else { continue }
            switch entry.descriptor.kind {
            case .counter:
                let short = name.hasSuffix("_total") ? String(name.dropLast(6)) : name
                let header = (perVCPU ? String(short.dropFirst(5)) : short) + "/s"
                columns.append(StatColumn(header: header, source: .rate([name])))
            case .gauge:
                columns.append(StatColumn(header: perVCPU ? String(name.dropFirst(5)) : name, source: .gauge(name)))
            case .histogram:
                continue
            }
        }
        return columns
    }
}

/// A row of a table or CSV view: a label (the vCPU for per-vCPU rows) and the column values.
struct StatRow {
    var vcpu: String?
    var values: [Double?]

    var isZero: Bool { values.allSatisfy { ($0 ?? 0) == 0 } }
}

extension StatsSample {
    /// This sample seen as one vCPU's: the `vcpu_<n>_` statistics under their names without the number,
    /// so that per-vCPU columns read them by `vcpu_<name>`.
    func vcpuView(_ vcpu: String, schemaFrom series: [StatSeries]) -> StatsSample {
        let chosen = series.filter { $0.label("vcpu") == vcpu }
        let renamed = chosen.map { entry -> StatDescriptor in
            var descriptor = entry.descriptor
            descriptor.name = entry.name
            return descriptor
        }
        return StatsSample(vm: vm, schema: renamed, values: chosen.map(\.value), time: time)
    }
}

/// Wall-clock time in seconds since the epoch, for timestamps in machine output.
func wallClockSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

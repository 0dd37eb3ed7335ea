import ITSClient
import ITSWire

/// Machine formats of a STATS sample: Prometheus text exposition 0.0.4 and JSON lines.
enum StatsExport {
    /// The version of the JSON object `json` writes; it changes when a field changes meaning or goes.
    static let jsonSchemaVersion = 1

    /// Prometheus text format 0.0.4: per family a HELP and a TYPE line, then its samples; names get
    /// the `itsd_` prefix, the vCPU, device or lane number becomes a label, and `vm` labels every
    /// sample of one VM's statistics. Histograms give cumulative `le` buckets, `_sum` and `_count`.
    static func prometheus(_ series: [StatSeries], vm: VMID?) -> String {
        var families: [String: [StatSeries]] = [:]
        var order: [String] = []
        for entry in series {
            if families[entry.name] == nil { order.append(entry.name) }
            families[entry.name, default: []].append(entry)
        }
        var text = ""
        for name in order {
            let members = families[name]!
            let family = "itsd_" + name
            let descriptor = members[0].descriptor
            text += "# HELP \(family) \(escapeHelp(familyHelp(members[0])))\n"
            let type = switch descriptor.kind {
            case .counter: "counter"
            case .gauge: "gauge"
            case .histogram: "histogram"
            }
            text += "# TYPE \(family) \(type)\n"
            for entry in members {
                var labels = entry.labels
                if let vm { labels.insert(StatLabel("vm", vm.description), at: 0) }
                switch entry.value {
                case .counter(let raw):
                    text += "\(family)\(render(labels)) \(raw)\n"
                case .gauge(let raw):
                    text += "\(family)\(render(labels)) \(raw)\n"
                case .histogram(let count, let sum, let buckets):
                    var cumulative: UInt64 = 0
                    for (index, bound) in entry.descriptor.bucketBounds.enumerated() where index < buckets.count {
                        cumulative += buckets[index]
                        text += "\(family)_bucket\(render(labels + [StatLabel("le", String(bound))])) \(cumulative)\n"
                    }
                    text += "\(family)_bucket\(render(labels + [StatLabel("le", "+Inf")])) \(count)\n"
                    text += "\(family)_sum\(render(labels)) \(sum)\n"
                    text += "\(family)_count\(render(labels)) \(count)\n"
                }
            }
        }
        return text
    }

    /// A family's help: its first member's, with the number that became a label written as the
    /// label's name ("LPIs pending at vCPU 0" becomes "LPIs pending at vCPU {vcpu}").
    static func familyHelp(_ entry: StatSeries) -> String {
        var words = entry.descriptor.help.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        for label in entry.labels {
            for index in words.indices.dropFirst() where words[index] == label.value
                && words[index - 1].lowercased().contains(label.key) {
                words[index] = "{\(label.key)}"
            }
        }
        return words.joined(separator: " ")
    }

    static func render(_ labels: [StatLabel]) -> String {
        guard !labels.isEmpty else { return "" }
        return "{" + labels.map { "\($0.key)=\"\(escapeLabel($0.value))\"" }.joined(separator: ",") + "}"
    }

    /// HELP text escapes: backslash and line feed.
    static func escapeHelp(_ text: String) -> String {
        text.replacing("\\", with: "\\\\").replacing("\n", with: "\\n")
    }

    /// Label value escapes: backslash, double quote and line feed.
    static func escapeLabel(_ text: String) -> String {
        escapeHelp(text).replacing("\"", with: "\\\"")
    }

    /// One sample as one line of JSON: when, which VM, the main loop's utilisation over the interval
    /// (whole server only) and each selected statistic with its labels, kind, unit, value and, for a
    /// counter, its rate per second over the interval.
    static func json(_ series: [StatSeries], current: StatsSample, previous: StatsSample, vm: VMID?, interval: Double)
        -> String
    {
        var object = JSONObject()
        object.add("schema_version", jsonSchemaVersion)
        object.add("time", wallClockSeconds())
        object.add("interval_s", interval)
        if let vm { object.add("vm", vm.rawValue) } else { object.addNull("vm") }
        if vm == nil {
            if let loop = current.loopUtilisation(since: previous) { object.add("loop_utilisation", loop) } else {
                object.addNull("loop_utilisation")
            }
        }
        var entries: [String] = []
        for entry in series {
            var item = JSONObject()
            item.add("name", entry.name)
            var labels = JSONObject()
            for label in entry.labels { labels.add(label.key, label.value) }
            item.add("labels", raw: labels.text)
            item.add("kind", kindName(entry.descriptor.kind))
            item.add("unit", unitName(entry.descriptor.unit))
            switch entry.value {
            case .counter(let raw):
                item.add("value", raw)
                if let rate = current.rate(entry.wireName, since: previous) { item.add("rate", rate) } else { item.addNull("rate") }
            case .gauge(let raw):
                item.add("value", raw)
            case .histogram(let count, let sum, let buckets):
                item.add("count", count)
                item.add("sum", sum)
                var cumulative: UInt64 = 0
                var rendered: [String] = []
                for (index, bound) in entry.descriptor.bucketBounds.enumerated() where index < buckets.count {
                    cumulative += buckets[index]
                    var bucket = JSONObject()
                    bucket.add("le", bound)
                    bucket.add("count", cumulative)
                    rendered.append(bucket.text)
                }
                var overflow = JSONObject()
                overflow.add("le", "+Inf")
                overflow.add("count", count)
                rendered.append(overflow.text)
                item.add("buckets", raw: JSONObject.array(rendered))
                if let p99 = current.quantile(0.99, of: entry.wireName, since: previous), p99.isFinite {
                    item.add("p99_interval", p99)
                } else {
                    item.addNull("p99_interval")
                }
            }
            entries.append(item.text)
        }
        object.add("stats", raw: JSONObject.array(entries))
        return object.text
    }

    static func kindName(_ kind: StatKind) -> String {
        switch kind {
        case .counter: "counter"
        case .gauge: "gauge"
        case .histogram: "histogram"
        }
    }

    static func unitName(_ unit: StatUnit) -> String {
        switch unit {
        case .none: "none"
        case .bytes: "bytes"
        case .nanoseconds: "nanoseconds"
        case .boolean: "boolean"
        }
    }

    /// Whether a statistic is zero: a counter or gauge at 0, a histogram without values.
    static func isZero(_ entry: StatSeries) -> Bool {
        switch entry.value {
        case .counter(let raw): raw == 0
        case .gauge(let raw): raw == 0
        case .histogram(let count, _, _): count == 0
        }
    }
}

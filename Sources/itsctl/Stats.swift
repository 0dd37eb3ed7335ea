import ArgumentParser
import Glibc
import ITSClient
import ITSWire

/// `itsctl stats [INTERVAL [COUNT]]`: vmstat-style rows of rates and gauges, or JSON lines, CSV, or
/// one Prometheus exposition.
struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print itsd's statistics: vmstat-style rows, JSON lines, CSV or Prometheus text.",
        discussion: """
        Takes a sample, waits INTERVAL seconds (default 1), and prints the rates per second over the interval \
        and the gauges: COUNT rows (default: until interrupted; --once: one). Without --vm the statistics are \
        the whole server's (each VM statistic summed over the VMs); with --vm ID they are one VM's, which adds \
        one group per vCPU and per device. On a terminal the header repeats every 20 rows.

        Columns of the default view: msi/s MSIs received (INJECT, INJECT_BATCH, eventfds, GITS_TRANSLATER); \
        blk/s MSIs that raised nothing; lpi/s LPIs made pending; coal/s signals merged into a pending LPI; \
        ack/s LPIs acknowledged; drop/s LPIs dropped (EnableLPIs 0); cmd/s ITS commands; cerr/s commands \
        skipped with an error; pend LPIs pending; lat99 the 99th percentile of inject-to-acknowledge latency \
        over the interval (bucket bound); vms, conn and loop% (main-loop utilisation) for the whole server.

        --prometheus prints the current values once, in text exposition format 0.0.4 (for node_exporter's \
        textfile collector): names prefixed itsd_, counters ending in _total, the vCPU, device or lane number \
        as a label, histograms with le buckets.
        """)

    enum OutputFormat: String, EnumerableFlag {
        case table, json, csv, prometheus

        static func help(for value: OutputFormat) -> ArgumentHelp? {
            switch value {
            case .table: "vmstat-style rows (the default)."
            case .json: "One JSON object per sample, one per line, with schema_version."
            case .csv: "The table's columns as CSV, a Unix timestamp first."
            case .prometheus: "The current values once, in Prometheus text format 0.0.4."
            }
        }
    }

    @OptionGroup var options: SocketOptions

    @Argument(help: "Seconds between samples (default 1).")
    var interval: Double?

    @Argument(help: "Rows (samples) to print, then exit (default: until interrupted).")
    var count: Int?

    @Flag(name: .long, help: "One sample over INTERVAL, then exit (as COUNT 1).")
    var once = false

    @Flag var format: OutputFormat = .table

    @Option(name: .long, help: "One VM's statistics, with its vCPUs and devices.")
    var vm: String?

    @Flag(name: .long, help: "Per-vCPU statistics only: in the table, one row per vCPU (needs --vm).")
    var vcpu = false

    @Option(name: .customShort("f"), help: ArgumentHelp(
        "Only statistics whose server name (such as vcpu_3_lpis_pending) matches this regular expression; in the "
            + "table, one column per match.", valueName: "regex"))
    var filter: String?

    @Flag(name: .customShort("z"), help: "Skip rows (and statistics) that are all zero.")
    var skipZero = false

    func validate() throws {
        if let interval, !(interval > 0 && interval <= 86400) { throw ValidationError("INTERVAL must be a number of seconds above 0") }
        if let count, count < 1 { throw ValidationError("COUNT must be at least 1") }
        if let vm { _ = try parseVM(vm) }
        if vcpu, vm == nil { throw ValidationError("--vcpu needs --vm ID: per-vCPU statistics belong to one VM") }
        if let filter {
            do { _ = try Regex(filter) } catch { throw ValidationError("-f: '\(filter)' is not a regular expression: \(error)") }
        }
    }

    func run() throws {
        let target = try vm.map(parseVM)
        let selection = StatsSelection(vcpuOnly: vcpu, filter: try filter.map { try Regex($0) }, skipZero: skipZero)
        let connection = try options.connect()
        let read = { () throws in
            try options.attempt(vm: target) { () throws(ITSClientError) in try connection.stats(target ?? .all) }
        }
        var previous = try read()
        if format == .prometheus {
            var series = selection.series(previous)
            if skipZero { series.removeAll(where: StatsExport.isZero) }
            Terminal.write(StatsExport.prometheus(series, vm: target))
            return
        }
        let seconds = interval ?? 1
        let rows = once ? 1 : count
        let terminal = Terminal.outputIsTerminal
        let bold = Terminal.colour(1)
        var columns: [StatColumn]?
        var printed = 0
        var sinceHeader = 0
        var samples = 0
        while rows.map({ samples < $0 }) ?? true {
            sleep(seconds: seconds)
            let current = try read()
            samples += 1
            defer { previous = current }
            let series = selection.series(current)
            if format == .json {
                var chosen = series
                if skipZero { chosen.removeAll { StatsExport.isZero($0) && (current.rate($0.wireName, since: previous) ?? 0) == 0 } }
                Terminal.write(StatsExport.json(chosen, current: current, previous: previous, vm: target, interval: seconds) + "\n")
                continue
            }
            if columns == nil {
                columns = vcpu || filter != nil
                    ? StatColumn.forSeries(series, perVCPU: vcpu)
                    : StatColumn.defaults(serverWide: target == nil)
            }
            let table = makeRows(current: current, previous: previous, series: series, columns: columns!)
            let headers = (vcpu ? ["vcpu"] : []) + columns!.map(\.header)
            if format == .csv {
                if printed == 0 { Terminal.write((["time"] + headers).joined(separator: ",") + "\n") }
                let time = Format.fixed(wallClockSeconds(), 3)
                for row in table {
                    let cells = (row.vcpu.map { [$0] } ?? []) + row.values.map { $0.map(Format.plain) ?? "" }
                    Terminal.write(([time] + cells).joined(separator: ",") + "\n")
                }
                printed += 1
                continue
            }
            let widths = zip(headers, (vcpu ? [4] : []) + columns!.map { _ in 6 }).map { max($0.count, $1) }
            for row in table {
                if printed == 0 || (terminal && sinceHeader == 20) {
                    let line = TextTable.line(headers, widths: widths)
                    Terminal.write((bold ? "\u{1B}[1m" + line + "\u{1B}[0m" : line) + "\n")
                    sinceHeader = 0
                }
                let cells = (row.vcpu.map { [$0] } ?? []) + zip(columns!, row.values).map { $0.cell($1) }
                Terminal.write(TextTable.line(cells, widths: widths) + "\n")
                printed += 1
                sinceHeader += 1
            }
        }
    }

    /// The rows of one interval: one for the server or VM, or one per vCPU; -z drops all-zero rows.
    private func makeRows(current: StatsSample, previous: StatsSample, series: [StatSeries], columns: [StatColumn]) -> [StatRow] {
        var rows: [StatRow] = []
        if vcpu {
            var vcpus: [String] = []
            for entry in series { if let n = entry.label("vcpu"), !vcpus.contains(n) { vcpus.append(n) } }
            let earlier = selectionSeries(previous)
            for n in vcpus {
                let now = current.vcpuView(n, schemaFrom: series)
                let then = previous.vcpuView(n, schemaFrom: earlier)
                rows.append(StatRow(vcpu: n, values: columns.map { $0.value(now, then) }))
            }
        } else {
            rows.append(StatRow(vcpu: nil, values: columns.map { $0.value(current, previous) }))
        }
        return skipZero ? rows.filter { !$0.isZero } : rows
    }

    private func selectionSeries(_ sample: StatsSample) -> [StatSeries] {
        sample.series.filter { $0.label("vcpu") != nil }
    }
}

/// Sleeps for `seconds`, resuming after signals that do not end the process.
func sleep(seconds: Double) {
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0, errno == EINTR { request = remaining }
}

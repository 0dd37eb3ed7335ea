import ArgumentParser
import Glibc
import ITSClient
import ITSWire

/// `itsctl top`: a live full-screen view of itsd, redrawn in place.
struct Top: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A live view of itsd: totals, then VMs, vCPUs and devices sorted by rate.",
        discussion: """
        On a terminal: a full screen redrawn every DELAY seconds with ANSI escape sequences (the alternate \
        screen, no curses); q or Ctrl-C quits and puts the terminal back; a resize redraws at the new size. \
        The header gives uptime, VMs, connections, main-loop utilisation and the server's MSI, LPI and \
        acknowledge rates; then the VMs by MSI rate, their vCPUs by LPI rate and their devices by MSI rate. \
        When standard output is not a terminal, prints plain snapshots, one every DELAY seconds, separated by \
        a blank line.
        """)

    @OptionGroup var options: SocketOptions

    @Option(name: [.customShort("d"), .long], help: "Seconds between refreshes.")
    var delay: Double = 1

    @Option(name: [.customShort("n"), .long], help: "Refreshes to show, then exit (default: until q).")
    var iterations: Int?

    func validate() throws {
        guard delay >= 0.1, delay <= 3600 else { throw ValidationError("--delay must be 0.1 to 3600 seconds") }
        if let iterations, iterations < 1 { throw ValidationError("--iterations must be at least 1") }
    }

    func run() throws {
        let connection = try options.connect()
        var model = TopModel(socket: options.socket)
        let refresh = { () throws in
            try options.attempt { () throws(ITSClientError) in try model.refresh(connection) }
        }
        try refresh()
        guard Terminal.outputIsTerminal else {
            var shown = 0
            while iterations.map({ shown < $0 }) ?? true {
                sleep(seconds: delay)
                try refresh()
                Terminal.write((shown > 0 ? "\n" : "") + model.render(rows: 10_000, columns: 10_000, colour: false, spacing: false)
                    .joined(separator: "\n") + "\n")
                shown += 1
            }
            return
        }
        let screen: FullScreen
        do { screen = try FullScreen() } catch {
            Terminal.printError("cannot set up the terminal: \(error)")
            throw ExitCode(Exit.ioError)
        }
        defer { screen.restore() }
        let colour = Terminal.colour(1)
        var shown = 0
        var next = ITSConnection.monotonicNanoseconds()
        while true {
            let size = FullScreen.size()
            screen.draw(model.render(rows: size.rows, columns: size.columns, colour: colour))
            if let iterations, shown >= iterations { return }
            next += UInt64(delay * 1e9)
            var redrawOnly = false
            while true {
                let now = ITSConnection.monotonicNanoseconds()
                let left = now >= next ? 0 : Int32(min(Double(next - now) / 1e6, 3_600_000))
                switch screen.wait(milliseconds: left) {
                case .quit: return
                case .resize: redrawOnly = true
                case .timeout: break
                case .other: continue
                }
                break
            }
            if redrawOnly {
                next -= UInt64(delay * 1e9)
                continue
            }
            do throws(ITSClientError) {
                try model.refresh(connection)
            } catch {
                // Back on the normal screen first, so that the message stays visible.
                screen.restore()
                let failure = Failure(error, socket: options.socket, vm: nil)
                Terminal.printError(failure.message)
                throw ExitCode(failure.code)
            }
            shown += 1
        }
    }
}

/// What `top` shows, from the samples of the last two refreshes.
struct TopModel {
    let socket: String
    var server: (current: StatsSample, previous: StatsSample?)?
    var vms: [VMInfo] = []
    var perVM: [VMID: (current: StatsSample, previous: StatsSample?)] = [:]

    init(socket: String) { self.socket = socket }

    /// Reads the whole server's STATS, LIST_VMS and each VM's STATS (at most 256 VMs).
    mutating func refresh(_ connection: ITSConnection) throws(ITSClientError) {
        let whole = try connection.stats(.all)
        server = (whole, server?.current)
        vms = Array(try connection.listVMs().prefix(256))
        var next: [VMID: (StatsSample, StatsSample?)] = [:]
        for info in vms {
            do throws(ITSClientError) {
                let sample = try connection.stats(info.vm)
                next[info.vm] = (sample, perVM[info.vm]?.current)
            } catch {
                // A VM destroyed between LIST_VMS and STATS drops out of this frame.
                guard error.status == .noSuchVM else { throw error }
            }
        }
        perVM = next
        vms.removeAll { next[$0.vm] == nil }
    }

    /// A counter's rate between the two samples, or nil before the second refresh.
    static func rate(_ pair: (current: StatsSample, previous: StatsSample?), _ names: [String]) -> Double? {
        guard let previous = pair.previous else { return nil }
        var total = 0.0
        for name in names {
            guard let rate = pair.current.rate(name, since: previous) else { return nil }
            total += rate
        }
        return total
    }

    static let msiNames = ["msis_inject_total", "msis_inject_batch_total", "msis_irqfd_total", "msis_translater_total"]

    /// The screen as lines, cut to `rows` lines of at most `columns` characters; `spacing` puts a
    /// blank line between the parts (plain snapshots leave it out: a blank line separates snapshots).
    func render(rows: Int, columns: Int, colour: Bool, spacing: Bool = true) -> [String] {
        guard let server else { return ["itsd top: no sample yet"] }
        func rate(_ value: Double?) -> String { value.map(Format.compact) ?? "-" }
        let bold = colour ? "\u{1B}[1m" : ""
        let reverse = colour ? "\u{1B}[7m" : ""
        let plain = colour ? "\u{1B}[0m" : ""
        let uptime = (server.current.gauge("uptime_ns") ?? 0) / 1_000_000_000
        let clock = "\(uptime / 3600):" + pad2(uptime / 60 % 60) + ":" + pad2(uptime % 60)
        var lines: [String] = []
        let loop = server.previous.flatMap { server.current.loopUtilisation(since: $0) }.map { Format.fixed($0 * 100, 1) + "%" } ?? "-"
        let latency = server.previous.flatMap { server.current.quantile(0.99, of: "inject_to_ack_latency_ns", since: $0) }
        lines.append("\(bold)itsd top\(plain) \(socket)  up \(clock)  VMs \(server.current.gauge("vms") ?? 0)  "
            + "connections \(server.current.gauge("connections") ?? 0)  loop \(loop)  (q quits)")
        lines.append("MSIs \(rate(Self.rate(server, Self.msiNames)))/s  LPIs \(rate(Self.rate(server, ["lpis_delivered_total"])))/s  "
            + "acks \(rate(Self.rate(server, ["lpis_acknowledged_total"])))/s  blocked \(rate(Self.rate(server, ["msis_blocked_total"])))/s  "
            + "pending \(server.current.gauge("lpis_pending") ?? 0)  lat99 \(latency.map(Format.duration) ?? "-")")
        if spacing { lines.append("") }

        var vmTable = TextTable(["VM", "VCPUS", "STATE", "CONNS", "MSI/s", "LPI/s", "ACK/s", "BLK/s", "CMD/s", "PEND"])
        var vmRates: [(Double, [String])] = []
        var vcpuRows: [(Double, [String])] = []
        var deviceRows: [(Double, [String])] = []
        for info in vms {
            guard let pair = perVM[info.vm] else { continue }
            let msi = Self.rate(pair, Self.msiNames)
            vmRates.append((msi ?? 0, [String(info.vm.rawValue), String(info.config.vcpuCount),
                                       info.state == .attached ? "attached" : "orphaned", String(info.connections), rate(msi),
                                       rate(Self.rate(pair, ["lpis_delivered_total"])), rate(Self.rate(pair, ["lpis_acknowledged_total"])),
                                       rate(Self.rate(pair, ["msis_blocked_total"])), rate(Self.rate(pair, ["its_commands_total"])),
                                       String(pair.current.gauge("lpis_pending") ?? 0)]))
            for entry in pair.current.series where entry.name == "vcpu_lpis_delivered_total" {
                guard let n = entry.label("vcpu") else { continue }
                let lpi = Self.rate(pair, ["vcpu_\(n)_lpis_delivered_total"])
                vcpuRows.append((lpi ?? 0, [String(info.vm.rawValue), n, rate(lpi),
                                            rate(Self.rate(pair, ["vcpu_\(n)_lpis_coalesced_total"])),
                                            rate(Self.rate(pair, ["vcpu_\(n)_lpis_acknowledged_total"])),
                                            rate(Self.rate(pair, ["vcpu_\(n)_lpis_dropped_total"])),
                                            String(pair.current.gauge("vcpu_\(n)_lpis_pending") ?? 0)]))
            }
            for entry in pair.current.series where entry.name == "device_msis_injected_total" {
                guard let d = entry.label("device") else { continue }
                let injected = Self.rate(pair, ["device_\(d)_msis_injected_total"])
                deviceRows.append((injected ?? 0, [String(info.vm.rawValue), d, rate(injected),
                                                   rate(Self.rate(pair, ["device_\(d)_msis_blocked_total"]))]))
            }
        }
        // Sorted by rate, highest first; equal rates keep the server's order.
        func sorted(_ rows: [(Double, [String])]) -> [[String]] {
            rows.enumerated().sorted { ($0.element.0, -$0.offset) > ($1.element.0, -$1.offset) }.map(\.element.1)
        }
        for row in sorted(vmRates) { vmTable.add(row) }
        var vcpuTable = TextTable(["VM", "VCPU", "LPI/s", "COAL/s", "ACK/s", "DROP/s", "PEND"])
        for row in sorted(vcpuRows) { vcpuTable.add(row) }
        var deviceTable = TextTable(["VM", "DEVICE", "MSI/s", "BLK/s"])
        for row in sorted(deviceRows) { deviceTable.add(row) }

        // Each table gets a share of the rows left; a table that needs fewer leaves the rest to the next.
        let tables = [vmTable, vcpuTable, deviceTable]
        var left = max(0, rows - lines.count - 1)
        for (index, table) in tables.enumerated() {
            guard left >= 2 else { break }
            let widths = table.widths
            lines.append(reverse + TextTable.line(table.header, widths: widths) + plain)
            left -= 1
            let later = tables.count - index - 1
            let share = later == 0 ? left : max(1, min(table.rows.count, left - 3 * later))
            let shown = min(table.rows.count, share)
            for row in table.rows.prefix(shown) { lines.append(TextTable.line(row, widths: widths)) }
            left -= shown
            if table.rows.count > shown, left > 0 {
                lines.append("  … \(table.rows.count - shown) more")
                left -= 1
            }
            if spacing, left > 0, index < tables.count - 1 {
                lines.append("")
                left -= 1
            }
        }
        return lines.prefix(rows).map { Self.cut($0, columns) }
    }

    private func pad2(_ value: Int64) -> String { value < 10 ? "0\(value)" : String(value) }

    /// `line` cut to `columns` visible characters; escape sequences take no room.
    static func cut(_ line: String, _ columns: Int) -> String {
        var visible = 0
        var result = ""
        var inEscape = false
        for character in line {
            if character == "\u{1B}" { inEscape = true }
            if inEscape {
                result.append(character)
                if character.isLetter { inEscape = false }
                continue
            }
            guard visible < columns else { continue }
            result.append(character)
            visible += 1
        }
        return result
    }
}

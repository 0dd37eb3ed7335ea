import Glibc
import ITSClient
import ITSWire
import Testing

/// `itsctl stats` in each format against a live itsd with MSI traffic.
@Suite(.serialized) struct ItsctlStatsTests {
    @Test func jsonLinesCarryRatesLabelsAndTheHistogram() throws {
        let server = try #require(LiveServer())
        let traffic = try TrafficVM(socket: server.socketPath)
        let id = traffic.vm.id
        let child = try #require(startItsctl(["stats", "0.3", "3", "--json", "--vm", "\(id)", "--socket", server.socketPath]))
        let result = try traffic.drive(child)
        #expect(result.status == 0, "\(result.errors)")
        let lines = result.output.split(separator: "\n")
        #expect(lines.count == 3)
        var sawRate = false
        for line in lines {
            let sample = try #require(JSONValue.parse(String(line)), "not JSON: \(line)")
            #expect(sample["schema_version"]?.number == 1)
            #expect(sample["vm"]?.number == Double(id.rawValue))
            #expect(sample["interval_s"]?.number == 0.3)
            let stats = try #require(sample["stats"]?.array)
            let injected = try #require(stats.first { $0["name"]?.string == "msis_injected_total" })
            #expect(injected["kind"]?.string == "counter")
            #expect((injected["value"]?.number ?? 0) > 0)
            if (injected["rate"]?.number ?? 0) > 0 { sawRate = true }
            let delivered = stats.filter { $0["name"]?.string == "vcpu_lpis_delivered_total" }
            #expect(delivered.compactMap { $0["labels"]?["vcpu"]?.string }.sorted() == ["0", "1"])
            let devices = stats.filter { $0["name"]?.string == "device_msis_injected_total" }
            #expect(devices.compactMap { $0["labels"]?["device"]?.string }.sorted() == ["7", "9"])
            let latency = try #require(stats.first { $0["name"]?.string == "inject_to_ack_latency_ns" })
            #expect(latency["kind"]?.string == "histogram")
            #expect(latency["unit"]?.string == "nanoseconds")
            let buckets = try #require(latency["buckets"]?.array)
            #expect(buckets.last?["le"]?.string == "+Inf")
            #expect(buckets.last?["count"]?.number == latency["count"]?.number)
            let counts = buckets.compactMap { $0["count"]?.number }
            #expect(counts == counts.sorted(), "cumulative buckets")
        }
        #expect(sawRate, "MSIs flowed during the samples")
    }

    @Test func prometheusOutputParsesWithTheReferenceParser() throws {
        guard let python = prometheusPython() else {
            try Test.cancel("no python3 with prometheus_client (make test-deps installs Debian's python3-prometheus-client)")
        }
        let server = try #require(LiveServer())
        let traffic = try TrafficVM(socket: server.socketPath)
        for _ in 0 ..< 5 { try traffic.burst() }
        let expected = try traffic.vm.stats()
        let result = itsctl(["stats", "--prometheus", "--vm", "\(traffic.vm.id)", "--socket", server.socketPath])
        #expect(result.status == 0, "\(result.errors)")
        let parsed = try #require(parsePrometheus(result.output, python: python), "the parser rejected:\n\(result.output)")
        let vm = "\(traffic.vm.id)"
        #expect(parsed["itsd_msis_injected"]?["type"]?.string == "counter")
        let injected = parsed["itsd_msis_injected"]?["samples"]?.array ?? []
        #expect(injected.count == 1)
        #expect(injected.first?[0]?.string == "itsd_msis_injected_total")
        #expect(injected.first?[1]?["vm"]?.string == vm)
        #expect(injected.first?[2]?.number == Double(expected.counter("msis_injected_total") ?? 0))
        #expect(parsed["itsd_lpis_pending"]?["type"]?.string == "gauge")
        #expect(result.output.contains("# HELP itsd_vcpu_lpis_pending LPIs pending at vCPU {vcpu}\n"), "a family's help names the label")
        let perVCPU = parsed["itsd_vcpu_lpis_acknowledged"]?["samples"]?.array ?? []
        #expect(perVCPU.compactMap { $0[1]?["vcpu"]?.string }.sorted() == ["0", "1"])
        for sample in perVCPU {
            let n = sample[1]?["vcpu"]?.string ?? "?"
            #expect(sample[2]?.number == Double(expected.counter("vcpu_\(n)_lpis_acknowledged_total") ?? 1))
        }
        let latency = try #require(parsed["itsd_inject_to_ack_latency_ns"])
        #expect(latency["type"]?.string == "histogram")
        let samples = latency["samples"]?.array ?? []
        let infinity = samples.first { $0[0]?.string == "itsd_inject_to_ack_latency_ns_bucket" && $0[1]?["le"]?.string == "+Inf" }
        let count = samples.first { $0[0]?.string == "itsd_inject_to_ack_latency_ns_count" }
        #expect(infinity?[2]?.number != nil && infinity?[2]?.number == count?[2]?.number)
        #expect((count?[2]?.number ?? 0) > 0, "acknowledged LPIs were timed")
        #expect(samples.filter { $0[0]?.string == "itsd_inject_to_ack_latency_ns_bucket" }.count >= 5)
        // The whole server parses too, and every counter family ends in _total.
        let whole = itsctl(["stats", "--prometheus", "--socket", server.socketPath])
        #expect(whole.status == 0)
        let families = try #require(parsePrometheus(whole.output, python: python))
        #expect(families["itsd_connections"]?["type"]?.string == "gauge")
        #expect(families["itsd_lane_idle_ns"]?["samples"]?.array?.compactMap { $0[1]?["lane"]?.string }.sorted() == ["0", "1"])
        for line in whole.output.split(separator: "\n") where line.hasPrefix("# TYPE ") && line.hasSuffix(" counter") {
            #expect(line.dropLast(8).hasSuffix("_total"), "\(line)")
        }
    }

    @Test func tableCsvFilterAndPerVCPURows() throws {
        let server = try #require(LiveServer())
        let traffic = try TrafficVM(socket: server.socketPath)
        let id = "\(traffic.vm.id)"
        let table = try traffic.drive(try #require(startItsctl(["stats", "0.2", "3", "--socket", server.socketPath])))
        #expect(table.status == 0, "\(table.errors)")
        let rows = table.output.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(rows.count == 4, "one header (not a terminal), three rows: \(table.output)")
        #expect(rows.first == ["msi/s", "blk/s", "lpi/s", "coal/s", "ack/s", "drop/s", "cmd/s", "cerr/s", "pend", "lat99",
                               "vms", "conn", "loop%"])
        #expect(rows.dropFirst().allSatisfy { $0.count == 13 || $0.count == 14 }, "every column filled: \(rows)")
        #expect(rows.dropFirst().contains { $0[0] != "0" }, "MSIs per second: \(rows)")

        let csv = try traffic.drive(try #require(startItsctl(["stats", "0.2", "2", "--csv", "--vm", id, "--socket", server.socketPath])))
        #expect(csv.status == 0)
        let records = csv.output.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        #expect(records.count == 3)
        #expect(records.first?.first == "time")
        #expect(records.first?.count == 11, "time and the ten VM columns: \(records.first ?? [])")
        #expect(records.dropFirst().allSatisfy { $0.count == 11 && Double($0[0]) != nil && Double($0[1]) != nil })

        let filtered = itsctl(["stats", "0.1", "--once", "--vm", id, "-f", "^msis_(injected|blocked)_total$", "--socket", server.socketPath])
        #expect(filtered.status == 0)
        #expect(filtered.output.split(separator: "\n").first?.split(separator: " ").map(String.init) == ["msis_injected/s", "msis_blocked/s"])

        let perVCPU = try traffic.drive(try #require(startItsctl(["stats", "0.2", "1", "--vcpu", "--vm", id, "--socket", server.socketPath])))
        let lines = perVCPU.output.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(lines.first?.first == "vcpu")
        #expect(lines.first?.contains("lpis_delivered/s") == true && lines.first?.contains("lpis_pending") == true, "\(lines)")
        #expect(lines.dropFirst().map { $0.first } == ["0", "1"])

        // -z drops all-zero rows: with no traffic, the error-count column alone never prints a row.
        let quiet = itsctl(["stats", "0.1", "2", "-z", "-f", "its_command_errors_total", "--vm", id, "--socket", server.socketPath])
        #expect(quiet.status == 0)
        #expect(quiet.output.isEmpty, "\(quiet.output)")
    }

    @Test func badOptionsAndAnUnknownVM() throws {
        let server = try #require(LiveServer())
        let unknown = itsctl(["stats", "--once", "--vm", "77", "--socket", server.socketPath])
        #expect(unknown.status == 67)
        #expect(unknown.errors.contains("itsctl: no VM 77 on \(server.socketPath) (`itsctl vm list` shows the VMs)"), "\(unknown.errors)")
        #expect(itsctl(["stats", "--vcpu", "--socket", server.socketPath]).status == 64)
        #expect(itsctl(["stats", "-f", "(", "--socket", server.socketPath]).status == 64)
        #expect(itsctl(["stats", "0", "--socket", server.socketPath]).status == 64)
        #expect(itsctl(["stats", "--json", "--csv", "--socket", server.socketPath]).status == 64)
    }
}

/// A python3 that can import prometheus_client (Debian's python3-prometheus-client; `make test-deps`
/// installs it), or nil.
func prometheusPython() -> String? {
    for candidate in ["/usr/bin/python3", "python3"] {
        guard let path = findExecutable(candidate) else { continue }
        let probe = ChildProcess(path, ["-c", "import prometheus_client"])
        if probe?.wait(seconds: 30) == 0 { return path }
    }
    return nil
}

/// Parses Prometheus text with prometheus_client's parser and returns {family: {type, samples:
/// [[name, labels, value]]}}, or nil when the parser raises.
func parsePrometheus(_ text: String, python: String) -> JSONValue? {
    let input = temporaryPath("metrics.prom")
    guard let file = fopen(input, "w") else { return nil }
    fputs(text, file)
    fclose(file)
    defer { unlink(input) }
    let script = """
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        out = {}
        for family in text_string_to_metric_families(open(sys.argv[1]).read()):
            out[family.name] = {"type": family.type, "samples": [[s.name, s.labels, s.value] for s in family.samples]}
        print(json.dumps(out))
        """
    guard let child = ChildProcess(python, ["-c", script, input]), child.wait(seconds: 60) == 0 else { return nil }
    return JSONValue.parse(child.output)
}

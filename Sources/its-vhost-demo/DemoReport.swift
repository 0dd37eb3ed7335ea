import ToolSupport

/// One phase's outcome: whether it passed and the figures that decided it.
struct PhaseResult {
    var name: String
    var passed: Bool
    /// Figures in the order they are printed.
    var figures: [(String, Int)]
    /// Why the phase failed, empty when it passed.
    var failure: String = ""
}

/// What the demo prints: a summary for people or one JSON object for programs.
struct DemoReport {
    var mode: String
    var requests: Int
    var completions: Int
    var reads: Int
    var writes: Int
    var lost: Int
    /// Requests the back-end put in the used ring that no interrupt ever returned.
    var unsignalled: Int
    var interrupts: Int
    var interruptsWithoutCompletion: Int
    /// LPIs taken with ACK (itsd mode only).
    var lpisAcked: Int?
    var p50: Double
    var p99: Double
    var backendStarts: Int
    var phases: [PhaseResult]
    /// From the start of the demo to the back-end's stop.
    var elapsedMilliseconds = 0

    init(mode: String, workload: Workload, device: BlockDevice, phases: [PhaseResult], lpisAcked: Int?) {
        self.mode = mode
        requests = workload.requests
        completions = workload.completions
        reads = workload.reads
        writes = workload.writes
        lost = workload.lost
        unsignalled = device.ring.unseenUsedCount
        interrupts = workload.interrupts
        interruptsWithoutCompletion = workload.interruptsWithoutCompletion
        self.lpisAcked = lpisAcked
        p50 = workload.percentileMicroseconds(50)
        p99 = workload.percentileMicroseconds(99)
        backendStarts = device.daemon.starts
        self.phases = phases
    }

    var passed: Bool { lost == 0 && completions == requests && phases.allSatisfy(\.passed) }

    var json: String {
        var fields: [(String, JSONValue)] = [
            ("mode", .string(mode)),
            ("requests", .int(requests)),
            ("completions", .int(completions)),
            ("reads", .int(reads)),
            ("writes", .int(writes)),
            ("lost", .int(lost)),
            ("unsignalled", .int(unsignalled)),
            ("interrupts", .int(interrupts)),
            ("interrupts_without_completion", .int(interruptsWithoutCompletion)),
        ]
        if let lpisAcked { fields.append(("lpis_acked", .int(lpisAcked))) }
        fields += [
            ("p50_us", .decimal(p50, places: 1)),
            ("p99_us", .decimal(p99, places: 1)),
            ("backend_starts", .int(backendStarts)),
            ("elapsed_ms", .int(elapsedMilliseconds)),
        ]
        let phaseFields = phases.map { phase -> (String, JSONValue) in
            var inner: [(String, JSONValue)] = [("passed", .bool(phase.passed))] + phase.figures.map { ($0.0, .int($0.1)) }
            if !phase.failure.isEmpty { inner.append(("failure", .string(phase.failure))) }
            return (phase.name, .object(inner))
        }
        fields.append(("phases", .object(phaseFields)))
        fields.append(("passed", .bool(passed)))
        return JSONValue.object(fields).rendered(.compact)
    }

    var summary: String {
        var lines = [
            "its-vhost-demo (\(mode)): \(requests) requests (\(reads) reads, \(writes) writes), \(completions) completed, \(lost) lost",
            "  interrupts taken: \(interrupts) (\(interruptsWithoutCompletion) found the used ring empty)"
                + (lpisAcked.map { ", LPIs acknowledged: \($0)" } ?? ""),
            "  submit -> interrupt taken: p50 \(JSONValue.format(p50, places: 1)) µs, p99 \(JSONValue.format(p99, places: 1)) µs",
            "  qemu-storage-daemon started \(backendStarts) time(s); completed but never signalled: \(unsignalled); \(elapsedMilliseconds) ms in all",
        ]
        for phase in phases {
            let figures = phase.figures.map { "\($0.0) \($0.1)" }.joined(separator: ", ")
            lines.append("  phase \(phase.name): \(phase.passed ? "passed" : "FAILED (\(phase.failure))"); \(figures)")
        }
        lines.append(passed ? "passed" : "FAILED")
        return lines.joined(separator: "\n") + "\n"
    }
}

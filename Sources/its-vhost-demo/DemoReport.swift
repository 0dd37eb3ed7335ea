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
        var fields: [String] = [
            "\"mode\":\"\(mode)\"",
            "\"requests\":\(requests)",
            "\"completions\":\(completions)",
            "\"reads\":\(reads)",
            "\"writes\":\(writes)",
            "\"lost\":\(lost)",
            "\"unsignalled\":\(unsignalled)",
            "\"interrupts\":\(interrupts)",
            "\"interrupts_without_completion\":\(interruptsWithoutCompletion)",
        ]
        if let lpisAcked { fields.append("\"lpis_acked\":\(lpisAcked)") }
        fields += [
            "\"p50_us\":\(Self.decimal(p50))",
            "\"p99_us\":\(Self.decimal(p99))",
            "\"backend_starts\":\(backendStarts)",
            "\"elapsed_ms\":\(elapsedMilliseconds)",
        ]
        let phaseFields = phases.map { phase -> String in
            var inner = ["\"passed\":\(phase.passed)"] + phase.figures.map { "\"\($0.0)\":\($0.1)" }
            if !phase.failure.isEmpty { inner.append("\"failure\":\"\(Self.escaped(phase.failure))\"") }
            return "\"\(phase.name)\":{\(inner.joined(separator: ","))}"
        }
        fields.append("\"phases\":{\(phaseFields.joined(separator: ","))}")
        fields.append("\"passed\":\(passed)")
        return "{\(fields.joined(separator: ","))}"
    }

    var summary: String {
        var lines = [
            "its-vhost-demo (\(mode)): \(requests) requests (\(reads) reads, \(writes) writes), \(completions) completed, \(lost) lost",
            "  interrupts taken: \(interrupts) (\(interruptsWithoutCompletion) found the used ring empty)"
                + (lpisAcked.map { ", LPIs acknowledged: \($0)" } ?? ""),
            "  submit -> interrupt taken: p50 \(Self.decimal(p50)) µs, p99 \(Self.decimal(p99)) µs",
            "  qemu-storage-daemon started \(backendStarts) time(s); completed but never signalled: \(unsignalled); \(elapsedMilliseconds) ms in all",
        ]
        for phase in phases {
            let figures = phase.figures.map { "\($0.0) \($0.1)" }.joined(separator: ", ")
            lines.append("  phase \(phase.name): \(phase.passed ? "passed" : "FAILED (\(phase.failure))"); \(figures)")
        }
        lines.append(passed ? "passed" : "FAILED")
        return lines.joined(separator: "\n") + "\n"
    }

    /// A number with one decimal, as JSON and people read it.
    private static func decimal(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    private static func escaped(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if scalar.value < 0x20 { out += "\\u00" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out
    }
}

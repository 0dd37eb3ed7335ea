import Foundation
import Testing

/// its-vhost-demo end to end: a real qemu-storage-daemon, a real itsd, the demo's JSON checked
/// field by field. qemu-storage-daemon comes from qemu-system-common (`make test-deps`).
@Suite(.serialized)
struct VhostDemoTests {
    /// Every completion arrives as the queue's LPI on its vCPU and is acknowledged before the used
    /// ring is drained; the MASK/UNMASK, back-end reconnect, itsd reattach, migration and MOVI phases
    /// pass with the figures that prove them.
    @Test func everyCompletionArrivesAsAnLPIThroughEveryPhase() throws {
        let run = try DemoRun(["--requests", "300", "--queue-depth", "8", "--json"])
        #expect(run.status == 0, "stderr: \(run.errors)")
        let report = try run.json()
        #expect(report["mode"] as? String == "itsd")
        #expect(report["requests"] as? Int == 300)
        #expect(report["completions"] as? Int == 300)
        #expect(report["lost"] as? Int == 0)
        #expect(report["unsignalled"] as? Int == 0)
        #expect(report["reads"] as? Int == 150)
        #expect(report["writes"] as? Int == 150)
        let lpis = try #require(report["lpis_acked"] as? Int)
        let interrupts = try #require(report["interrupts"] as? Int)
        #expect(lpis == interrupts, "every interrupt the guest took was the queue's LPI")
        // At least one LPI per batch of eight, plus the back-end's signal on each of the two call fds.
        #expect(lpis >= 300 / 8 + 2)
        #expect((report["interrupts_without_completion"] as? Int ?? 0) >= 2)
        let p50 = try #require(report["p50_us"] as? Double)
        let p99 = try #require(report["p99_us"] as? Double)
        #expect(p50 > 0 && p99 >= p50)
        #expect(report["backend_starts"] as? Int == 2)
        #expect(report["passed"] as? Bool == true)

        let phases = try #require(report["phases"] as? [String: [String: Any]])
        let mask = try #require(phases["mask"])
        #expect(mask["passed"] as? Bool == true, "\(mask)")
        #expect(mask["masked_requests"] as? Int == 8)
        #expect(mask["lpis_while_masked"] as? Int == 0)
        #expect((mask["latched_lpis"] as? Int ?? 0) >= 1)
        #expect(mask["returned"] as? Int == 8)
        let reconnect = try #require(phases["reconnect"])
        #expect(reconnect["passed"] as? Bool == true, "\(reconnect)")
        #expect(reconnect["backend_restarts"] as? Int == 1)
        #expect((reconnect["spurious_lpis"] as? Int ?? 0) >= 1)
        #expect(reconnect["completions_after"] as? Int == 8 + 8 + 138, "the reattach and migrate phases' requests and the last run")
        let reattach = try #require(phases["reattach"])
        #expect(reattach["passed"] as? Bool == true, "\(reattach)")
        #expect(reattach["requests_while_detached"] as? Int == 8)
        #expect(reattach["notified_while_detached"] as? Int == 1)
        #expect((reattach["lpis_after_attach"] as? Int ?? 0) >= 1)
        #expect(reattach["returned"] as? Int == 8)
        let migrate = try #require(phases["migrate"])
        #expect(migrate["passed"] as? Bool == true, "\(migrate)")
        #expect((migrate["image_bytes"] as? Int ?? 0) > 0)
        #expect(migrate["requests_pending_at_snapshot"] as? Int == 8)
        #expect((migrate["restored_lpis"] as? Int ?? 0) >= 1)
        #expect(migrate["returned"] as? Int == 8)
        let movi = try #require(phases["movi"])
        #expect(movi["passed"] as? Bool == true, "\(movi)")
        #expect((movi["lpis_vcpu0_before"] as? Int ?? 0) >= 1)
        #expect(movi["lpis_vcpu0_after"] as? Int == 0)
        #expect((movi["lpis_vcpu1_after"] as? Int ?? 0) >= 1)
    }

    /// With one request in flight nothing can coalesce: each completion's signal must become exactly
    /// one LPI (the masked one latched, the one pending while detached, the migrated one restored), plus one for the back-end's signal
    /// on each new call fd (the first bind and the reconnect), and only those two find the used ring empty.
    @Test func oneRequestInFlightMakesExactlyOneLPIPerCompletion() throws {
        let run = try DemoRun(["--requests", "100", "--queue-depth", "1", "--backend", "null", "--json"])
        #expect(run.status == 0, "stderr: \(run.errors)")
        let report = try run.json()
        #expect(report["completions"] as? Int == 100)
        #expect(report["lost"] as? Int == 0)
        #expect(report["lpis_acked"] as? Int == 102)
        #expect(report["interrupts_without_completion"] as? Int == 2)
        let phases = try #require(report["phases"] as? [String: [String: Any]])
        #expect(phases["mask"]?["latched_lpis"] as? Int == 1)
        #expect(phases["reconnect"]?["spurious_lpis"] as? Int == 1)
        #expect(phases["migrate"]?["restored_lpis"] as? Int == 1)
        #expect(phases["reattach"]?["lpis_after_attach"] as? Int == 1)
    }

    /// The accounting fails a run that loses requests: with the back-end stopped (SIGSTOP) mid-run no
    /// completion and no interrupt comes, so after --timeout the requests in flight are reported lost
    /// and the demo exits 1 with `passed` false instead of hanging or passing.
    @Test func requestsThatNeverComeBackAreReportedLost() throws {
        let demo = try DemoProcess(["--requests", "1000000", "--queue-depth", "4", "--backend", "null", "--skip", "mask",
                                    "--skip", "reconnect", "--skip", "reattach", "--skip", "migrate", "--skip", "movi",
                                    "--timeout", "1",
                                    "--verbose", "--json"])
        let started = demo.waitForErrors(containing: "running 500000 requests")
        let line = demo.errors.split(separator: "\n").first { $0.contains("qemu-storage-daemon ready (pid ") }
        let pid = line.flatMap { Int32($0.split(separator: "(pid ")[1].prefix { $0.isNumber }) }
        #expect(started, "\(demo.isRunning ? "still running" : "exited with \(demo.wait())"); stderr: \(demo.errors)")
        let daemon = try #require(pid, "stderr: \(demo.errors)")
        usleep(100_000)
        try #require(demo.isRunning, "the demo ended before the back-end was stopped: \(demo.errors)")
        kill(daemon, SIGSTOP)
        usleep(2_500_000)
        kill(daemon, SIGCONT)
        let status = demo.wait()
        #expect(status == 1, "stderr: \(demo.errors)")
        let report = try demo.json()
        let lost = try #require(report["lost"] as? Int)
        #expect(lost >= 1 && lost <= 4, "at most the requests in flight")
        let requests = try #require(report["requests"] as? Int)
        #expect(report["completions"] as? Int == requests - lost)
        #expect(requests < 1_000_000)
        #expect(report["passed"] as? Bool == false)
    }

    /// With --socket the demo uses an itsd it did not start, and leaves it running.
    @Test func anItsdStartedElsewhereServesTheDemo() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vhost-demo-test-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let socket = directory.appendingPathComponent("itsd.sock").path
        let itsd = Process()
        itsd.executableURL = DemoRun.binaries.appendingPathComponent("itsd")
        itsd.arguments = ["--socket", socket, "--lanes", "1", "--log-level", "warning"]
        let log = directory.appendingPathComponent("itsd.out")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        itsd.standardOutput = try FileHandle(forWritingTo: log)
        try itsd.run()
        defer { if itsd.isRunning { itsd.terminate(); itsd.waitUntilExit() } }
        // Ready once it says it listens (the socket file exists a moment earlier, from bind()).
        var tries = 0
        while !((try? String(contentsOf: log, encoding: .utf8)) ?? "").contains("itsd listening on"), tries < 1000 {
            tries += 1
            usleep(10_000)
        }
        let run = try DemoRun(["--socket", socket, "--requests", "120", "--queue-depth", "4", "--backend", "null",
                               "--skip", "reconnect", "--json"])
        #expect(run.status == 0, "stderr: \(run.errors)")
        let report = try run.json()
        #expect(report["completions"] as? Int == 120)
        #expect(report["lost"] as? Int == 0)
        #expect(report["backend_starts"] as? Int == 1)
        let phases = try #require(report["phases"] as? [String: Any])
        #expect(Set(phases.keys) == ["mask", "reattach", "migrate", "movi"])
        #expect(itsd.isRunning, "the demo must not stop an itsd it did not start")
        itsd.terminate()
        itsd.waitUntilExit()
        #expect(itsd.terminationStatus == 0)
    }

    /// --direct: the vhost-user and virtio layers alone, the call eventfd read by the demo.
    @Test func theBackEndAloneCompletesThroughTheCallEventfd() throws {
        let run = try DemoRun(["--direct", "--requests", "200", "--queue-depth", "16", "--json"])
        #expect(run.status == 0, "stderr: \(run.errors)")
        let report = try run.json()
        #expect(report["mode"] as? String == "direct")
        #expect(report["completions"] as? Int == 200)
        #expect(report["lost"] as? Int == 0)
        #expect(report["lpis_acked"] == nil)
        #expect((report["interrupts"] as? Int ?? 0) >= 200 / 16)
    }

    /// Bad options name the option and the range; a back-end that cannot start is reported.
    @Test func badInputIsRefusedWithAReason() throws {
        let depth = try DemoRun(["--queue-depth", "0"])
        #expect(depth.status == 64)
        #expect(depth.errors.contains("--queue-depth must be 1 ... 256"), "\(depth.errors)")
        let vcpus = try DemoRun(["--vcpus", "1"])
        #expect(vcpus.status == 64)
        #expect(vcpus.errors.contains("--vcpus must be 2 ... 15"), "\(vcpus.errors)")
        let backend = try DemoRun(["--backend", "nvme"])
        #expect(backend.status == 64)
        #expect(backend.errors.contains("--backend must be file or null, not nvme"), "\(backend.errors)")
        let phase = try DemoRun(["--skip", "everything"])
        #expect(phase.status == 64)
        #expect(phase.errors.contains("'mask', 'reconnect', 'reattach', 'migrate' or 'movi'"), "\(phase.errors)")
        let few = try DemoRun(["--requests", "10", "--queue-depth", "8"])
        #expect(few.status == 64)
        #expect(few.errors.contains("--requests must be at least 28"), "\(few.errors)")
        let missing = try DemoRun(["--direct", "--qemu-storage-daemon", "/nonexistent/qemu-storage-daemon"])
        #expect(missing.status == 1)
        #expect(missing.errors.contains("cannot start /nonexistent/qemu-storage-daemon"), "\(missing.errors)")
    }
}

/// its-vhost-demo running, its output in files: in the background for tests that act on it mid-run,
/// or to the end through `DemoRun`.
final class DemoProcess {
    private let process = Process()
    private let outURL: URL
    private let errURL: URL

    init(_ arguments: [String]) throws {
        process.executableURL = DemoRun.binaries.appendingPathComponent("its-vhost-demo")
        process.arguments = arguments
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("vhost-demo-bg-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        outURL = base.appendingPathExtension("out")
        errURL = base.appendingPathExtension("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        try process.run()
    }

    deinit {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: outURL)
        try? FileManager.default.removeItem(at: errURL)
    }

    var errors: String { (try? String(contentsOf: errURL, encoding: .utf8)) ?? "" }

    var isRunning: Bool { process.isRunning }

    /// Waits up to 30 s for `text` on standard error; false if the demo exits or time runs out first.
    func waitForErrors(containing text: String) -> Bool {
        for _ in 0 ..< 3000 {
            if errors.contains(text) { return true }
            if !process.isRunning { return false }
            usleep(10_000)
        }
        return false
    }

    /// Waits for the demo to exit and returns its status. A demo still running after 120 s is stuck
    /// (ITSClient has no receive timeout, so a silent itsd would hold it): it gets SIGTERM and the
    /// status is 124, so that the test fails instead of hanging `make test`.
    func wait() -> Int32 {
        for _ in 0 ..< 12_000 where process.isRunning { usleep(10_000) }
        guard !process.isRunning else {
            process.terminate()
            process.waitUntilExit()
            return 124
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    var output: String { (try? String(contentsOf: outURL, encoding: .utf8)) ?? "" }

    /// Standard output as the one JSON object --json prints.
    func json() throws -> [String: Any] { try Self.parse(output) }

    static func parse(_ output: String) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(output.utf8))
        return try #require(object as? [String: Any], "not a JSON object: \(output)")
    }
}

/// One run of its-vhost-demo from the build directory, with its exit status and output.
struct DemoRun {
    /// The build directory: the test bundle sits beside the executables.
    static var binaries: URL {
        URL(fileURLWithPath: try! FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            .deletingLastPathComponent()
    }

    let status: Int32
    let output: String
    let errors: String

    /// Runs the demo with `arguments` to the end. A test machine may be busy: the demo waits up to
    /// 20 s for an interrupt (--timeout) unless the arguments say otherwise.
    init(_ arguments: [String]) throws {
        let process = try DemoProcess(arguments.contains("--timeout") ? arguments : arguments + ["--timeout", "20"])
        status = process.wait()
        output = process.output
        errors = process.errors
    }

    /// Standard output as the one JSON object --json prints.
    func json() throws -> [String: Any] { try DemoProcess.parse(output) }
}

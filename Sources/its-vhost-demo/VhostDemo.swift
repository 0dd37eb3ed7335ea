import ArgumentParser
import Glibc
import ToolSupport

/// its-vhost-demo: a VMM-side vhost-user front-end whose virtio-blk completions reach the guest as
/// LPIs through itsd (docs/INTEGRATION.md). Exit codes: 0 when every request completed through an
/// interrupt and every phase passed, 1 when something failed, 64 for bad options.
@main
struct VhostDemo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "its-vhost-demo",
        abstract: "Drives qemu-storage-daemon's vhost-user-blk export and takes its completions as LPIs from itsd.",
        discussion: """
        Starts qemu-storage-daemon (from qemu-system-common) on a temporary socket, shares a memfd of guest RAM \
        with it and with itsd, programs the ITS as a guest driver would (guest memory and MMIO only), binds the \
        back-end's call eventfd to (DeviceID, EventID) with BIND_IRQFD and runs virtio-blk reads and writes. Each \
        completion must arrive as the LPI pending on its vCPU, seen through the vCPU's notify eventfd and taken \
        with ACK, before the used ring is drained. Phases: mask the vector, complete requests, unmask (the latched \
        LPI arrives); crash and restart the back-end and reconnect; close the connection to itsd while requests \
        complete and attach again with the token; migrate the VM (SNAPSHOT_VM into a new VM with RESTORE_VM, \
        with an LPI pending); MOVI the event to another vCPU mid-run.
        Exit codes: 0 all requests completed and all phases passed, 1 failure, 64 bad options.
        """
    )

    enum Phase: String, CaseIterable, ExpressibleByArgument {
        case mask, reconnect, reattach, migrate, movi
    }

    @Option(name: .long, help: "The itsd socket; without it the demo starts its own itsd on a temporary socket.")
    var socket: String?

    @Option(name: .long, help: "The itsd executable to start without --socket (default: itsd next to this program).")
    var itsd: String?

    @Option(name: .long, help: "Requests in all (reads and writes alternate).")
    var requests: Int = 1000

    @Option(name: .customLong("queue-depth"), help: "Requests in flight at most (1 ... \(GuestMemoryMap.maxQueueDepth)).")
    var queueDepth: Int = 16

    @Option(name: .long, help: "vCPUs of the VM (2 ... \(GuestMemoryMap.maxVCPUs)); MOVI moves the event from vCPU 0 to vCPU 1.")
    var vcpus: Int = 2

    @Option(name: .long, help: "The block node: file (a 64 MiB sparse file; reads check what was written) or null (null-co).")
    var backend: String = "file"

    @Option(name: .customLong("qemu-storage-daemon"), help: "The back-end executable.")
    var storageDaemon: String = "qemu-storage-daemon"

    @Option(name: .customLong("skip"), help: "A phase not to run: mask, reconnect, reattach, migrate or movi (repeatable).")
    var skippedPhases: [Phase] = []

    @Flag(name: .long, help: "No itsd: read the back-end's call eventfd directly (checks the vhost-user and virtio layers alone).")
    var direct = false

    @Option(name: .long, help: "Seconds without an interrupt, with requests in flight, before the demo gives up; the back-end and GITS_CREADR may take this long, and at least 5 s, to answer.")
    var timeout: Int = 5

    /// How long the back-end and GITS_CREADR may take to answer.
    var answerTimeout: Int { max(timeout, 5) }

    @Flag(name: .long, help: "Print one JSON object instead of the summary.")
    var json = false

    @Flag(name: .long, help: "Log each step of the flow on standard error, with the milliseconds since the start.")
    var verbose = false

    func validate() throws {
        guard requests >= 1 else { throw ValidationError("--requests must be at least 1") }
        guard (1 ... GuestMemoryMap.maxQueueDepth).contains(queueDepth) else {
            throw ValidationError("--queue-depth must be 1 ... \(GuestMemoryMap.maxQueueDepth)")
        }
        guard (2 ... GuestMemoryMap.maxVCPUs).contains(vcpus) else {
            throw ValidationError("--vcpus must be 2 ... \(GuestMemoryMap.maxVCPUs)")
        }
        guard StorageDaemon.Backend(rawValue: backend) != nil else {
            throw ValidationError("--backend must be file or null, not \(backend)")
        }
        guard (1 ... 600).contains(timeout) else { throw ValidationError("--timeout must be 1 ... 600 seconds") }
        guard !(direct && socket != nil) else { throw ValidationError("--direct uses no itsd; drop --socket") }
        let phaseRequests = [Phase.mask, .reattach, .migrate].filter { !skippedPhases.contains($0) }.count * queueDepth
        guard direct || requests >= phaseRequests + 4 else {
            throw ValidationError("--requests must be at least \(phaseRequests + 4): --queue-depth for each of the mask, reattach and migrate phases, and 4")
        }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let log = StepLog(enabled: verbose)
        var report: DemoReport
        do throws(ToolError) {
            let scratch = try ScratchDirectory()
            let daemon = try StorageDaemon(executable: storageDaemon, backend: StorageDaemon.Backend(rawValue: backend)!,
                                           scratch: scratch)
            defer { try? daemon.stop() }
            try daemon.start()
            log("qemu-storage-daemon ready (pid \(daemon.pid), \(backend) node), vhost-user-blk at \(daemon.socketPath)")
            let ram = try GuestRAM(size: GuestMemoryMap.ramBytes(queueDepth: queueDepth))
            let device = try BlockDevice(daemon: daemon, ram: ram, queueDepth: queueDepth, timeoutSeconds: answerTimeout)
            if direct {
                report = try runDirect(device: device, log: log)
            } else {
                report = try runWithITS(device: device, scratch: scratch, log: log)
            }
            try daemon.stop()
            log("qemu-storage-daemon stopped")
            report.elapsedMilliseconds = log.elapsedMilliseconds
        } catch {
            FileHandleOutput.standardError("its-vhost-demo: \(error)\n")
            throw ExitCode.failure
        }
        FileHandleOutput.standardOutput(json ? report.json + "\n" : report.summary)
        guard report.passed else { throw ExitCode.failure }
    }

    /// The back-end alone: requests complete through the call eventfd, read by the demo.
    private func runDirect(device: BlockDevice, log: StepLog) throws(ToolError) -> DemoReport {
        try device.connect()
        log("vhost-user set up; the demo reads the call eventfd itself")
        let workload = Workload(device: device, path: DirectCallPath(device: device), silenceMilliseconds: timeout * 1000)
        try workload.settle(milliseconds: 20)
        log("running \(requests) requests, \(queueDepth) in flight")
        try workload.run(count: requests, queueDepth: queueDepth)
        log("\(workload.completions) of \(workload.requests) requests completed")
        return DemoReport(mode: "direct", workload: workload, device: device, phases: [], lpisAcked: nil)
    }
}

/// Writes to the standard streams without Foundation or stdio's shared buffers.
enum FileHandleOutput {
    static func standardOutput(_ text: String) { writeAll(1, text) }
    static func standardError(_ text: String) { writeAll(2, text) }

    private static func writeAll(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }
}

// its-load: drives itsd over its real protocol the way KVM's vgic_lpi_stress drives a VM's ITS, and
// measures MSIs per second, inject -> acknowledge latency, lost LPIs, the server's CPU and memory,
// and the floor of the same path without itsd.
import ArgumentParser
import Glibc
import ToolSupport

@main
struct ITSLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "its-load",
        abstract: "A vgic_lpi_stress-style load on itsd over its protocol, with floors measured in the same run.",
        discussion: """
        Sets up a VM through guest memory and MMIO (one collection per vCPU, one MAPD per device, one \
        MAPTI per event round robin over the collections, INVALL), then sends MSIs for -i rounds or \
        --duration seconds while consumer threads acknowledge every LPI their vCPUs are notified of. \
        MSIs per second count MSIs applied at their redistributors. Exit codes: 0 done, 1 failed, \
        3 done but LPIs were lost.
        """
    )

    @Option(name: .customShort("v"), help: ArgumentHelp("vCPUs (and collections).", valueName: "n"))
    var vcpus = 1
    @Option(name: .customShort("d"), help: ArgumentHelp("Devices.", valueName: "n"))
    var devices = 1
    @Option(name: .customShort("e"), help: ArgumentHelp("Events per device.", valueName: "n"))
    var events = 16
    @Option(name: [.customShort("i"), .long], help: "Rounds over every (device, event) pair.")
    var iterations = 1000
    @Option(name: .long, help: "Seconds to inject for, instead of -i.")
    var duration: Double?
    @Option(name: .long, help: "rtt, pipelined, batch, irqfd or translater.")
    var mode = "pipelined"
    @Option(name: .long, help: "Pairs per INJECT_BATCH (batch mode).")
    var batch = 64
    @Option(name: .long, help: "Injecting connections, each with its own thread.")
    var connections = 1
    @Option(name: .long, help: "Consumer threads acknowledging LPIs (at most one per vCPU); 0 acknowledges nothing, so every injected LPI counts as lost (a check of the loss accounting).")
    var consumers = 2
    @Option(name: .long, help: "How consumers take LPIs: slot (wait on each vCPU's notify eventfd and take the LPI from the vCPU's armed acknowledge slot, SET_ACK_SLOT; ACK only when the slot says more), notify (wait on the notify eventfds, then ACK until 1023), or wait (one consumer per vCPU blocks in WAIT_ACK, as a vCPU thread idle in WFI would; --consumers then only says whether there are any).")
    var acknowledge = "slot"
    @Option(name: .long, help: "Lanes of the itsd this program starts (default: itsd's own).")
    var lanes: Int?
    @Option(name: .long, help: "Use the itsd listening on this socket instead of starting one.")
    var socket: String?
    @Option(name: .long, help: "Seconds the floor is measured for.")
    var floorDuration = 0.5
    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard LoadMode(rawValue: mode) != nil else {
            throw ValidationError("--mode must be one of \(LoadMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard (1 ... 512).contains(vcpus) else { throw ValidationError("-v must be 1 ... 512") }
        guard (1 ... 65536).contains(devices), (1 ... 65536).contains(events) else {
            throw ValidationError("-d and -e must be 1 ... 65536")
        }
        guard devices * events <= 1 << 24 else { throw ValidationError("-d × -e must be at most 16777216") }
        guard iterations >= 1 else { throw ValidationError("-i must be at least 1") }
        guard (duration ?? 1) > 0, floorDuration > 0 else { throw ValidationError("durations must be positive") }
        guard (1 ... 4096).contains(batch) else { throw ValidationError("--batch must be 1 ... 4096") }
        guard (1 ... 256).contains(connections), consumers >= 0 else {
            throw ValidationError("--connections must be 1 ... 256 and --consumers at least 0")
        }
        guard consumers > 0 || mode != LoadMode.irqfd.rawValue else {
            throw ValidationError("irqfd mode waits for each acknowledge: --consumers must be at least 1")
        }
        guard AcknowledgeStyle(rawValue: acknowledge) != nil else {
            throw ValidationError("--acknowledge must be one of \(AcknowledgeStyle.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard acknowledge != AcknowledgeStyle.wait.rawValue || vcpus <= 64 else {
            throw ValidationError("--acknowledge wait runs a consumer thread per vCPU: -v must be at most 64")
        }
        guard lanes.map({ (1 ... 256).contains($0) }) ?? true else { throw ValidationError("--lanes must be 1 ... 256") }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let options = LoadOptions(
            workload: Workload(vcpus: vcpus, devices: devices, events: events),
            mode: LoadMode(rawValue: mode)!, batch: batch, iterations: iterations,
            duration: duration.map { UInt64($0 * 1e9) } ?? 0, connections: connections, consumers: consumers,
            acknowledge: AcknowledgeStyle(rawValue: acknowledge)!, lanes: lanes, socket: socket, floorDuration: UInt64(floorDuration * 1e9))
        do {
            let result = try LoadRun.run(options)
            print(json ? result.json : result.text)
            // Exit code 3: the run finished but lost LPIs.
            if result.lost != 0 { throw ExitCode(3) }
        } catch let error as ToolError {
            var message = "its-load: \(error.description)\n"
            message.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
            throw ExitCode(1)
        }
    }
}

// One run of its-load: the server, the VM, the threads, the drain, the floor and the figures.
import Glibc
import Histogram
import ITSWire
import ToolSupport

struct LoadOptions: Sendable {
    var workload: Workload
    var mode: LoadMode
    var batch: Int
    var iterations: Int
    /// Nanoseconds; 0 means `iterations` rounds over every pair.
    var duration: UInt64
    var connections: Int
    var consumers: Int
    /// How consumers take LPIs.
    var acknowledge: AcknowledgeStyle
    var lanes: Int?
    var socket: String?
    var floorDuration: UInt64
}

struct LoadResult {
    var options: LoadOptions
    var msis = 0
    var seconds = 0.0
    var setupSeconds = 0.0
    var setupCommands = 0
    var latency = makeLatencyHistogram()
    var pathLatency = makeLatencyHistogram()
    var lost = 0
    var injectedLPIs = 0
    var acknowledged = 0
    var acksSent = 0
    var timeouts = 0
    var serverCPUNanoseconds: UInt64?
    /// its-load's own CPU time over the run (injectors and consumers), which the server competes with.
    var clientCPUNanoseconds: UInt64 = 0
    var serverRSS: UInt64?
    var serverRSSAnon: UInt64?
    var rssAnonBeforeVM: UInt64?
    var rssAnonAfterSetup: UInt64?
    var floor = FloorResult(messagesPerSecond: 0, latency: nil)
    var frameLength = 0
}

enum LoadRun {
    static func run(_ options: LoadOptions) throws -> LoadResult {
        var result = LoadResult(options: options)
        let server: ServerProcess? = options.socket == nil ? try ServerProcess(lanes: options.lanes) : nil
        defer { server?.stop() }
        let path = options.socket ?? server!.socketPath
        let workload = options.workload

        let setup = try WireConnection(path: path)
        try setup.hello()
        guard let serverPID = setup.peerPID else { throw ToolError("SO_PEERCRED gave no server pid") }
        result.rssAnonBeforeVM = ProcessStats.statusBytes(serverPID, "RssAnon")
        let guest = try GuestVM(workload)
        try guest.create(on: setup, ackSlots: options.acknowledge == .slot)
        let setupStart = monotonicNanoseconds()
        result.setupCommands = try guest.program(on: setup)
        try guest.awaitLanes(on: setup)
        result.setupSeconds = Double(monotonicNanoseconds() - setupStart) / 1e9
        result.rssAnonAfterSetup = ProcessStats.statusBytes(serverPID, "RssAnon")

        let tracker = LPITracker(count: workload.lpiCount)
        let control = RunControl()
        // Injectors: by device when there are enough devices (vgic_lpi_stress has a thread per
        // device), else by LPI.
        let connections = min(options.connections, workload.lpiCount)
        var shares = [[Int]](repeating: [], count: connections)
        for lpi in 0 ..< workload.lpiCount {
            let owner = workload.devices >= connections ? Int(workload.device(ofLPI: lpi)) % connections : lpi % connections
            shares[owner].append(lpi)
        }
        var doneFDs: [Int32] = []
        var injectors: [Injector] = []
        for share in shares {
            let connection = try WireConnection(path: path)
            try connection.hello()
            try guest.attach(connection)
            switch options.mode {
            case .rtt:
                let injector = try RTTInjector(connection: connection, vm: guest.vm, lpis: share, workload: workload, tracker: tracker,
                                               control: control, iterations: options.iterations, duration: options.duration,
                                               waitsForAcknowledge: options.consumers > 0)
                if let doneFD = injector.doneFD {
                    if doneFDs.isEmpty { doneFDs = [Int32](repeating: -1, count: workload.lpiCount) }
                    for lpi in share { doneFDs[lpi] = doneFD }
                }
                injectors.append(injector)
            case .irqfd:
                let injector = try IRQFDInjector(binding: connection, vm: guest.vm, lpis: share, workload: workload,
                                                 tracker: tracker, control: control, iterations: options.iterations,
                                                 duration: options.duration)
                if doneFDs.isEmpty { doneFDs = [Int32](repeating: -1, count: workload.lpiCount) }
                for lpi in share { doneFDs[lpi] = injector.doneFD }
                injectors.append(injector)
            case .pipelined, .batch, .translater:
                injectors.append(StreamInjector(mode: options.mode, batch: options.batch, connection: connection, vm: guest.vm,
                                                lpis: share, workload: workload, tracker: tracker, control: control,
                                                iterations: options.iterations, duration: options.duration))
            }
        }
        // A vCPU that waits in WAIT_ACK holds its connection's replies: one consumer per vCPU.
        let consumerCount = options.consumers == 0 ? 0 : options.acknowledge == .wait ? workload.vcpus : min(options.consumers, workload.vcpus)
        var consumers: [Consumer] = []
        for index in 0 ..< consumerCount {
            let connection = try WireConnection(path: path)
            try connection.hello()
            try guest.attach(connection)
            let vcpus = Array(stride(from: index, to: workload.vcpus, by: consumerCount))
            consumers.append(try Consumer(connection: connection, vm: guest.vm, vcpus: vcpus,
                                          notifyFDs: vcpus.map { guest.notifyFDs[$0] }, slotWords: vcpus.compactMap { guest.slots?.word($0) },
                                          tracker: tracker,
                                          control: control, doneFDs: doneFDs, style: options.acknowledge))
        }

        let consumerThreads = consumers.map { consumer in startThread { consumer.run() } }
        let injectorThreads = injectors.map { injector in startThread { injector.run() } }
        let cpuStart = ProcessStats.cpuNanoseconds(serverPID)
        let ownCPUStart = ownCPUNanoseconds()
        let start = monotonicNanoseconds()
        control.go.store(true, ordering: .releasing)
        injectorThreads.forEach(join)
        let end = injectors.map(\.finished).max() ?? start
        control.draining.store(true, ordering: .releasing)
        consumerThreads.forEach(join)
        let cpuEnd = ProcessStats.cpuNanoseconds(serverPID)
        result.clientCPUNanoseconds = ownCPUNanoseconds() - ownCPUStart
        if let failure = injectors.compactMap(\.error).first ?? consumers.compactMap(\.error).first { throw failure }

        result.msis = injectors.reduce(0) { $0 + $1.sent }
        result.seconds = Double(end - start) / 1e9
        result.timeouts = injectors.reduce(0) { $0 + $1.timeouts }
        for injector in injectors { result.pathLatency.add(injector.pathLatency) }
        for consumer in consumers {
            result.latency.add(consumer.latency)
            if options.mode == .irqfd { result.pathLatency.add(consumer.wakeLatency) }
            result.acknowledged += consumer.acknowledged
            result.acksSent += consumer.acksSent
        }
        result.lost = tracker.lost()
        result.injectedLPIs = tracker.injectedLPIs()
        if let cpuStart, let cpuEnd { result.serverCPUNanoseconds = cpuEnd - cpuStart }
        result.serverRSS = ProcessStats.statusBytes(serverPID, "VmRSS")
        result.serverRSSAnon = ProcessStats.statusBytes(serverPID, "RssAnon")
        _ = try? setup.call(.destroyVM(guest.vm))

        result.frameLength = options.mode == .batch ? 24 + 8 * options.batch : (options.mode == .translater ? 48 : 32)
        result.floor = try floor(for: options, frameLength: result.frameLength)
        return result
    }

    /// The floor of the mode, measured now.
    static func floor(for options: LoadOptions, frameLength: Int) throws -> FloorResult {
        switch options.mode {
        case .rtt:
            return try Floors.pingPong(frameLength: frameLength, duration: options.floorDuration)
        case .irqfd:
            return try Floors.eventfdRelay(duration: options.floorDuration)
        case .pipelined, .batch, .translater:
            let frames = max(1, 65536 / frameLength)
            let buffer = [UInt8](repeating: 0, count: frames * frameLength)
            let perFrame = options.mode == .batch ? Double(options.batch) : 1
            return try Floors.stream(buffer, messagesPerByte: perFrame / Double(frameLength), duration: options.floorDuration)
        }
    }
}

import ITSModel

/// A guest for the model benchmarks: a ``VirtualGIC`` over 64 MiB of guest memory with LPIs enabled
/// on every vCPU (PTZ, so nothing is loaded), the ITS's tables laid out and commands written into
/// its queue as a guest driver writes them. Setting up is never timed.
struct BenchGuest {
    static let memorySize = 64 << 20
    static let configTable = GuestAddress(0x10_0000)      // one byte per LPI: 8192 + 2^17 at most
    static let pendingTables = GuestAddress(0x40_0000)    // 64K apart, one per vCPU
    static let collectionTable = GuestAddress(0x90_0000)  // one 4K page: 512 ICIDs
    static let deviceTable = GuestAddress(0xA0_0000)      // one 4K page: 512 DeviceIDs
    static let commandQueue = GuestAddress(0x100_0000)    // 256 pages: 32768 commands
    static let itts = GuestAddress(0x200_0000)            // 64K per device
    static let queuePages = 256
    static let queueCommands = queuePages * 4096 / 32

    var gic: VirtualGIC<InMemoryGuestMemory, DeliveryLog>
    let memory: InMemoryGuestMemory
    /// Where the next queued command goes.
    var writer: UInt64 = 0

    /// A VM of `vcpus` vCPUs whose LPIs go up to 2^17 (8192 + 65536 LPIs fit) and an enabled ITS.
    init(vcpus: Int, cacheLimit: Int = 1 << 22) {
        memory = InMemoryGuestMemory(base: GuestAddress(0), size: Self.memorySize)
        gic = VirtualGIC(ITS.Configuration(deviceIDBits: 16, eventIDBits: 16, intidBits: 17, vcpuCount: vcpus,
                                           translationCacheLimit: cacheLimit),
                         memory: memory, sink: DeliveryLog())
        for vcpu in 0 ..< vcpus {
            let v = VCPUIndex(UInt16(vcpu))
            gic.writeRedistributor(v, Redistributor.Offset.propbaser, Self.configTable.rawValue | 16)
            gic.writeRedistributor(v, Redistributor.Offset.pendbaser,
                                   Self.pendingTables.rawValue + UInt64(vcpu) * 0x1_0000 | 1 << 62)
            gic.writeRedistributor(v, Redistributor.Offset.ctlr, 1, width: .word)
        }
        gic.writeITS(ITS.Offset.cbaser, 1 << 63 | Self.commandQueue.rawValue | UInt64(Self.queuePages - 1))
        gic.writeITS(ITS.Offset.baser0, 1 << 63 | Self.deviceTable.rawValue)
        gic.writeITS(ITS.Offset.baser0 + 8, 1 << 63 | Self.collectionTable.rawValue)
        gic.writeITS(ITS.Offset.ctlr, 1, width: .word)
    }

    /// Writes LPI `intid`'s configuration byte.
    func configure(_ intid: UInt32, priority: UInt8, enabled: Bool = true) {
        try! memory.writeUInt8(LPIConfig(priority: Priority(priority), enabled: enabled).rawValue,
                               at: Self.configTable.adding(UInt64(intid) - 8192)!)
    }

    /// Writes one command at the local CWRITER without publishing it. At most ``queueCommands`` - 1
    /// may be queued between two ``publish(budget:)`` calls.
    mutating func queue(_ dw0: UInt64, _ dw1: UInt64 = 0, _ dw2: UInt64 = 0, _ dw3: UInt64 = 0) {
        let address = Self.commandQueue.adding(writer)!
        try! memory.writeUInt64(dw0, at: address)
        try! memory.writeUInt64(dw1, at: address.adding(8)!)
        try! memory.writeUInt64(dw2, at: address.adding(16)!)
        try! memory.writeUInt64(dw3, at: address.adding(24)!)
        writer = (writer + 32) % UInt64(Self.queuePages * 4096)
    }

    /// Writes GITS_CWRITER, processing up to `budget` units at once.
    mutating func publish(budget: Int = ITS.defaultWorkBudget) {
        gic.writeITS(ITS.Offset.cwriter, writer, budget: budget)
    }

    /// Publishes and runs every command and all background work to completion.
    mutating func runToCompletion() {
        publish()
        gic.runPendingWork()
        precondition(gic.its.creadr == gic.its.cwriter && !gic.its.stalled, "the benchmark's queue did not drain")
    }

    mutating func queueMAPD(_ device: UInt32, eventBits: Int) {
        queue(UInt64(device) << 32 | 0x08, UInt64(eventBits - 1), 1 << 63 | Self.itts.rawValue + UInt64(device) << 16)
    }

    mutating func queueMAPC(_ collection: UInt16, vcpu: Int) {
        queue(0x09, 0, 1 << 63 | UInt64(vcpu) << 16 | UInt64(collection))
    }

    mutating func queueMAPTI(_ device: UInt32, _ event: UInt32, intid: UInt32, collection: UInt16) {
        queue(UInt64(device) << 32 | 0x0A, UInt64(intid) << 32 | UInt64(event), UInt64(collection))
    }

    mutating func queueINVALL(_ collection: UInt16) {
        queue(0x0D, 0, UInt64(collection))
    }

    /// Maps collection c to vCPU c for every vCPU, and `devices` devices of 2^eventBits events.
    mutating func mapDevicesAndCollections(devices: Int, eventBits: Int) {
        for vcpu in 0 ..< gic.its.configuration.vcpuCount { queueMAPC(UInt16(vcpu), vcpu: vcpu) }
        for device in 0 ..< devices { queueMAPD(UInt32(device), eventBits: eventBits) }
        runToCompletion()
    }
}

/// `its-bench cmdq`: command processing through the queue in guest memory.
///
/// - `mapti_per_s`: a burst of 32,767 MAPTI commands (32 devices x 1024 events, one new LPI each,
///   over 4 collections on 4 vCPUs) is written into the queue untimed; the time is from the
///   GITS_CWRITER write to the queue being empty (CREADR == CWRITER), every command having read
///   and written its guest tables and mapped its LPI at the redistributor.
/// - `invall_65536_ms`: one vCPU with 65,536 mapped LPIs, a quarter of them pending, whose
///   configuration bytes have nearly all changed in guest memory (a new priority; every 16th LPI
///   also toggles its enable bit every other run); the time is from the GITS_CWRITER write
///   of one INVALL to the end of the redistributor's background sweep (GICR_SYNCR.Busy 0), every
///   byte re-read and the pending LPIs moved between priority levels.
///
/// Each figure is the median of 5 runs on a fresh VM.
enum CommandQueueBench {
    static let repeats = 5

    static func run(json: Bool) {
        let mapti = measureMAPTI()
        let invall = measureINVALL()
        if json {
            print("{\"mapti_per_s\": \(ITSBench.json(mapti)), \"invall_65536_ms\": \(ITSBench.json(invall))}")
            return
        }
        print("ITS command queue, median of \(repeats) runs")
        print("  MAPTI burst of \(BenchGuest.queueCommands - 1): \(Int(mapti)) commands/s")
        print("  INVALL over 65536 LPIs, until the sweep is complete: \((invall * 1000).rounded() / 1000) ms")
    }

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    static func median(_ samples: [Double]) -> Double {
        let sorted = samples.sorted()
        return sorted[sorted.count / 2]
    }

    /// Commands per second of a MAPTI burst.
    static func measureMAPTI() -> Double {
        let clock = ContinuousClock()
        let commands = BenchGuest.queueCommands - 1
        var rates: [Double] = []
        for _ in 0 ..< repeats {
            var guest = BenchGuest(vcpus: 4)
            guest.mapDevicesAndCollections(devices: 32, eventBits: 10)
            for intid in 8192 ..< 8192 + UInt32(commands) { guest.configure(intid, priority: UInt8(intid & 0xFC)) }
            for n in 0 ..< UInt32(commands) {
                guest.queueMAPTI(n >> 10, n & 1023, intid: 8192 + n, collection: UInt16(n & 3))
            }
            let elapsed = clock.measure { guest.runToCompletion() }
            precondition(guest.gic.its.counters.totalCommandErrors == 0, "MAPTI burst had command errors")
            precondition(guest.gic.its.events.count == commands, "MAPTI burst mapped \(guest.gic.its.events.count)")
            rates.append(Double(commands) / seconds(elapsed))
        }
        return median(rates)
    }

    /// Milliseconds of an INVALL over 65536 LPIs.
    static func measureINVALL() -> Double {
        let clock = ContinuousClock()
        let lpis: UInt32 = 65536
        var samples: [Double] = []
        var guest = BenchGuest(vcpus: 1)
        guest.mapDevicesAndCollections(devices: 64, eventBits: 10)
        for intid in 8192 ..< 8192 + lpis { guest.configure(intid, priority: 0x80) }
        for n in 0 ..< lpis {
            if n % UInt32(BenchGuest.queueCommands / 2) == 0 { guest.runToCompletion() }
            guest.queueMAPTI(n >> 10, n & 1023, intid: 8192 + n, collection: 0)
        }
        guest.runToCompletion()
        precondition(guest.gic.redistributor(VCPUIndex(0)).lpis.count == Int(lpis), "INVALL setup mapped too few LPIs")
        for n in stride(from: 0, to: lpis, by: 4) { _ = guest.gic.inject(DeviceID(n >> 10), EventID(n & 1023)) }
        for run in 0 ..< repeats {
            for n in 0 ..< lpis {
                let toggled = n % 16 == 0 && run % 2 == 0
                guest.configure(8192 + n, priority: UInt8(truncatingIfNeeded: (n &* 4 &+ UInt32(run) &* 8) & 0xFC), enabled: !toggled)
            }
            guest.queueINVALL(0)
            let elapsed = clock.measure { guest.runToCompletion() }
            precondition(!guest.gic.redistributor(VCPUIndex(0)).hasPendingWork, "INVALL left work")
            samples.append(seconds(elapsed) * 1000)
        }
        precondition(guest.gic.redistributor(VCPUIndex(0)).pendingCount == Int(lpis / 4), "INVALL lost pending LPIs")
        return median(samples)
    }
}

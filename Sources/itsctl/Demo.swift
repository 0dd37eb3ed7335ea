import ArgumentParser
import Glibc
import ITSClient
import ITSModel
import ITSWire

/// Set by SIGINT and SIGTERM to end `itsctl demo`'s loop; read by the loop between ticks.
nonisolated(unsafe) private var demoStopRequested: sig_atomic_t = 0

private func requestDemoStop(_: Int32) { demoStopRequested = 1 }

/// `itsctl demo`: a small VMM and guest in one process, so that there is something to watch.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a demonstration VM with MSI traffic until Ctrl-C (to try itsctl stats and top).",
        discussion: """
        Plays a VMM and its guest: creates a VM, shares 16 MiB of guest RAM (a memfd), programs the LPI \
        tables and the ITS through MMIO and MAPC, MAPD and MAPTI commands in the guest's command queue, then \
        sends about RATE MSIs a second in fire-and-forget batches, device d getting d + 1 shares of them, and \
        acknowledges the LPIs on every vCPU. Ctrl-C (or --seconds) stops it and destroys the VM.
        """)

    @OptionGroup var options: SocketOptions

    @Option(name: .long, help: "vCPUs of the VM (1 to 64).")
    var vcpus: UInt16 = 4

    @Option(name: .long, help: "Devices (DeviceIDs 1 ... N, 1 to 64).")
    var devices: UInt32 = 4

    @Option(name: .long, help: "Vectors (EventIDs) per device (1 to 64).")
    var events: UInt32 = 8

    @Option(name: .long, help: "MSIs per second to send.")
    var rate: Int = 20_000

    @Option(name: .long, help: "Stop after this many seconds (default: at Ctrl-C).")
    var seconds: Double?

    func validate() throws {
        guard (1 ... 64).contains(vcpus) else { throw ValidationError("--vcpus must be 1 to 64") }
        guard (1 ... 64).contains(devices) else { throw ValidationError("--devices must be 1 to 64") }
        guard (1 ... 64).contains(events) else { throw ValidationError("--events must be 1 to 64") }
        guard (1 ... 10_000_000).contains(rate) else { throw ValidationError("--rate must be 1 to 10000000") }
        if let seconds, !(seconds > 0) { throw ValidationError("--seconds must be above 0") }
    }

    /// Guest physical layout, all inside the 16 MiB region at address 0.
    enum Layout {
        static let ramSize = 16 << 20
        static let configTable: UInt64 = 0x10_0000
        static let pendingTables: UInt64 = 0x80_0000
        static let commandQueue: UInt64 = 0x40_0000
        static let deviceTable: UInt64 = 0x50_0000
        static let collectionTable: UInt64 = 0x60_0000
        static let itts: UInt64 = 0x70_0000
    }

    func run() throws {
        let connection = try options.connect()
        let config = VMConfig(vcpuCount: vcpus, deviceIDBits: 16, eventIDBits: 16, intidBits: 16)
        let vm = try options.attempt { () throws(ITSClientError) in try connection.createVM(config) }
        let memory = try options.attempt { () throws(ITSClientError) in try ITSVM.makeGuestMemoryFile(size: Layout.ramSize) }
        defer { close(memory) }
        guard let ram = mmap(nil, Layout.ramSize, PROT_READ | PROT_WRITE, MAP_SHARED, memory, 0), ram != MAP_FAILED else {
            Terminal.printError("cannot map guest RAM: \(ITSClientError.text(errno))")
            throw ExitCode(Exit.ioError)
        }
        defer { munmap(ram, Layout.ramSize) }
        try options.attempt(vm: vm.id) { () throws(ITSClientError) in
            try vm.addMemoryRegion(fd: memory, guestAddress: 0, size: UInt64(Layout.ramSize))
            try programGuest(vm, ram: ram)
        }
        Terminal.write("demo: VM \(vm.id) with \(vcpus) vCPUs and \(devices) devices of \(events) vectors on \(options.socket); "
            + "about \(rate) MSIs/s; token \(vm.token.hex); Ctrl-C stops it\n")
        demoStopRequested = 0
        signal(SIGINT, requestDemoStop)
        signal(SIGTERM, requestDemoStop)
        let (sent, taken) = try options.attempt(vm: vm.id) { () throws(ITSClientError) in try drive(vm) }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
        try options.attempt(vm: vm.id) { () throws(ITSClientError) in try vm.destroy() }
        Terminal.write("demo: sent \(sent) MSIs, acknowledged \(taken) LPIs; VM \(vm.id) destroyed\n")
    }

    /// What the guest's driver does: LPI configuration (priority 0xA0, enabled) and pending tables,
    /// EnableLPIs on every redistributor, the ITS's queue and tables, then one collection per vCPU and
    /// every device's vectors mapped to LPIs 8192 on, spread over the collections.
    private func programGuest(_ vm: ITSVM, ram: UnsafeMutableRawPointer) throws(ITSClientError) {
        let lpis = Int(devices * events)
        // SAFETY: the configuration table (at most 64 * 64 bytes) and the command queue (at most
        // 64 + 64 + 4096 commands of 32 bytes) lie inside the 16 MiB mapping, as Layout places them.
        for n in 0 ..< lpis { ram.storeBytes(of: UInt8(0xA1), toByteOffset: Int(Layout.configTable) + n, as: UInt8.self) }
        for vcpu in 0 ..< vcpus {
            let frame = MMIOFrame.redistributor(Wire.VCPU(vcpu))
            try vm.mmioWrite(frame, offset: Redistributor.Offset.propbaser, value: Layout.configTable | 15)
            try vm.mmioWrite(frame, offset: Redistributor.Offset.pendbaser, value: Layout.pendingTables + UInt64(vcpu) << 16)
            try vm.mmioWrite(frame, offset: Redistributor.Offset.ctlr, value: 1, width: .word)
        }
        // GITS_CBASER.Size 15: a 64 KiB queue of 2048 commands.
        try vm.mmioWrite(.its, offset: ITS.Offset.cbaser, value: 1 << 63 | Layout.commandQueue | 15)
        try vm.mmioWrite(.its, offset: ITS.Offset.baser0, value: 1 << 63 | Layout.deviceTable)
        try vm.mmioWrite(.its, offset: ITS.Offset.baser0 + 8, value: 1 << 63 | Layout.collectionTable)
        try vm.mmioWrite(.its, offset: ITS.Offset.ctlr, value: 1, width: .word)
        var commands: [ITSCommand] = (0 ..< vcpus).map { .mapc(CollectionID($0), rdbase: UInt64($0), valid: true) }
        for device in 1 ... devices {
            commands.append(.mapd(DeviceID(device), ittAddress: GuestAddress(Layout.itts + UInt64(device) << 12),
                                  eventIDBits: 8, valid: true))
            for event in 0 ..< events {
                let lpi = (device - 1) * events + event
                commands.append(.mapti(DeviceID(device), EventID(event), INTID(8192 + lpi),
                                       CollectionID(UInt16(lpi % UInt32(vcpus)))))
            }
        }
        for (index, command) in commands.enumerated() {
            let words = command.encoded
            for (word, value) in [words.0, words.1, words.2, words.3].enumerated() {
                ram.storeBytes(of: value.littleEndian, toByteOffset: Int(Layout.commandQueue) + index * 32 + word * 8, as: UInt64.self)
            }
        }
        try vm.mmioWrite(.its, offset: ITS.Offset.cwriter, value: UInt64(commands.count * 32))
    }

    /// Sends MSIs in 10 ms ticks and acknowledges what they raise, until stopped. Returns the MSIs sent
    /// and the LPIs acknowledged.
    private func drive(_ vm: ITSVM) throws(ITSClientError) -> (Int, Int) {
        let start = ITSConnection.monotonicNanoseconds()
        let tick: UInt64 = 10_000_000
        let weights = (1 ... devices).map { Int($0) }
        let totalWeight = weights.reduce(0, +)
        var sent = 0
        var taken = 0
        var ticks: UInt64 = 0
        while demoStopRequested == 0 {
            let now = ITSConnection.monotonicNanoseconds()
            if let seconds, Double(now - start) / 1e9 >= seconds { break }
            let due = Int(Double(now - start) / 1e9 * Double(rate)) - sent
            var remaining = max(0, due)
            for (index, weight) in weights.enumerated() {
                let share = index == weights.count - 1 ? remaining : max(0, due) * weight / totalWeight
                for n in 0 ..< share {
                    try vm.post(deviceID: Wire.DeviceID(UInt32(index + 1)), eventID: Wire.EventID(UInt32(n) % events))
                }
                remaining -= share
                sent += share
            }
            _ = try vm.connection.sync()
            for vcpu in 0 ..< vcpus {
                while try vm.vcpu(vcpu).acknowledge() != nil { taken += 1 }
            }
            ticks += 1
            let next = start + ticks * tick
            let after = ITSConnection.monotonicNanoseconds()
            if next > after { sleep(seconds: Double(next - after) / 1e9) }
        }
        return (sent, taken)
    }
}

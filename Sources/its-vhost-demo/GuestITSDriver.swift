import ITSWire
import ToolSupport

/// What a guest's GICv3 ITS driver does, done the way the guest does it: tables and the command
/// queue in guest RAM, registers through MMIO (forwarded to itsd as MMIO_READ and MMIO_WRITE).
/// Register offsets: IHI 0069, 12.19 (ITS) and 12.11 (RD_base); commands: 5.3.
final class GuestITSDriver {
    enum Register {
        static let gitsCTLR: UInt64 = 0x0000
        static let gitsTYPER: UInt64 = 0x0008
        static let gitsCBASER: UInt64 = 0x0080
        static let gitsCWRITER: UInt64 = 0x0088
        static let gitsCREADR: UInt64 = 0x0090
        static func gitsBASER(_ n: UInt64) -> UInt64 { 0x0100 + 8 * n }
        static let gicrCTLR: UInt64 = 0x0000
        static let gicrTYPER: UInt64 = 0x0008
        static let gicrPROPBASER: UInt64 = 0x0070
        static let gicrPENDBASER: UInt64 = 0x0078
    }

    enum Command: UInt64 {
        case movi = 0x01
        case sync = 0x05
        case mapd = 0x08
        case mapc = 0x09
        case mapti = 0x0A
    }

    static let valid: UInt64 = 1 << 63
    static let baserTypeDevices: UInt64 = 1
    static let baserTypeCollections: UInt64 = 4
    static let pendbaserPTZ: UInt64 = 1 << 62
    /// Priority 0xA0, bit 1 (RES1), Enable.
    static let lpiConfiguration: UInt8 = 0xA3

    /// Where MMIO goes; a migration points it at the destination VM.
    var link: ITSLink
    private let ram: GuestRAM
    private let vcpus: Int
    private let intidBits: UInt64
    /// The byte offset of the next command in the queue (GITS_CWRITER as the driver last wrote it).
    private var writer: UInt64 = 0
    /// Each vCPU's RDbase as the ITS wants it (GITS_TYPER.PTA 0: the processor number).
    private var rdbase: [UInt64] = []

    /// How long GITS_CREADR may take to reach GITS_CWRITER.
    private let timeoutSeconds: Int

    init(link: ITSLink, ram: GuestRAM, vcpus: Int, intidBits: UInt8, timeoutSeconds: Int) {
        self.link = link
        self.timeoutSeconds = timeoutSeconds
        self.ram = ram
        self.vcpus = vcpus
        self.intidBits = UInt64(intidBits)
    }

    /// The redistributors' LPI setup, then the ITS's tables, command queue and enable, then one
    /// collection per vCPU (collection n on vCPU n).
    func initialize() throws(ToolError) {
        ram.fill(0, at: GuestMemoryMap.lpiConfiguration, count: Int(1 << intidBits) - 8192)
        for vcpu in 0 ..< vcpus {
            let frame = MMIOFrame.redistributor(Wire.VCPU(UInt16(vcpu)))
            let typer = try link.mmioRead(frame, offset: Register.gicrTYPER)
            guard typer & 1 == 1 else { throw ToolError("GICR_TYPER.PLPIS is 0 on vCPU \(vcpu)") }
            rdbase.append((typer >> 8) & 0xFFFF)
            let pending = GuestMemoryMap.pendingTables + UInt64(vcpu) * GuestMemoryMap.pendingTableStride
            try link.mmioWrite(frame, offset: Register.gicrPROPBASER, value: GuestMemoryMap.lpiConfiguration | (intidBits - 1))
            try link.mmioWrite(frame, offset: Register.gicrPENDBASER, value: pending | Self.pendbaserPTZ)
            try link.mmioWrite(frame, offset: Register.gicrCTLR, value: 1, width: .word)
            guard try link.mmioRead(frame, offset: Register.gicrCTLR, width: .word) & 1 == 1 else {
                throw ToolError("GICR_CTLR.EnableLPIs did not stick on vCPU \(vcpu)")
            }
        }

        let typer = try link.mmioRead(.its, offset: Register.gitsTYPER)
        guard typer & (1 << 19) == 0 else { throw ToolError("GITS_TYPER.PTA is 1; this driver targets processor numbers") }
        var tables: Set<UInt64> = []
        for n: UInt64 in 0 ..< 8 {
            let baser = try link.mmioRead(.its, offset: Register.gitsBASER(n))
            let base: UInt64
            switch (baser >> 56) & 0x7 {
            case Self.baserTypeDevices: base = GuestMemoryMap.deviceTable
            case Self.baserTypeCollections: base = GuestMemoryMap.collectionTable
            default: continue
            }
            ram.fill(0, at: base, count: 4096)
            // Valid, 4 KiB pages, flat, one page.
            try link.mmioWrite(.its, offset: Register.gitsBASER(n), value: Self.valid | base)
            tables.insert((baser >> 56) & 0x7)
        }
        guard tables == [Self.baserTypeDevices, Self.baserTypeCollections] else {
            throw ToolError("GITS_BASER<n> lacks a Device or a Collection table")
        }
        ram.fill(0, at: GuestMemoryMap.commandQueue, count: Int(GuestMemoryMap.commandQueueBytes))
        try link.mmioWrite(.its, offset: Register.gitsCBASER, value: Self.valid | GuestMemoryMap.commandQueue)
        writer = try link.mmioRead(.its, offset: Register.gitsCWRITER)
        try link.mmioWrite(.its, offset: Register.gitsCTLR, value: 1, width: .word)
        guard try link.mmioRead(.its, offset: Register.gitsCTLR, width: .word) & 1 == 1 else {
            throw ToolError("GITS_CTLR.Enabled did not stick")
        }
        for vcpu in 0 ..< vcpus { queue(.mapc, dw2: Self.valid | rdbase[vcpu] << 16 | UInt64(vcpu)) }
        try execute()
    }

    /// Maps `deviceID` with room for `eventBits` bits of EventID (its ITT at `GuestMemoryMap.itt`),
    /// and `eventID` to `intid` in collection `collection`; sets the LPI's configuration byte first.
    func mapEvent(deviceID: UInt32, eventBits: UInt64, eventID: UInt32, intid: UInt32, collection: UInt16) throws(ToolError) {
        ram.store(Self.lpiConfiguration, at: GuestMemoryMap.lpiConfiguration + UInt64(intid - 8192))
        queue(.mapd, deviceID: deviceID, dw1: eventBits - 1, dw2: Self.valid | GuestMemoryMap.itt)
        queue(.mapti, deviceID: deviceID, dw1: UInt64(intid) << 32 | UInt64(eventID), dw2: UInt64(collection))
        queue(.sync, dw2: rdbase[Int(collection)] << 16)
        try execute()
    }

    /// MOVI: the event's LPI moves to `collection` with its pending state; SYNC on the new target.
    func move(deviceID: UInt32, eventID: UInt32, to collection: UInt16) throws(ToolError) {
        queue(.movi, deviceID: deviceID, dw1: UInt64(eventID), dw2: UInt64(collection))
        queue(.sync, dw2: rdbase[Int(collection)] << 16)
        try execute()
    }

    /// Writes one 32-byte command at the driver's write offset, wrapping at the end of the queue.
    private func queue(_ command: Command, deviceID: UInt32 = 0, dw1: UInt64 = 0, dw2: UInt64 = 0) {
        let words = [UInt64(deviceID) << 32 | command.rawValue, dw1, dw2, 0]
        for (index, word) in words.enumerated() {
            ram.store(word, at: GuestMemoryMap.commandQueue + writer + 8 * UInt64(index))
        }
        writer = (writer + 32) % GuestMemoryMap.commandQueueBytes
    }

    /// Publishes the queued commands (GITS_CWRITER) and waits for GITS_CREADR to reach them; a stall
    /// (CREADR.Stalled) or the timeout is an error.
    private func execute() throws(ToolError) {
        try link.mmioWrite(.its, offset: Register.gitsCWRITER, value: writer)
        let deadline = monotonicNanoseconds() + UInt64(timeoutSeconds) * 1_000_000_000
        while true {
            let reader = try link.mmioRead(.its, offset: Register.gitsCREADR)
            if reader == writer { return }
            guard reader & 1 == 0 else {
                throw ToolError("GITS_CREADR.Stalled at offset 0x\(String(reader & ~1, radix: 16))")
            }
            guard monotonicNanoseconds() < deadline else {
                throw ToolError("GITS_CREADR is 0x\(String(reader, radix: 16)) after \(timeoutSeconds) s, "
                    + "GITS_CWRITER 0x\(String(writer, radix: 16))")
            }
            sleepMilliseconds(1)
        }
    }
}

// The guest side of a load run: guest RAM in a memfd shared with itsd (ADD_MEM_REGION), laid out and
// programmed the way KVM's vgic_lpi_stress guest does it, through guest memory and MMIO only:
// LPI configuration and pending tables, GICR_PROPBASER/PENDBASER, EnableLPIs, GITS_BASER<n> for the
// Device and Collection tables, GITS_CBASER, then MAPC per vCPU, MAPD per device, MAPTI per event
// (INTID 8192 + n, round robin over the collections), INVALL per collection and SYNC per vCPU through
// the command queue, CWRITER, and CREADR polled until the ITS has read every command.
import CITSSupport
import Glibc
import ITSModel
import ITSWire
import ToolSupport

/// The shape of the load: vgic_lpi_stress's -v, -d and -e.
struct Workload: Sendable {
    let vcpus: Int
    let devices: Int
    let events: Int

    /// LPIs mapped: one per (device, event).
    var lpiCount: Int { devices * events }

    /// LPI `n` is event `n % events` of device `n / events`, INTID 8192 + n, collection (and vCPU) n % vcpus.
    @inline(__always) func vcpu(ofLPI n: Int) -> Int { n % vcpus }
    @inline(__always) func device(ofLPI n: Int) -> UInt32 { UInt32(n / events) }
    @inline(__always) func event(ofLPI n: Int) -> UInt32 { UInt32(n % events) }

    /// INTID width: the smallest of 14 ... 32 bits that holds 8192 + lpiCount INTIDs.
    var intidBits: Int { max(14, Self.bits(toHold: 8192 + lpiCount)) }
    /// EventID bits of each device's ITT (MAPD Size + 1).
    var ittEventBits: Int { max(1, Self.bits(toHold: events)) }

    /// Bits needed to number `count` values 0 ..< count.
    static func bits(toHold count: Int) -> Int {
        count <= 1 ? 0 : Int.bitWidth - (count - 1).leadingZeroBitCount
    }
}

/// Guest physical layout; guest address = offset in the memfd.
struct GuestLayout {
    static let align: UInt64 = 0x1_0000
    static let queueBytes: UInt64 = 0x1_0000          // 16 pages of 4 KiB: 2048 commands
    let configTable: UInt64
    let pendingTables: UInt64                          // one per vCPU, `pendingStride` apart
    let pendingStride: UInt64
    let commandQueue: UInt64
    let collectionTable: UInt64
    let deviceTable: UInt64
    let deviceTablePages: UInt64                       // of 64 KiB
    let itts: UInt64
    let ittStride: UInt64
    let size: UInt64

    init(_ workload: Workload) {
        func round(_ value: UInt64, _ to: UInt64) -> UInt64 { (value + to - 1) / to * to }
        let intids = UInt64(1) << UInt64(workload.intidBits)
        var cursor = Self.align
        configTable = cursor
        cursor = round(cursor + intids - 8192, Self.align)
        pendingTables = cursor
        pendingStride = round(intids / 8, Self.align)
        cursor += pendingStride * UInt64(workload.vcpus)
        commandQueue = cursor
        cursor += Self.queueBytes
        collectionTable = cursor
        cursor += Self.align
        deviceTable = cursor
        deviceTablePages = max(1, round(UInt64(workload.devices) * 8, Self.align) / Self.align)
        cursor += deviceTablePages * Self.align
        itts = cursor
        ittStride = round((UInt64(1) << UInt64(workload.ittEventBits)) * 8, 256)
        cursor += ittStride * UInt64(workload.devices)
        size = round(cursor, 2 << 20)
    }
}

/// One VM driven by its-load: its id and token, its RAM, and the vCPUs' notify eventfds.
final class GuestVM {
    let workload: Workload
    let layout: GuestLayout
    let memfd: Int32
    let ram: UnsafeMutableRawPointer
    private(set) var vm = VMID(rawValue: 0)
    private(set) var token = VMToken(high: 0, low: 0)
    /// Non-blocking eventfds given to SET_VCPU_NOTIFY, one per vCPU.
    private(set) var notifyFDs: [Int32] = []
    /// The vCPUs' acknowledge slots (SET_ACK_SLOT), one cache line apart in one sealed memfd, when
    /// the consumers take LPIs from them; else nil.
    private(set) var slots: AcknowledgeSlots?

    init(_ workload: Workload) throws {
        self.workload = workload
        layout = GuestLayout(workload)
        (memfd, ram) = try mapSharedMemoryFile("its-load-guest", length: Int(layout.size), seals: its_seal_shrink())
    }

    deinit {
        munmap(ram, Int(layout.size))
        close(memfd)
        for fd in notifyFDs { close(fd) }
    }

    /// Creates the VM on `connection`, shares the RAM, gives each vCPU a notify eventfd and, with
    /// `ackSlots`, an armed acknowledge slot.
    func create(on connection: WireConnection, ackSlots: Bool) throws {
        let config = VMConfig(vcpuCount: UInt16(workload.vcpus), deviceIDBits: 16, eventIDBits: 16,
                              intidBits: UInt8(workload.intidBits))
        guard case .createVMReply(let id, let token) = try connection.call(.createVM(config)) else {
            throw ToolError("CREATE_VM: unexpected reply")
        }
        vm = id
        self.token = token
        _ = try connection.call(.addMemRegion(MemRegion(vm: id, guestAddress: 0, size: layout.size, fileOffset: 0)),
                                fd: memfd)
        for vcpu in 0 ..< workload.vcpus {
            let fd = try makeEventFD(nonblocking: true)
            notifyFDs.append(fd)
            _ = try connection.call(.setVCPUNotify(id, Wire.VCPU(rawValue: UInt16(vcpu))), fd: fd)
        }
        guard ackSlots else { return }
        let slots = try AcknowledgeSlots(count: workload.vcpus)
        self.slots = slots
        for vcpu in 0 ..< workload.vcpus {
            slots.word(vcpu).pointee = AckSlotWord.armed(priorityMask: 0xFF).rawValue
            _ = try connection.call(.setAckSlot(id, Wire.VCPU(rawValue: UInt16(vcpu)), offset: UInt64(vcpu * AcknowledgeSlots.stride)),
                                    fd: slots.memfd)
        }
    }

    /// Attaches another connection (an injector's or a consumer's) to the VM.
    func attach(_ connection: WireConnection) throws {
        _ = try connection.call(.attachVM(vm, token: token))
    }

    private func mmioWrite(_ connection: WireConnection, _ frame: MMIOFrame, _ offset: UInt64, _ value: UInt64,
                           width: ITSWire.MMIOWidth = .doubleword) throws {
        _ = try connection.call(.mmioWrite(MMIOAccess(vm: vm, frame: frame, width: width, offset: offset),
                                           value: value, deviceID: Wire.DeviceID(rawValue: 0)))
    }

    private func mmioRead(_ connection: WireConnection, _ frame: MMIOFrame, _ offset: UInt64) throws -> UInt64 {
        guard case .mmioReadReply(let value) = try connection.call(
            .mmioRead(MMIOAccess(vm: vm, frame: frame, width: .doubleword, offset: offset))) else {
            throw ToolError("MMIO_READ: unexpected reply")
        }
        return value
    }

    /// Programs the redistributors and the ITS and maps every LPI; returns the commands issued.
    @discardableResult
    func program(on connection: WireConnection) throws -> Int {
        // LPI configuration: priority 0xA0, Group 1, enabled, for every mapped INTID.
        memset(ram + Int(layout.configTable), 0xA3, workload.lpiCount)
        for vcpu in 0 ..< workload.vcpus {
            let rd = MMIOFrame.redistributor(Wire.VCPU(rawValue: UInt16(vcpu)))
            try mmioWrite(connection, rd, Redistributor.Offset.propbaser,
                          layout.configTable | UInt64(workload.intidBits - 1))
            try mmioWrite(connection, rd, Redistributor.Offset.pendbaser,
                          (layout.pendingTables + UInt64(vcpu) * layout.pendingStride) | 1 << 62)
            try mmioWrite(connection, rd, Redistributor.Offset.ctlr, 1, width: .word)
        }
        // Device table: flat, 64 KiB pages; Collection table: one 4 KiB page (512 ICIDs).
        try mmioWrite(connection, .its, ITS.Offset.baser0,
                      1 << 63 | 2 << 8 | layout.deviceTable | (layout.deviceTablePages - 1))
        try mmioWrite(connection, .its, ITS.Offset.baser0 + 8, 1 << 63 | layout.collectionTable)
        try mmioWrite(connection, .its, ITS.Offset.cbaser, 1 << 63 | layout.commandQueue | (GuestLayout.queueBytes / 4096 - 1))
        try mmioWrite(connection, .its, ITS.Offset.ctlr, 1, width: .word)

        var queue = CommandQueueWriter(guest: self, connection: connection)
        for vcpu in 0 ..< workload.vcpus {
            try queue.issue(.mapc(CollectionID(UInt16(vcpu)), rdbase: UInt64(vcpu), valid: true))
        }
        for device in 0 ..< workload.devices {
            try queue.issue(.mapd(DeviceID(UInt32(device)),
                                  ittAddress: GuestAddress(layout.itts + UInt64(device) * layout.ittStride),
                                  eventIDBits: workload.ittEventBits, valid: true))
        }
        for n in 0 ..< workload.lpiCount {
            try queue.issue(.mapti(DeviceID(workload.device(ofLPI: n)), EventID(workload.event(ofLPI: n)),
                                   INTID(8192 + UInt32(n)), CollectionID(UInt16(workload.vcpu(ofLPI: n)))))
        }
        for vcpu in 0 ..< workload.vcpus { try queue.issue(.invall(CollectionID(UInt16(vcpu)))) }
        for vcpu in 0 ..< workload.vcpus { try queue.issue(.sync(rdbase: UInt64(vcpu))) }
        try queue.publish()
        return queue.issued
    }

    /// Returns when every vCPU's lane has applied what the ITS queued for it (the mappings): an HPPI
    /// per vCPU is answered by its lane after everything queued before it.
    func awaitLanes(on connection: WireConnection) throws {
        for vcpu in 0 ..< workload.vcpus {
            guard case .hppiReply = try connection.call(.hppi(vm, Wire.VCPU(rawValue: UInt16(vcpu)))) else {
                throw ToolError("HPPI: unexpected reply")
            }
        }
    }

    /// Writes commands into the ring at CWRITER and publishes them when the ring is full.
    struct CommandQueueWriter {
        let guest: GuestVM
        let connection: WireConnection
        var writer: UInt64 = 0
        var unpublished = 0
        var issued = 0

        init(guest: GuestVM, connection: WireConnection) {
            self.guest = guest
            self.connection = connection
        }

        mutating func issue(_ command: ITSCommand) throws {
            let words = command.encoded
            let base = guest.ram + Int(guest.layout.commandQueue + writer)
            for (index, word) in [words.0, words.1, words.2, words.3].enumerated() {
                // SAFETY: writer < queueBytes and the queue lies inside the mapping (GuestLayout).
                base.storeBytes(of: word.littleEndian, toByteOffset: index * 8, as: UInt64.self)
            }
            writer = (writer + 32) % GuestLayout.queueBytes
            unpublished += 1
            issued += 1
            if unpublished == Int(GuestLayout.queueBytes / 32) - 1 { try publish() }
        }

        /// Writes CWRITER and polls CREADR until the ITS has consumed every command.
        mutating func publish() throws {
            guard unpublished > 0 else { return }
            try guest.mmioWrite(connection, .its, ITS.Offset.cwriter, writer)
            while true {
                let creadr = try guest.mmioRead(connection, .its, ITS.Offset.creadr)
                if creadr & 1 != 0 { throw ToolError("the ITS stalled at CREADR \(creadr & ~1)") }
                if creadr == writer { break }
                usleep(100)
            }
            // The ITS has read the commands; the lanes apply the mappings they produced behind the
            // loop. Waiting for them keeps at most one queue's worth in flight, so that the memory
            // measured after setup is the mappings' and not that of a backlog.
            try guest.awaitLanes(on: connection)
            unpublished = 0
        }
    }
}

/// The acknowledge slots of a VM's vCPUs: one sealed memfd, a slot per cache line.
final class AcknowledgeSlots {
    static let stride = 64
    let memfd: Int32
    private let memory: UnsafeMutableRawPointer
    private let length: Int

    init(count: Int) throws {
        length = max(4096, (count * Self.stride + 4095) & ~4095)
        (memfd, memory) = try mapSharedMemoryFile("its-load-ack-slots", length: length,
                                                  seals: its_seal_shrink() | its_seal_grow())
    }

    deinit {
        munmap(memory, length)
        close(memfd)
    }

    /// The slot word of `vcpu`, shared with the server: touch it only with the CITSSupport atomics
    /// once SET_ACK_SLOT has been sent.
    func word(_ vcpu: Int) -> UnsafeMutablePointer<UInt64> {
        // SAFETY: vcpu < count, so vcpu * stride + 8 <= length, and the offset is 8-byte aligned.
        (memory + vcpu * Self.stride).assumingMemoryBound(to: UInt64.self)
    }
}

/// A memfd of `length` bytes carrying `seals`, mapped shared: what the guest's RAM and the
/// acknowledge slots are made of. Nothing is left open when it throws.
private func mapSharedMemoryFile(_ name: String, length: Int, seals: Int32) throws -> (fd: Int32, memory: UnsafeMutableRawPointer) {
    let fd = its_memfd_create(name, 1)
    guard fd >= 0 else { throw ToolError.system("memfd_create") }
    /// The error of `call` (errno read first), with the descriptor closed.
    func failure(_ call: String) -> ToolError {
        let error = ToolError.system(call)
        close(fd)
        return error
    }
    guard ftruncate(fd, off_t(length)) == 0 else { throw failure("ftruncate") }
    guard its_add_seals(fd, seals) == 0 else { throw failure("F_ADD_SEALS") }
    guard let memory = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), memory != MAP_FAILED else {
        throw failure("mmap")
    }
    return (fd, memory)
}

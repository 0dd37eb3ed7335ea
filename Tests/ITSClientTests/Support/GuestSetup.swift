import CITSSupport
import Glibc
import ITSClient
import ITSModel
import ITSWire

/// Guest RAM in a memfd that the test shares with itsd, and the guest's view of the interrupt
/// controller: LPI tables, the ITS's tables and its command queue, programmed through MMIO.
///
/// Layout (16 MiB at guest address 0): LPI configuration table 0x10_0000, pending tables
/// 0x20_0000 + vcpu << 16, command queue 0x40_0000, device table 0x50_0000, collection table
/// 0x60_0000, ITTs from 0x70_0000.
final class GuestRAM {
    static let size = 16 << 20
    let fd: Int32
    let base: UnsafeMutableRawPointer
    private var queued = 0

    init() {
        fd = try! ITSVM.makeGuestMemoryFile(size: Self.size)
        base = mmap(nil, Self.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)!
    }

    deinit {
        munmap(base, Self.size)
        close(fd)
    }

    func write8(_ value: UInt8, at address: UInt64) {
        // SAFETY: callers pass addresses inside the 16 MiB mapping.
        base.storeBytes(of: value, toByteOffset: Int(address), as: UInt8.self)
    }

    func write64(_ value: UInt64, at address: UInt64) {
        // SAFETY: callers pass 8-byte aligned addresses inside the 16 MiB mapping.
        base.storeBytes(of: value.littleEndian, toByteOffset: Int(address), as: UInt64.self)
    }

    /// Registers the RAM with the VM, then programs the interrupt controller as `program` does.
    func attach(to vm: ITSVM) throws {
        try vm.addMemoryRegion(fd: fd, guestAddress: 0, size: UInt64(Self.size))
        try program(vm)
    }

    /// What a guest's driver does through forwarded MMIO: enables LPIs on every vCPU (64 LPIs from
    /// 8192, priority 0xA0, enabled), points the ITS at its queue and tables and enables it.
    func program(_ vm: ITSVM) throws {
        for n in 0 ..< 64 { write8(0xA3, at: 0x10_0000 + UInt64(n)) }
        for vcpu in 0 ..< vm.config.vcpuCount {
            let frame = MMIOFrame.redistributor(Wire.VCPU(vcpu))
            try vm.mmioWrite(frame, offset: Redistributor.Offset.propbaser, value: 0x10_0000 | 15)
            try vm.mmioWrite(frame, offset: Redistributor.Offset.pendbaser, value: 0x20_0000 + UInt64(vcpu) << 16 | 1 << 62)
            try vm.mmioWrite(frame, offset: Redistributor.Offset.ctlr, value: 1, width: .word)
        }
        try vm.mmioWrite(.its, offset: ITS.Offset.cbaser, value: 1 << 63 | 0x40_0000)
        try vm.mmioWrite(.its, offset: ITS.Offset.baser0, value: 1 << 63 | 0x50_0000)
        try vm.mmioWrite(.its, offset: ITS.Offset.baser0 + 8, value: 1 << 63 | 0x60_0000)
        try vm.mmioWrite(.its, offset: ITS.Offset.ctlr, value: 1, width: .word)
    }

    /// Writes `commands` into the queue after those already there and advances GITS_CWRITER with
    /// a posted write.
    func submit(_ commands: [ITSCommand], to vm: ITSVM) throws {
        for command in commands {
            let words = command.encoded
            for (word, value) in [words.0, words.1, words.2, words.3].enumerated() {
                write64(value, at: 0x40_0000 + UInt64(queued * 32 + word * 8))
            }
            queued += 1
        }
        try vm.mmioWrite(.its, offset: ITS.Offset.cwriter, value: UInt64(queued * 32), posted: true)
    }

    /// MAPC collection `vcpu` -> vCPU `vcpu` for each vCPU, then MAPD `device` and MAPTI events
    /// 0 ..< `events` -> LPIs 8192 + `firstLPI` + event on collection (event % vCPUs).
    func mapDevice(_ device: UInt32, events: UInt32, firstLPI: UInt32 = 0, ittSlot: UInt64 = 0, on vm: ITSVM) throws {
        var commands: [ITSCommand] = (0 ..< vm.config.vcpuCount).map {
            .mapc(CollectionID($0), rdbase: UInt64($0), valid: true)
        }
        commands.append(.mapd(DeviceID(device), ittAddress: GuestAddress(0x70_0000 + ittSlot * 0x1_0000), eventIDBits: 8, valid: true))
        for event in 0 ..< events {
            commands.append(.mapti(DeviceID(device), EventID(event), INTID(8192 + firstLPI + event),
                                   CollectionID(UInt16(event % UInt32(vm.config.vcpuCount)))))
        }
        try submit(commands, to: vm)
    }
}

/// Waits until `condition` holds, polling every 5 ms for at most `seconds`.
func eventually(seconds: Double = 5, _ condition: () throws -> Bool) rethrows -> Bool {
    for _ in 0 ..< Int(seconds * 200) {
        if try condition() { return true }
        usleep(5_000)
    }
    return try condition()
}

import CITSSupport
import Glibc
import ToolSupport

/// The demo guest's RAM: one memfd mapped shared at guest physical address 0, so that itsd (through
/// ADD_MEM_REGION) and the vhost-user back-end (through SET_MEM_TABLE) see the same bytes the
/// "guest driver" in this process writes.
///
/// Every access is checked against the size; an access outside RAM is a bug of the demo and traps.
final class GuestRAM {
    /// The memfd; shared with itsd and the back-end, kept open for back-end reconnects.
    let fd: Int32
    let size: UInt64
    private let base: UnsafeMutableRawPointer

    /// A memfd of `size` bytes (a multiple of 4 KiB), sealed against shrinking, mapped shared.
    init(size: UInt64) throws(ToolError) {
        precondition(size > 0 && size % 4096 == 0, "guest RAM is whole 4 KiB pages")
        self.size = size
        fd = its_memfd_create("its-vhost-demo-guest-ram", 1)
        guard fd >= 0 else { throw .system("memfd_create") }
        guard ftruncate(fd, off_t(size)) == 0 else { throw .system("ftruncate guest RAM") }
        guard its_add_seals(fd, its_seal_shrink()) == 0 else { throw .system("F_ADD_SEALS F_SEAL_SHRINK") }
        guard let mapped = mmap(nil, Int(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0),
              mapped != MAP_FAILED else { throw .system("mmap guest RAM") }
        base = mapped
    }

    deinit {
        munmap(base, Int(size))
        close(fd)
    }

    /// The front-end's own address of guest physical address `gpa`: what vhost-user calls the
    /// user address (SET_MEM_TABLE's userspace_addr, SET_VRING_ADDR's ring addresses).
    func userAddress(of gpa: UInt64) -> UInt64 {
        precondition(gpa <= size, "guest address 0x\(String(gpa, radix: 16)) beyond RAM")
        return UInt64(UInt(bitPattern: base)) + gpa
    }

    private func pointer(_ gpa: UInt64, _ count: Int) -> UnsafeMutableRawPointer {
        precondition(count >= 0 && gpa <= size && UInt64(count) <= size - gpa,
                     "guest access of \(count) bytes at 0x\(String(gpa, radix: 16)) beyond RAM")
        return base + Int(gpa)
    }

    func load<T: FixedWidthInteger>(_ type: T.Type, at gpa: UInt64) -> T {
        T(littleEndian: pointer(gpa, MemoryLayout<T>.size).loadUnaligned(as: T.self))
    }

    func store<T: FixedWidthInteger>(_ value: T, at gpa: UInt64) {
        pointer(gpa, MemoryLayout<T>.size).storeBytes(of: value.littleEndian, as: T.self)
    }

    /// Sets `count` bytes at `gpa` to `byte`.
    func fill(_ byte: UInt8, at gpa: UInt64, count: Int) {
        pointer(gpa, count).initializeMemory(as: UInt8.self, repeating: byte, count: count)
    }
}

import CITSSupport
import Glibc
import ITSModel
import Testing
@testable import ITSServer

/// A memfd of `size` bytes, sealed against shrinking unless `seal` is false.
func makeMemfd(size: Int, seal: Bool = true) -> Int32 {
    let fd = its_memfd_create("itsd-test", 1)
    precondition(fd >= 0 && ftruncate(fd, off_t(size)) == 0)
    if seal { precondition(its_add_seals(fd, its_seal_shrink()) == 0) }
    return fd
}

@Suite struct MappedGuestMemoryTests {
    @Test func readsAndWritesGoToTheSharedMapping() throws {
        let fd = makeMemfd(size: 1 << 20)
        defer { close(fd) }
        let memory = MappedGuestMemory()
        #expect(memory.addRegion(base: GuestAddress(0x4000_0000), size: 1 << 19, fileOffset: 1 << 19, fd: fd) == nil)
        try memory.writeUInt64(0x1122_3344_5566_7788, at: GuestAddress(0x4000_0010))
        // The bytes are in the memfd at file offset 512K + 0x10, little-endian.
        var bytes = [UInt8](repeating: 0, count: 8)
        #expect(pread(fd, &bytes, 8, off_t((1 << 19) + 0x10)) == 8)
        #expect(bytes == [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11])
        #expect(try memory.readUInt32(at: GuestAddress(0x4000_0014)) == 0x1122_3344)
        #expect(throws: GuestMemoryFault(.unmapped, address: GuestAddress(0x4007_FFFC), length: 8)) {
            try memory.readUInt64(at: GuestAddress(0x4007_FFFC))
        }
        #expect(throws: GuestMemoryFault(.addressOverflow, address: GuestAddress(.max - 3), length: 8)) {
            try memory.readUInt64(at: GuestAddress(.max - 3))
        }
    }

    @Test func regionsAreValidated() {
        let fd = makeMemfd(size: 1 << 16)
        let unsealed = makeMemfd(size: 1 << 16, seal: false)
        defer { close(fd); close(unsealed) }
        let memory = MappedGuestMemory(maximumRegions: 2)
        #expect(memory.addRegion(base: GuestAddress(0x1001), size: 4096, fileOffset: 0, fd: fd) == (.misaligned))
        #expect(memory.addRegion(base: GuestAddress(0), size: 4095, fileOffset: 0, fd: fd) == (.misaligned))
        #expect(memory.addRegion(base: GuestAddress(0), size: 0, fileOffset: 0, fd: fd) == (.emptyOrOverflowing))
        #expect(memory.addRegion(base: GuestAddress(.max & ~0xFFF), size: 8192, fileOffset: 0, fd: fd) == (.emptyOrOverflowing))
        #expect(memory.addRegion(base: GuestAddress(0), size: 4096, fileOffset: 0, fd: unsealed) == (.notSealedAgainstShrinking))
        #expect(memory.addRegion(base: GuestAddress(0), size: 1 << 17, fileOffset: 0, fd: fd) == (.beyondFileSize(fileSize: 1 << 16)))
        #expect(memory.addRegion(base: GuestAddress(0), size: 8192, fileOffset: 0, fd: fd) == nil)
        #expect(memory.addRegion(base: GuestAddress(4096), size: 4096, fileOffset: 0, fd: fd) == (.overlaps))
        #expect(memory.addRegion(base: GuestAddress(8192), size: 4096, fileOffset: 0, fd: fd) == nil)
        #expect(memory.addRegion(base: GuestAddress(1 << 20), size: 4096, fileOffset: 0, fd: fd) == (.tooManyRegions))
        #expect(!memory.removeRegion(base: GuestAddress(0), size: 4096))
        #expect(memory.removeRegion(base: GuestAddress(0), size: 8192))
        #expect(throws: GuestMemoryFault.self) { try memory.readUInt8(at: GuestAddress(0)) }
    }

    // A client cannot shrink a sealed memfd under the mapping, so the server cannot take SIGBUS.
    @Test func aSealedMemfdCannotShrink() throws {
        let fd = makeMemfd(size: 1 << 16)
        defer { close(fd) }
        let memory = MappedGuestMemory()
        _ = memory.addRegion(base: GuestAddress(0), size: 1 << 16, fileOffset: 0, fd: fd)
        #expect(ftruncate(fd, 4096) == -1 && errno == EPERM)
        try memory.writeUInt8(7, at: GuestAddress(0xFFFF))
        #expect(try memory.readUInt8(at: GuestAddress(0xFFFF)) == 7)
    }
}

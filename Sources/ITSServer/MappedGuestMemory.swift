import CITSSupport
import Glibc
import ITSModel

/// A VM's guest RAM as the server sees it: memfd ranges mapped shared, at guest physical addresses.
///
/// A region's fd must carry F_SEAL_SHRINK so that no client can truncate it under the mapping (a
/// shrunk memfd would raise SIGBUS on access); its size is checked against the region.
///
/// - Context: regions are added and removed on the loop thread only. Reads and writes may come
///   from the loop thread and the VM's lanes at the same time, as the guest's own accesses do; they
///   copy bytes and never keep pointers. A region is unmapped only when no other thread can be
///   inside it (the loop removes it from the table first and the lanes are quiesced by the caller).
public final class MappedGuestMemory: GuestMemory, @unchecked Sendable {
    // @unchecked Sendable: `regions` is only replaced (never mutated in place) on the loop thread;
    // the caller ensures no lane is reading when a region is removed (see the Context above).

    public struct Region: @unchecked Sendable {
        // @unchecked Sendable: `pointer` is the address of a shared mapping, valid for `size` bytes
        // for as long as the region is in `regions`; it is copied through, never freed, by holders.
        public let base: GuestAddress
        public let size: UInt64
        public let fileOffset: UInt64
        let pointer: UnsafeMutableRawPointer
    }

    /// Why a region was refused.
    public enum RegionError: Error, Hashable, Sendable {
        case misaligned
        case emptyOrOverflowing
        case overlaps
        case beyondFileSize(fileSize: UInt64)
        case notSealedAgainstShrinking
        case tooManyRegions
        case system(SystemError)
    }

    public static let pageSize: UInt64 = 4096
    public let maximumRegions: Int

    public private(set) var regions: [Region] = []

    public init(maximumRegions: Int = 64) {
        self.maximumRegions = maximumRegions
    }

    deinit {
        for region in regions { munmap(region.pointer, Int(region.size)) }
    }

    /// Maps `size` bytes of `fd` from `fileOffset` at guest address `base`. The fd is not kept.
    /// Returns nil when mapped, or why the region was refused (nothing changed).
    /// - Context: the loop thread.
    public func addRegion(base: GuestAddress, size: UInt64, fileOffset: UInt64, fd: Int32) -> RegionError? {
        guard base.isAligned(to: Self.pageSize), size % Self.pageSize == 0, fileOffset % Self.pageSize == 0 else {
            return .misaligned
        }
        guard size > 0, let last = base.adding(size - 1), fileOffset.addingReportingOverflow(size).overflow == false,
              size <= UInt64(Int.max)
        else { return .emptyOrOverflowing }
        guard regions.count < maximumRegions else { return .tooManyRegions }
        for region in regions where base.rawValue <= region.base.rawValue + (region.size - 1) && region.base <= last {
            return .overlaps
        }
        let seals = its_get_seals(fd)
        guard seals >= 0, seals & its_seal_shrink() != 0 else { return .notSealedAgainstShrinking }
        var status = stat()
        guard fstat(fd, &status) == 0 else { return .system(.last("fstat")) }
        guard UInt64(status.st_size) >= fileOffset + size else {
            return .beyondFileSize(fileSize: UInt64(status.st_size))
        }
        guard let pointer = mmap(nil, Int(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(fileOffset)),
              pointer != MAP_FAILED
        else { return .system(.last("mmap")) }
        var updated = regions
        updated.append(Region(base: base, size: size, fileOffset: fileOffset, pointer: pointer))
        updated.sort { $0.base < $1.base }
        regions = updated
        return nil
    }

    /// Unmaps the region at exactly `base` with exactly `size`. Returns false when there is none.
    /// - Context: the loop thread, with no lane able to access this memory.
    public func removeRegion(base: GuestAddress, size: UInt64) -> Bool {
        guard let index = regions.firstIndex(where: { $0.base == base && $0.size == size }) else { return false }
        let region = regions[index]
        var updated = regions
        updated.remove(at: index)
        regions = updated
        munmap(region.pointer, Int(region.size))
        return true
    }

    /// The region holding all of `[address, address + length)` and the offset in it.
    @inline(__always)
    func locate(_ address: GuestAddress, length: Int) throws(GuestMemoryFault) -> (UnsafeMutableRawPointer, Int) {
        let regions = self.regions
        for region in regions {
            if let offset = address.offset(from: region.base), offset < region.size, region.size - offset >= UInt64(length) {
                return (region.pointer, Int(offset))
            }
        }
        if length > 0, address.adding(UInt64(length) - 1) == nil {
            throw GuestMemoryFault(.addressOverflow, address: address, length: length)
        }
        throw GuestMemoryFault(.unmapped, address: address, length: length)
    }

    public func read(at address: GuestAddress, into buffer: UnsafeMutableRawBufferPointer) throws(GuestMemoryFault) {
        let (pointer, offset) = try locate(address, length: buffer.count)
        // SAFETY: locate() proved [offset, offset + count) lies inside a mapped region.
        buffer.copyMemory(from: UnsafeRawBufferPointer(start: pointer + offset, count: buffer.count))
    }

    public func write(at address: GuestAddress, from bytes: UnsafeRawBufferPointer) throws(GuestMemoryFault) {
        let (pointer, offset) = try locate(address, length: bytes.count)
        // SAFETY: as in read(at:into:).
        UnsafeMutableRawBufferPointer(start: pointer + offset, count: bytes.count).copyMemory(from: bytes)
    }
}

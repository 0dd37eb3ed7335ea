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
///   copy bytes and never keep pointers. Removal is two steps: ``detachRegion(base:size:)`` takes
///   the region out of the table (no new access can find it), and ``unmap(_:)`` unmaps it once no
///   thread can still be copying from it — the server waits for a barrier through every lane.
/// - Lock order: `lock` is a leaf, held only while the table is read or replaced.
public final class MappedGuestMemory: GuestMemory, @unchecked Sendable {
    // @unchecked Sendable: `regions` is read and replaced only with `lock` held.
    private let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
        return lock
    }()

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

    private var table: [Region] = []

    /// The regions, sorted by base address.
    public var regions: [Region] {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return table
    }

    public init(maximumRegions: Int = 64) {
        self.maximumRegions = maximumRegions
    }

    deinit {
        for region in table { munmap(region.pointer, Int(region.size)) }
        pthread_mutex_destroy(lock)
        lock.deallocate()
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
        let current = regions
        guard current.count < maximumRegions else { return .tooManyRegions }
        for region in current where base.rawValue <= region.base.rawValue + (region.size - 1) && region.base <= last {
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
        pthread_mutex_lock(lock)
        table.append(Region(base: base, size: size, fileOffset: fileOffset, pointer: pointer))
        table.sort { $0.base < $1.base }
        pthread_mutex_unlock(lock)
        return nil
    }

    /// Takes the region at exactly `base` with exactly `size` out of the table, without unmapping
    /// it: accesses already copying from it may finish. Returns nil when there is none.
    /// - Context: the loop thread.
    public func detachRegion(base: GuestAddress, size: UInt64) -> Region? {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        guard let index = table.firstIndex(where: { $0.base == base && $0.size == size }) else { return nil }
        return table.remove(at: index)
    }

    /// Unmaps a detached region. - Context: the loop thread, once no thread can be copying from it.
    public func unmap(_ region: Region) {
        munmap(region.pointer, Int(region.size))
    }

    /// Detaches and unmaps at once, for a memory no other thread uses. Returns false when there is
    /// no such region.
    public func removeRegion(base: GuestAddress, size: UInt64) -> Bool {
        guard let region = detachRegion(base: base, size: size) else { return false }
        unmap(region)
        return true
    }

    /// The region holding all of `[address, address + length)` and the offset in it.
    @inline(__always)
    func locate(_ address: GuestAddress, length: Int) throws(GuestMemoryFault) -> (UnsafeMutableRawPointer, Int) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        for region in table {
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

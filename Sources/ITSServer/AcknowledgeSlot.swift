import CITSSupport
import Glibc
import ITSModel
import ITSWire

/// A vCPU's acknowledge slot (Protocol/PROTOCOL.md, section 6.16b): one 64-bit word in memory the
/// VMM shares, into which the vCPU's lane acknowledges the next deliverable LPI while the VMM has it
/// ARMED. The mapping is the page that holds the word; it is unmapped with the last reference.
/// - Context: made on the loop thread, then owned by the vCPU's lane (``LaneRedistributor``); its
/// `@unchecked Sendable` is that hand-over, after which only the lane touches `lastMask`.
public final class AcknowledgeSlot: Hashable, @unchecked Sendable {
    /// Why SET_ACK_SLOT refused a descriptor: BAD_FD with the detail of PROTOCOL.md 6.16b.
    public enum Refusal: UInt32, Error {
        case notMappable = 1
        case notSealedAgainstShrinking = 2
        case beyondFileSize = 3

        /// The text of the BAD_FD error reply.
        var explanation: String {
            switch self {
            case .notMappable: "the descriptor cannot be mapped shared"
            case .notSealedAgainstShrinking: "the descriptor has no F_SEAL_SHRINK"
            case .beyondFileSize: "the file ends before the slot's 8 bytes"
            }
        }
    }

    private let page: UnsafeMutableRawPointer
    private let pageLength: Int
    /// The word, 8-byte aligned inside `page`.
    private let word: UnsafeMutablePointer<UInt64>
    /// The priority mask of the last ARMED word the lane saw: what `more` is judged against while
    /// the slot is not ARMED (0xFF before any, which admits every LPI priority).
    var lastMask = Priority(0xFF)

    /// Maps the page of `fd` that holds the word at `offset` (a multiple of 8). The fd is not kept.
    /// - Context: the loop thread.
    public init(fd: Int32, offset: UInt64) throws(Refusal) {
        let seals = its_get_seals(fd)
        guard seals >= 0 else { throw .notMappable }
        guard seals & its_seal_shrink() != 0 else { throw .notSealedAgainstShrinking }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw .notMappable }
        let (end, overflow) = offset.addingReportingOverflow(8)
        guard !overflow, status.st_size >= 0, end <= UInt64(status.st_size) else { throw .beyondFileSize }
        let pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        // A huge-page file (hugetlbfs, whose block is the huge page) would map and unmap in huge
        // pages, not in the one page kept here.
        guard UInt64(status.st_blksize) <= pageSize else { throw .notMappable }
        let pageOffset = offset - offset % pageSize
        let within = Int(offset - pageOffset)
        guard let mapped = mmap(nil, Int(pageSize), PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(pageOffset)),
              mapped != MAP_FAILED
        else { throw .notMappable }
        page = mapped
        pageLength = Int(pageSize)
        // SAFETY: `within` < the page length, is a multiple of 8 (offset and the page size are), and
        // the file holds the 8 bytes (checked above; F_SEAL_SHRINK keeps it so), so the word lies in
        // the mapping, aligned for atomic 8-byte access.
        word = (mapped + within).assumingMemoryBound(to: UInt64.self)
    }

    deinit { munmap(page, pageLength) }

    public static func == (a: AcknowledgeSlot, b: AcknowledgeSlot) -> Bool { a === b }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }

    /// The word as it is now (acquire). The word is little-endian in memory, as the protocol says.
    @inline(__always)
    func load() -> AckSlotWord { AckSlotWord(rawValue: UInt64(littleEndian: its_atomic_load_u64(word))) }

    /// Replaces `expected` by `desired` if the word still holds `expected`; returns the word found.
    @inline(__always)
    func compareExchange(_ expected: AckSlotWord, _ desired: AckSlotWord) -> (exchanged: Bool, found: AckSlotWord) {
        var found = expected.rawValue.littleEndian
        let exchanged = its_atomic_cas_u64(word, &found, desired.rawValue.littleEndian) != 0
        return (exchanged, AckSlotWord(rawValue: UInt64(littleEndian: found)))
    }

    /// Sets `more` whatever else the word holds: the one change that cannot lose a race with the VMM.
    /// Returns the word it replaced.
    @inline(__always)
    func setMore() -> AckSlotWord {
        AckSlotWord(rawValue: UInt64(littleEndian: its_atomic_fetch_or_u64(word, AckSlotWord.moreBit.littleEndian)))
    }
}

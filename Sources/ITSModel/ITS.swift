/// The Interrupt Translation Service (IHI 0069, chapter 5.3 and 12.19): its register frame, its
/// command queue in guest memory, and the translation of (DeviceID, EventID) into an LPI on a vCPU.
///
/// The ITS keeps the authoritative state of its mappings — devices, events, collections — in sparse
/// indexes, and writes every Device table, Collection table and ITT entry through to guest memory as
/// hardware does, in the entry layout of KVM's table ABI revision 0, so that the guest's tables are
/// what it programmed and a save only adds the "next" offsets. Guest writes to those tables are
/// UNPREDICTABLE in the architecture and are read back only when tables are restored.
///
/// - Context: owned by the VM's loop thread; it reaches the redistributors only through
///   ``RedistributorOperations``.
public struct ITS: Sendable {
    public let configuration: Configuration

    // Registers.
    public internal(set) var enabled = false
    public internal(set) var cbaser: UInt64 = 0
    /// GITS_CWRITER.Offset in bytes.
    public internal(set) var cwriter: UInt64 = 0
    /// GITS_CREADR.Offset in bytes.
    public internal(set) var creadr: UInt64 = 0
    /// GITS_CREADR.Stalled: a guest-memory fault stopped the queue until CWRITER.Retry is written.
    public internal(set) var stalled = false
    /// The fault that stalled the queue last, for diagnostics (nil for a CREADR outside the queue).
    public internal(set) var lastStallFault: GuestMemoryFault?
    /// GITS_BASER0 (Device table) and GITS_BASER1 (Collection table).
    public internal(set) var deviceBaser: UInt64 = ITS.deviceBaserFixed
    public internal(set) var collectionBaser: UInt64 = ITS.collectionBaserFixed

    // Mappings.
    /// Mapped devices by DeviceID.
    public internal(set) var devices = SparseIndex<DeviceMapping>()
    /// Mapped events by ``eventKey(_:_:)``.
    public internal(set) var events = SparseIndex<EventMapping>()
    /// Mapped collections: ICID -> vCPU.
    public internal(set) var collections = SparseIndex<VCPUIndex>()
    /// Translation cache: ``eventKey(_:_:)`` -> (INTID, vCPU). Filled on a miss, emptied only
    /// through ``invalidateTranslations(_:)``.
    public internal(set) var translationCache = SparseIndex<Translation>()

    /// A command being carried out over several budgets (MAPD's unmapping, MAPC's retargeting).
    var operation: Operation?

    public internal(set) var counters = Counters()

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }
}

extension ITS {
    /// What an ITS is built with; fixed for its life.
    public struct Configuration: Hashable, Sendable {
        /// DeviceID bits, 1 ... 32 (GITS_TYPER.Devbits + 1).
        public var deviceIDBits: Int
        /// EventID bits, 1 ... 32 (GITS_TYPER.IDbits + 1).
        public var eventIDBits: Int
        /// INTID bits of the VM, 14 ... 32: pINTIDs must lie in 8192 ..< 2^intidBits.
        public var intidBits: Int
        /// The number of vCPUs: RDbase (a processor number) must be below it.
        public var vcpuCount: Int
        /// Translation cache entries at most; beyond it misses are served without caching.
        public var translationCacheLimit: Int
        /// Mapped devices and mapped events at most: the guest decides how many it maps, so the host
        /// memory they take is capped. A MAPD or MAPTI/MAPI that would exceed a limit is skipped and
        /// counted (`mappingLimitReached`).
        public var maximumDevices: Int
        public var maximumEvents: Int

        public init(deviceIDBits: Int = 16, eventIDBits: Int = 16, intidBits: Int = 16, vcpuCount: Int,
                    translationCacheLimit: Int = 1 << 22, maximumDevices: Int = 1 << 20, maximumEvents: Int = 1 << 22)
        {
            precondition((1 ... 32).contains(deviceIDBits) && (1 ... 32).contains(eventIDBits), "ID bits 1 ... 32")
            precondition((14 ... 32).contains(intidBits), "INTID bits 14 ... 32")
            precondition((1 ... 65536).contains(vcpuCount), "1 ... 65536 vCPUs")
            self.deviceIDBits = deviceIDBits
            self.eventIDBits = eventIDBits
            self.intidBits = intidBits
            self.vcpuCount = vcpuCount
            self.translationCacheLimit = translationCacheLimit
            self.maximumDevices = maximumDevices
            self.maximumEvents = maximumEvents
        }
    }

    /// A mapped device: its ITT and how many EventID bits it has (MAPD Size + 1).
    public struct DeviceMapping: Hashable, Sendable, BitwiseCopyable {
        public var ittAddress: GuestAddress
        public var eventIDBits: UInt8
        public init(ittAddress: GuestAddress, eventIDBits: UInt8) {
            self.ittAddress = ittAddress
            self.eventIDBits = eventIDBits
        }
    }

    /// A mapped event: its LPI and collection (an ITE).
    public struct EventMapping: Hashable, Sendable, BitwiseCopyable {
        public var intid: INTID
        public var collection: CollectionID
        public init(intid: INTID, collection: CollectionID) {
            self.intid = intid
            self.collection = collection
        }
    }

    /// Where an event's LPI goes now.
    public struct Translation: Hashable, Sendable, BitwiseCopyable {
        public var intid: INTID
        public var vcpu: VCPUIndex
        public init(intid: INTID, vcpu: VCPUIndex) {
            self.intid = intid
            self.vcpu = vcpu
        }
    }

    /// Events counted by the ITS, for stats.
    public struct Counters: Hashable, Sendable {
        public var commandsProcessed: UInt64 = 0
        /// Commands skipped for an error, by E_ITS_* code.
        public var commandErrors: [UInt32: UInt64] = [:]
        /// Unknown command numbers, skipped.
        public var unknownCommands: UInt64 = 0
        /// GICv4 commands, skipped (GITS_TYPER.Virtual is 0).
        public var virtualCommands: UInt64 = 0
        /// Times the queue stalled on a guest-memory fault.
        public var stalls: UInt64 = 0
        /// CWRITER values beyond the queue, ignored.
        public var cwriterIgnored: UInt64 = 0
        /// Translations served from the cache, and by a walk of the mappings.
        public var translationHits: UInt64 = 0
        public var translationMisses: UInt64 = 0
        /// MSIs and INTs that found no mapping (KVM's "blocked"), or the ITS disabled.
        public var translationsBlocked: UInt64 = 0
        public var translaterWritesIgnored: UInt64 = 0
        /// Register accesses ignored (RAZ/WI), as at a redistributor.
        public var mmioIgnored: UInt64 = 0
        /// Whole-cache and partial invalidations.
        public var cacheInvalidations: UInt64 = 0
        /// MAPD and MAPTI/MAPI skipped because the device or event limit was reached.
        public var mappingLimitReached: UInt64 = 0
        /// Physical commands executed (with or without an error), by command number 0x00 ... 0x0F
        /// (always ``commandNumbers`` entries); unknown and GICv4 numbers are counted above.
        public var commandsByNumber = [UInt64](repeating: 0, count: Counters.commandNumbers)

        public static let commandNumbers = 16

        public var totalCommandErrors: UInt64 { commandErrors.values.reduce(0, +) }
    }

    /// A command in progress across budgets.
    enum Operation: Hashable, Sendable {
        /// MAPD: drop every event of `device` (whose ITT was at `itt`) from key `next` on; then map
        /// the device anew if `then` is set.
        case unmapDevice(DeviceID, itt: GuestAddress, next: UInt64, then: DeviceMapping?)
        /// MAPC: move (or, with `to` nil, unmap) the LPIs of `collection`, scanning events from `next`.
        case retargetCollection(CollectionID, from: VCPUIndex?, to: VCPUIndex?, next: UInt64)
        /// SYNC: waiting until the redistributor of `vcpu` has finished an earlier INVALL or MOVALL.
        case synchronize(VCPUIndex)
    }

    /// The key of (device, event) in ``events`` and ``translationCache``: DeviceID above the
    /// configured EventID bits, so that a device's events are one contiguous key range.
    @inlinable public func eventKey(_ device: DeviceID, _ event: EventID) -> UInt64 {
        UInt64(device.rawValue) << UInt64(configuration.eventIDBits) | UInt64(event.rawValue)
    }

    /// The key range of every event `device` can have.
    func eventKeys(of device: DeviceID) -> ClosedRange<UInt64> {
        let low = eventKey(device, EventID(0))
        return low ... low | ((1 << UInt64(configuration.eventIDBits)) - 1)
    }
}

extension ITS.Counters {
    /// Every counter zero.
    public static let zero = ITS.Counters()
}

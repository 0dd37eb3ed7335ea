/// The whole state of a ``VirtualGIC`` as a plain value: the ITS's registers, mappings, translation
/// cache, command in progress and counters, and each redistributor's registers, LPIs, pending LPIs,
/// background-work cursors and counters. Restoring a snapshot reproduces the VM's interrupt state
/// exactly, so that `snapshot()` of the restored VM equals the snapshot; this is what migration
/// and re-attachment carry. Guest memory (the tables, the command queue) is not in it: it travels
/// with the VM's RAM.
///
/// Its byte image, ``image()`` and ``init(image:)`` (SnapshotImage.swift), is what SNAPSHOT_VM and
/// RESTORE_VM carry (Protocol/PROTOCOL.md 6.19): a magic, ``version``, every field, a checksum.
/// Every collection in it is an array sorted by its identifiers, with no duplicates, so that two
/// snapshots of the same state are equal, and so have the same image.
public struct VGICSnapshot: Hashable, Sendable {
    /// The layout of this value, and the format version of its image. A restore, and decoding an
    /// image, accept only this version; a change to any field of the snapshot, to what a field
    /// means, or to how the image encodes it, bumps it.
    public static let version = 2

    /// The version the snapshot was taken with.
    public var version: Int
    public var its: ITSState
    /// One per vCPU, in vCPU order.
    public var redistributors: [RedistributorState]

    public init(its: ITSState, redistributors: [RedistributorState], version: Int = VGICSnapshot.version) {
        self.version = version
        self.its = its
        self.redistributors = redistributors
    }
}

extension VGICSnapshot {
    /// The ITS (IHI 0069, 12.19 for the registers; 5.3 for the mappings the commands build).
    public struct ITSState: Hashable, Sendable {
        public var configuration: ITS.Configuration
        /// GITS_CTLR.Enabled.
        public var enabled: Bool
        public var cbaser: UInt64
        /// GITS_CWRITER.Offset and GITS_CREADR.Offset in bytes.
        public var cwriter: UInt64
        public var creadr: UInt64
        /// GITS_CREADR.Stalled, and the fault that stalled the queue.
        public var stalled: Bool
        public var lastStallFault: GuestMemoryFault?
        /// GITS_BASER0 and GITS_BASER1 as they read.
        public var deviceBaser: UInt64
        public var collectionBaser: UInt64
        /// Mapped devices by DeviceID.
        public var devices: [Device]
        /// Mapped events by (DeviceID, EventID).
        public var events: [Event]
        /// Mapped collections by ICID.
        public var collections: [Collection]
        /// The translation cache by (DeviceID, EventID); every entry is what the mappings give.
        public var translations: [CachedTranslation]
        /// The command being carried out across budgets at CREADR, if any.
        public var operation: Operation?
        public var counters: ITS.Counters

        public init(configuration: ITS.Configuration, enabled: Bool, cbaser: UInt64, cwriter: UInt64, creadr: UInt64,
                    stalled: Bool, lastStallFault: GuestMemoryFault?, deviceBaser: UInt64, collectionBaser: UInt64,
                    devices: [Device], events: [Event], collections: [Collection], translations: [CachedTranslation],
                    operation: Operation?, counters: ITS.Counters)
        {
            self.configuration = configuration
            self.enabled = enabled
            self.cbaser = cbaser
            self.cwriter = cwriter
            self.creadr = creadr
            self.stalled = stalled
            self.lastStallFault = lastStallFault
            self.deviceBaser = deviceBaser
            self.collectionBaser = collectionBaser
            self.devices = devices
            self.events = events
            self.collections = collections
            self.translations = translations
            self.operation = operation
            self.counters = counters
        }
    }

    /// A mapped device (a DTE).
    public struct Device: Hashable, Sendable {
        public var id: DeviceID
        public var mapping: ITS.DeviceMapping
        public init(_ id: DeviceID, _ mapping: ITS.DeviceMapping) {
            self.id = id
            self.mapping = mapping
        }
    }

    /// A mapped event (an ITE).
    public struct Event: Hashable, Sendable {
        public var device: DeviceID
        public var event: EventID
        public var mapping: ITS.EventMapping
        public init(_ device: DeviceID, _ event: EventID, _ mapping: ITS.EventMapping) {
            self.device = device
            self.event = event
            self.mapping = mapping
        }
    }

    /// A mapped collection (a CTE).
    public struct Collection: Hashable, Sendable {
        public var id: CollectionID
        public var vcpu: VCPUIndex
        public init(_ id: CollectionID, _ vcpu: VCPUIndex) {
            self.id = id
            self.vcpu = vcpu
        }
    }

    /// An entry of the translation cache.
    public struct CachedTranslation: Hashable, Sendable {
        public var device: DeviceID
        public var event: EventID
        public var translation: ITS.Translation
        public init(_ device: DeviceID, _ event: EventID, _ translation: ITS.Translation) {
            self.device = device
            self.event = event
            self.translation = translation
        }
    }

    /// A command in progress across budgets; it holds CREADR until it completes.
    public enum Operation: Hashable, Sendable {
        /// MAPD: the events of `device` (whose ITT was at `itt`) from `nextEvent` on are still to be
        /// dropped; then the device is mapped anew with `then`, if set.
        case unmapDevice(DeviceID, itt: GuestAddress, nextEvent: EventID, then: ITS.DeviceMapping?)
        /// MAPC: the LPIs of `collection`'s events from (`nextDevice`, `nextEvent`) on are still to
        /// be moved from `from` to `to` (mapped when `from` is nil, unmapped when `to` is nil).
        case retargetCollection(CollectionID, from: VCPUIndex?, to: VCPUIndex?, nextDevice: DeviceID, nextEvent: EventID)
        /// SYNC: waiting for the redistributor of the vCPU to finish an earlier INVALL or MOVALL.
        case synchronize(VCPUIndex)
    }

    /// One redistributor (IHI 0069, 12.11 for the registers; 5.1 for LPIs).
    public struct RedistributorState: Hashable, Sendable {
        public var configuration: Redistributor.Configuration
        /// GICR_CTLR.EnableLPIs.
        public var lpisEnabled: Bool
        /// GICR_PROPBASER and GICR_PENDBASER as they read, and GICR_PENDBASER.PTZ as last written.
        public var propbaser: UInt64
        public var pendbaser: UInt64
        public var pendingTableZero: Bool
        /// Every LPI known here by INTID: its cached configuration and how many ITS mappings route it here.
        public var lpis: [LPI]
        /// The pending LPIs in INTID order; each has an entry in ``lpis``.
        public var pending: [INTID]
        /// The next INTID of a GICR_INVALLR (or INVALL) sweep in progress.
        public var invalidateAllCursor: UInt64?
        /// The next 64-bit word of a pending-table load in progress.
        public var pendingTableLoadCursor: UInt64?
        public var counters: Redistributor.Counters

        public init(configuration: Redistributor.Configuration, lpisEnabled: Bool, propbaser: UInt64, pendbaser: UInt64,
                    pendingTableZero: Bool, lpis: [LPI], pending: [INTID], invalidateAllCursor: UInt64?,
                    pendingTableLoadCursor: UInt64?, counters: Redistributor.Counters)
        {
            self.configuration = configuration
            self.lpisEnabled = lpisEnabled
            self.propbaser = propbaser
            self.pendbaser = pendbaser
            self.pendingTableZero = pendingTableZero
            self.lpis = lpis
            self.pending = pending
            self.invalidateAllCursor = invalidateAllCursor
            self.pendingTableLoadCursor = pendingTableLoadCursor
            self.counters = counters
        }
    }

    /// An LPI known to a redistributor.
    public struct LPI: Hashable, Sendable {
        public var intid: INTID
        public var record: LPIRecord
        public init(_ intid: INTID, _ record: LPIRecord) {
            self.intid = intid
            self.record = record
        }
    }

    /// Why a snapshot was not restored. Nothing changed.
    public enum RestoreError: Error, Hashable, Sendable {
        /// The snapshot has another ``VGICSnapshot/version``.
        case unsupportedVersion(Int)
        /// ``VirtualGIC/restore(_:)``: the snapshot's configuration (ITS or redistributors) is not
        /// the VM's.
        case configurationMismatch
        /// The ITS configuration is outside what ``ITS/Configuration`` allows.
        case invalidConfiguration
        /// The number of redistributors is not the configuration's vCPU count.
        case redistributorCount(Int)
        /// A redistributor's configuration does not fit its place (vCPU number, Last, INTID bits).
        case redistributorConfiguration(VCPUIndex)
        /// A register holds bits the model never keeps (named as in IHI 0069), or an offset
        /// outside the command queue.
        case invalidRegister(String)
        /// A redistributor register holds bits the model never keeps.
        case invalidRedistributorRegister(VCPUIndex, String)
        /// A list that must be sorted by its identifiers, without duplicates, is not (named as in
        /// the snapshot: "devices", "events", ...).
        case notStrictlyAscending(String)
        /// A DeviceID beyond GITS_TYPER.Devbits, or an EventID width beyond GITS_TYPER.IDbits.
        case deviceOutOfRange(DeviceID)
        /// An event beyond its device's ITT or GITS_TYPER.IDbits, of a device that is not mapped
        /// (nor being unmapped), or with a pINTID that is not an LPI of the VM.
        case eventOutOfRange(DeviceID, EventID)
        /// A collection targets a vCPU the VM does not have.
        case collectionOutOfRange(CollectionID)
        /// A translation-cache entry is not what the mappings give.
        case staleTranslation(DeviceID, EventID)
        /// The translation cache holds more entries than the configuration allows.
        case translationCacheOverLimit
        /// The command in progress does not fit the mappings (its device still mapped, its
        /// collection mapped elsewhere, an ID out of range).
        case inconsistentOperation
        /// An LPI outside 8192 ..< 2^INTID bits.
        case lpiOutOfRange(VCPUIndex, INTID)
        /// A pending LPI with no LPI entry.
        case pendingWithoutRecord(VCPUIndex, INTID)
        /// An LPI with no ITS mapping that is not pending (such a direct LPI lives only while pending).
        case directLPINotPending(VCPUIndex, INTID)
        /// Pending LPIs, or a pending-table load, while EnableLPIs is 0.
        case pendingWhileLPIsDisabled(VCPUIndex)
    }
}

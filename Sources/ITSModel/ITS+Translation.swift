/// Translation of (DeviceID, EventID) into an LPI on a vCPU, through a translation cache.
///
/// The cache maps an event's key straight to (INTID, vCPU): a hit is one sparse-index lookup and
/// never touches guest memory. It is never stale because every change that could alter a
/// translation — DISCARD, MOVI, MAPTI over an existing event, MAPD, MAPC, MOVALL, disabling the ITS,
/// EnableLPIs going 1 -> 0, a restore — passes through ``invalidateTranslations(_:)``, the only
/// function that removes entries. (The two KVM CVEs in this area were invalidations racing cached
/// translations; here the ITS is confined to one thread and invalidation has one entry point.)
extension ITS {
    /// Why an MSI or INT raised nothing.
    public enum TranslationError: Error, Hashable, Sendable {
        /// GITS_CTLR.Enabled is 0: TRANSLATER writes are ignored.
        case disabled
        /// The DeviceID is beyond GITS_TYPER.Devbits or not mapped.
        case unmappedDevice
        /// The EventID is beyond the device's ITT or not mapped.
        case unmappedEvent
        /// The event's collection is not mapped to a redistributor.
        case unmappedCollection
    }

    /// What an invalidation covers.
    public enum InvalidationScope: Hashable, Sendable {
        case all
        case device(DeviceID)
        case event(DeviceID, EventID)
    }

    /// The translation of (device, event), from the cache or else by walking the mappings (and then
    /// cached). Counts hits, misses and blocked translations.
    /// - Context: the ITS's thread; the hot path of every MSI.
    public mutating func translate(_ device: DeviceID, _ event: EventID) -> Result<Translation, TranslationError> {
        guard enabled else {
            counters.translaterWritesIgnored &+= 1
            return .failure(.disabled)
        }
        guard UInt64(device.rawValue) >> UInt64(configuration.deviceIDBits) == 0 else {
            counters.translationsBlocked &+= 1
            return .failure(.unmappedDevice)
        }
        guard UInt64(event.rawValue) >> UInt64(configuration.eventIDBits) == 0 else {
            counters.translationsBlocked &+= 1
            return .failure(.unmappedEvent)
        }
        // The key computed here rather than by eventKey(_:_:): calling a method of `self` from this
        // mutating method copies the whole ITS value to the stack first.
        let key = UInt64(device.rawValue) << UInt64(configuration.eventIDBits) | UInt64(event.rawValue)
        if let hit = translationCache.load(key) {
            counters.translationHits &+= 1
            return .success(hit)
        }
        return translateUncached(device, event, key: key)
    }

    /// The translations of a batch of MSIs, pair by pair as ``translate(_:_:)`` would give them,
    /// written in order to the start of `translations` (which has room for `devices.count`); the
    /// pairs that do not translate are left out. Returns how many were written. Counts as
    /// ``translate(_:_:)`` does for each pair. ``translateEach(_:_:into:)`` per 64 pairs, the path
    /// the server's INJECT_BATCH takes, so that `its-bench translate` measures that path.
    /// - Context: the ITS's thread.
    public mutating func translate(_ devices: UnsafeBufferPointer<DeviceID>, _ events: UnsafeBufferPointer<EventID>,
                                   into translations: UnsafeMutableBufferPointer<Translation>) -> Int
    {
        precondition(devices.count == events.count && translations.count >= devices.count,
                     "one EventID per DeviceID and room for every translation")
        var written = 0
        var start = 0
        while start < devices.count {
            let end = min(start + Self.outcomeBatchLimit, devices.count)
            // SAFETY: written <= start, so the room left, translations.count - written, is at least
            // devices.count - start >= end - start, the pairs of this chunk.
            let outcomes = translateEach(UnsafeBufferPointer(rebasing: devices[start ..< end]),
                                         UnsafeBufferPointer(rebasing: events[start ..< end]),
                                         into: UnsafeMutableBufferPointer(rebasing: translations[written...]))
            written += outcomes.nonzeroBitCount
            start = end
        }
        return written
    }

    /// The walk behind a cache miss: device, event, collection. The translation is cached unless
    /// the event's collection is being moved by a MAPC in progress (it changes as the move proceeds).
    mutating func translateUncached(_ device: DeviceID, _ event: EventID, key: UInt64) -> Result<Translation, TranslationError> {
        counters.translationMisses += 1
        // Static, so that this mutating method does not copy the ITS to call a method of it.
        let result = Self.walk(device, event, key: key, devices: devices, events: events, collections: collections,
                               operation: operation)
        switch result {
        case .success(let found):
            if translationCache.count < configuration.translationCacheLimit, !found.moving {
                translationCache.store(found.translation, at: key)
            }
            return .success(found.translation)
        case .failure(let error):
            counters.translationsBlocked += 1
            return .failure(error)
        }
    }

    /// Resolves (device, event) through the mappings without the cache.
    ///
    /// While a MAPC is still moving its collection's LPIs (over several budgets), an event of that
    /// collection translates to the redistributor its LPI is at: the new one once the move has
    /// passed the event, the old one before. So an MSI arriving mid-move is delivered, never sent to
    /// a redistributor that does not hold its LPI yet.
    public func walk(_ device: DeviceID, _ event: EventID) -> Result<Translation, TranslationError> {
        Self.walk(device, event, key: eventKey(device, event), devices: devices, events: events, collections: collections,
                  operation: operation).map(\.translation)
    }

    /// The walk of ``walk(_:_:)``; `moving` tells whether the event's collection is being moved.
    static func walk(_ device: DeviceID, _ event: EventID, key: UInt64, devices: SparseIndex<DeviceMapping>,
                     events: SparseIndex<EventMapping>, collections: SparseIndex<VCPUIndex>, operation: Operation?)
        -> Result<(translation: Translation, moving: Bool), TranslationError>
    {
        guard let mapping = devices.load(UInt64(device.rawValue)) else { return .failure(.unmappedDevice) }
        guard UInt64(event.rawValue) >> UInt64(mapping.eventIDBits) == 0, let ite = events.load(key) else {
            return .failure(.unmappedEvent)
        }
        let target: VCPUIndex?
        let moving: Bool
        if case let .retargetCollection(collection, from, to, next) = operation, collection == ite.collection {
            target = key < next ? to : from
            moving = true
        } else {
            target = collections.load(UInt64(ite.collection.rawValue))
            moving = false
        }
        guard let vcpu = target else { return .failure(.unmappedCollection) }
        return .success((Translation(intid: ite.intid, vcpu: vcpu), moving))
    }

    /// The one place translation-cache entries are removed.
    /// - Context: the ITS's thread.
    public mutating func invalidateTranslations(_ scope: InvalidationScope) {
        guard !translationCache.isEmpty else { return }
        counters.cacheInvalidations += 1
        switch scope {
        case .all:
            translationCache.removeAll()
        case .event(let device, let event):
            translationCache.erase(eventKey(device, event))
        case .device(let device):
            var keys: [UInt64] = []
            translationCache.forEach(in: eventKeys(of: device)) { key, _ in
                keys.append(key)
                return true
            }
            for key in keys { translationCache.erase(key) }
        }
    }

    /// An MSI: the ITS's translation of a write of `event` to GITS_TRANSLATER by `device`, made
    /// pending at the target. Returns the translation, or why nothing was raised (counted).
    /// - Context: the ITS's thread.
    @discardableResult
    @inlinable public mutating func signal<R: RedistributorOperations>(_ device: DeviceID, _ event: EventID,
                                                            redistributors: inout R) -> Result<Translation, TranslationError>
    {
        let result = translate(device, event)
        if case .success(let translation) = result { redistributors.setPending(translation.intid, on: translation.vcpu) }
        return result
    }
}

/// Translation of a batch of MSIs that says which of them translated: for a caller that accounts
/// for each MSI (the server's INJECT_BATCH counts every device's injected and blocked MSIs).
extension ITS {
    /// The most pairs ``translateEach(_:_:into:)`` takes in one call: one bit of its result each.
    public static let outcomeBatchLimit = 64

    /// Translates each pair in order as ``translate(_:_:)`` would, counting as it does, and returns
    /// which translated: bit i is set when pair i did. The translations of those pairs are written
    /// in order to the start of `translations` (as many as the result has bits set).
    ///
    /// One call for up to 64 MSIs: the ITS's limits are read once, a cache hit costs a range check,
    /// a lookup and a store, and the hit counter is written once.
    /// - Context: the ITS's thread; the hot path of INJECT_BATCH.
    public mutating func translateEach(_ devices: UnsafeBufferPointer<DeviceID>, _ events: UnsafeBufferPointer<EventID>,
                                       into translations: UnsafeMutableBufferPointer<Translation>) -> UInt64
    {
        precondition(devices.count == events.count && devices.count <= Self.outcomeBatchLimit
                         && translations.count >= devices.count,
                     "one EventID per DeviceID, at most \(Self.outcomeBatchLimit), and room for every translation")
        guard enabled else {
            counters.translaterWritesIgnored &+= UInt64(devices.count)
            return 0
        }
        // translate(_:_:)'s range checks, `id >> bits == 0`, as masks of the bits that must be clear.
        let deviceBits = UInt64(configuration.deviceIDBits)
        let eventBits = UInt64(configuration.eventIDBits)
        let deviceMask: UInt64 = deviceBits >= 64 ? 0 : ~0 &<< deviceBits
        let eventMask: UInt64 = eventBits >= 64 ? 0 : ~0 &<< eventBits
        var outcomes: UInt64 = 0
        var written = 0
        var hits: UInt64 = 0
        for index in devices.indices {
            let device = devices[index]
            let event = events[index]
            // Either check failing counts the same, as in translate(_:_:).
            guard UInt64(device.rawValue) & deviceMask | UInt64(event.rawValue) & eventMask == 0 else {
                counters.translationsBlocked &+= 1
                continue
            }
            let key = UInt64(device.rawValue) << eventBits | UInt64(event.rawValue)
            // SAFETY (both stores): written <= index < devices.count <= translations.count.
            if let hit = translationCache.load(key) {
                hits &+= 1
                translations[written] = hit
            } else if case .success(let translation) = translateUncached(device, event, key: key) {
                translations[written] = translation
            } else {
                continue
            }
            written &+= 1
            outcomes |= 1 &<< UInt64(index)
        }
        counters.translationHits &+= hits
        return outcomes
    }
}

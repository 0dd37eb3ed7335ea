import ITSModel

/// `its-bench translate`: the MSI hot path of the model — translate (DeviceID, EventID) and make
/// the LPI pending at its vCPU — through ``VirtualGIC/inject(_:_:)``.
///
/// The VM has 4 vCPUs and 64 devices of 1024 events: 65,536 events mapped to distinct LPIs spread
/// over 4 collections, one per vCPU. Every LPI has configuration byte 0xA3 (priority 0xA0, Group 1,
/// enabled), as Linux and KVM's vgic_lpi_stress program them; `cached_spread_msis_per_s` repeats
/// the cached run with priorities spread over all 64 levels. MSIs come in
/// batches of 4096 events drawn at random from all 65,536 (a few repeat within a batch and merge
/// with the pending LPI); after each batch every vCPU acknowledges until nothing is pending, so
/// each batch mostly makes LPIs pending that were not.
///
/// - `cached_msis_per_s`: MSIs per second through ``VirtualGIC/injectBatch(devices:events:translations:)``
///   (the batch translated from a warm cache, then every LPI set pending), timing only the
///   injection; the acknowledges are not timed. `cached_single_msis_per_s` injects one MSI at a
///   time through ``VirtualGIC/inject(_:_:)``.
/// - `uncached_msis_per_s`: the same in a VM whose translation cache holds nothing (limit 0), so
///   that every MSI walks the device, event and collection mappings.
/// - `acks_per_s`: acknowledges per second in the drains of the cached run, timed apart.
///
/// Each figure is the median of 5 passes of 256 batches (1,048,576 MSIs).
enum TranslateBench {
    static let devices = 64
    static let eventBits = 10
    static let vcpus = 4
    static let batch = 4096
    static let batches = 256
    static let passes = 5

    struct Figures {
        var msisPerSecond: Double
        var acksPerSecond: Double
    }

    static func run(json: Bool, profile: Bool = false) {
        var rng = SplitMix64(seed: 0x7AA5_1A7E)
        let events = devices << eventBits
        var deviceIDs: [DeviceID] = []
        var eventIDs: [EventID] = []
        for _ in 0 ..< batch * batches {
            let n = Int.random(in: 0 ..< events, using: &rng)
            deviceIDs.append(DeviceID(UInt32(n >> eventBits)))
            eventIDs.append(EventID(UInt32(n & ((1 << eventBits) - 1))))
        }
        if profile {
            runProfile(deviceIDs, eventIDs)
            return
        }
        var cachedGuest = makeGuest(cacheLimit: 1 << 22)
        let cached = measure(&cachedGuest, deviceIDs, eventIDs)
        precondition(cachedGuest.gic.its.translationCache.count == events, "the cache is not warm")
        var singleGuest = makeGuest(cacheLimit: 1 << 22)
        let single = measure(&singleGuest, deviceIDs, eventIDs, batched: false)
        var spreadGuest = makeGuest(cacheLimit: 1 << 22, spreadPriorities: true)
        let spread = measure(&spreadGuest, deviceIDs, eventIDs)
        var uncachedGuest = makeGuest(cacheLimit: 0)
        let uncached = measure(&uncachedGuest, deviceIDs, eventIDs)
        precondition(uncachedGuest.gic.its.translationCache.isEmpty, "the uncached VM cached")
        if json {
            print("{\"cached_msis_per_s\": \(ITSBench.json(cached.msisPerSecond)), "
                + "\"uncached_msis_per_s\": \(ITSBench.json(uncached.msisPerSecond)), "
                + "\"cached_spread_msis_per_s\": \(ITSBench.json(spread.msisPerSecond)), "
                + "\"cached_single_msis_per_s\": \(ITSBench.json(single.msisPerSecond)), "
                + "\"acks_per_s\": \(ITSBench.json(cached.acksPerSecond))}")
            return
        }
        print("MSI translate + set pending, \(events) mapped events on \(vcpus) vCPUs, batches of \(batch), median of \(passes)")
        print("  cached:   \(Int(cached.msisPerSecond)) MSIs/s (injection timed; acknowledges not)")
        print("  uncached: \(Int(uncached.msisPerSecond)) MSIs/s (translation cache limit 0)")
        print("  cached, priorities over 64 levels: \(Int(spread.msisPerSecond)) MSIs/s")
        print("  cached, one MSI at a time (VirtualGIC.inject): \(Int(single.msisPerSecond)) MSIs/s")
        print("  acknowledge: \(Int(cached.acksPerSecond)) acks/s (the drains of the cached run)")
    }

    /// `translate --profile`: only the cached batched run, for an instruction-counting profiler. The
    /// cache is warmed outside ``inject(_:_:_:start:batched:scratch:)``, so that every call of it
    /// counts warm-cache injections only: 2 passes of 256 batches, 2,097,152 MSIs in all.
    static func runProfile(_ deviceIDs: [DeviceID], _ eventIDs: [EventID]) {
        var guest = makeGuest(cacheLimit: 1 << 22)
        for index in deviceIDs.indices { guest.gic.inject(deviceIDs[index], eventIDs[index]) }
        for vcpu in 0 ..< vcpus {
            while guest.gic.acknowledge(VCPUIndex(UInt16(vcpu))) != .spurious {}
        }
        precondition(guest.gic.its.translationCache.count == devices << eventBits, "the cache is not warm")
        let figures = measure(&guest, deviceIDs, eventIDs, passes: 1)
        print("profiled \(2 * deviceIDs.count) warm-cache MSIs in batches of \(batch): \(Int(figures.msisPerSecond)) MSIs/s")
    }

    /// A VM with every event mapped: event n = (device n >> 10, event n & 1023) -> LPI 8192 + n in
    /// collection (n * 2654435761 >> 16) % 4, priority 0xA0 or, spread, (n * 40503 >> 8) & 0xFC.
    static func makeGuest(cacheLimit: Int, spreadPriorities: Bool = false) -> BenchGuest {
        var guest = BenchGuest(vcpus: vcpus, cacheLimit: cacheLimit)
        guest.mapDevicesAndCollections(devices: devices, eventBits: eventBits)
        let events = UInt32(devices << eventBits)
        for n in 0 ..< events {
            guest.configure(8192 + n, priority: spreadPriorities ? UInt8(truncatingIfNeeded: (n &* 40503) >> 8) & 0xFC : 0xA0)
        }
        for n in 0 ..< events {
            if n % UInt32(BenchGuest.queueCommands / 2) == 0 { guest.runToCompletion() }
            let collection = UInt16((n &* 2_654_435_761) >> 16 & 3)
            guest.queueMAPTI(n >> UInt32(eventBits), n & ((1 << UInt32(eventBits)) - 1), intid: 8192 + n, collection: collection)
        }
        guest.runToCompletion()
        precondition(guest.gic.its.events.count == Int(events), "the benchmark VM mapped too few events")
        return guest
    }

    /// Injects the whole sequence `passes` + 1 times (the first pass warms the cache and is not
    /// counted), batch by batch, draining every vCPU after each batch.
    static func measure(_ guest: inout BenchGuest, _ deviceIDs: [DeviceID], _ eventIDs: [EventID],
                        batched: Bool = true, passes: Int = passes) -> Figures
    {
        let clock = ContinuousClock()
        var scratch: [ITS.Translation] = []
        var injectRates: [Double] = []
        var ackRates: [Double] = []
        for pass in 0 ... passes {
            var injectTime = Duration.zero
            var ackTime = Duration.zero
            var acknowledged = 0
            var failures = 0
            for start in stride(from: 0, to: deviceIDs.count, by: batch) {
                let injectStart = clock.now
                failures += inject(&guest, deviceIDs, eventIDs, start: start, batched: batched, scratch: &scratch)
                let ackStart = clock.now
                for vcpu in 0 ..< vcpus {
                    while guest.gic.acknowledge(VCPUIndex(UInt16(vcpu))) != .spurious { acknowledged += 1 }
                }
                let ackEnd = clock.now
                injectTime += ackStart - injectStart
                ackTime += ackEnd - ackStart
                guest.gic.sink.removeAll()
            }
            precondition(failures == 0, "MSIs failed to translate")
            if pass > 0 {
                injectRates.append(Double(deviceIDs.count) / CommandQueueBench.seconds(injectTime))
                ackRates.append(Double(acknowledged) / CommandQueueBench.seconds(ackTime))
            }
        }
        return Figures(msisPerSecond: CommandQueueBench.median(injectRates), acksPerSecond: CommandQueueBench.median(ackRates))
    }

    /// Injects the batch at `start`; returns how many MSIs failed to translate. Never inlined, so
    /// that an instruction-counting profiler can attribute exactly the timed work to it
    /// (`valgrind --tool=callgrind --toggle-collect='*TranslateBench*inject*'`).
    @inline(never)
    static func inject(_ guest: inout BenchGuest, _ deviceIDs: [DeviceID], _ eventIDs: [EventID], start: Int,
                       batched: Bool, scratch: inout [ITS.Translation]) -> Int
    {
        guard batched else {
            var failures = 0
            for index in start ..< start + batch {
                if case .failure = guest.gic.inject(deviceIDs[index], eventIDs[index]) { failures += 1 }
            }
            return failures
        }
        let translated = deviceIDs.withUnsafeBufferPointer { devices in
            eventIDs.withUnsafeBufferPointer { events in
                guest.gic.injectBatch(devices: UnsafeBufferPointer(rebasing: devices[start ..< start + batch]),
                                      events: UnsafeBufferPointer(rebasing: events[start ..< start + batch]),
                                      translations: &scratch)
            }
        }
        return batch - translated
    }
}

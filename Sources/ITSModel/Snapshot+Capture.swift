/// Taking a ``VGICSnapshot``: each part captures itself, so that the server can snapshot the ITS on
/// its thread and each redistributor on its lane, and ``VirtualGIC`` puts the parts together.
extension ITS {
    /// The ITS's whole state as a value. O(devices + events + collections + cached translations).
    /// - Context: the ITS's thread.
    public func snapshot() -> VGICSnapshot.ITSState {
        let devices = devices.entries.map { VGICSnapshot.Device(DeviceID(UInt32(truncatingIfNeeded: $0.key)), $0.value) }
        let events = events.entries.map { entry in
            let (device, event) = splitEventKey(entry.key)
            return VGICSnapshot.Event(device, event, entry.value)
        }
        let collections = collections.entries.map {
            VGICSnapshot.Collection(CollectionID(UInt16(truncatingIfNeeded: $0.key)), $0.value)
        }
        let translations = translationCache.entries.map { entry in
            let (device, event) = splitEventKey(entry.key)
            return VGICSnapshot.CachedTranslation(device, event, entry.value)
        }
        let operation: VGICSnapshot.Operation? = switch self.operation {
        case nil:
            nil
        case let .unmapDevice(device, itt, next, then):
            .unmapDevice(device, itt: itt, nextEvent: splitEventKey(next).event, then: then)
        case let .retargetCollection(collection, from, to, next):
            .retargetCollection(collection, from: from, to: to, nextDevice: splitEventKey(next).device,
                                nextEvent: splitEventKey(next).event)
        case .synchronize(let vcpu):
            .synchronize(vcpu)
        }
        return VGICSnapshot.ITSState(configuration: configuration, enabled: enabled, cbaser: cbaser, cwriter: cwriter,
                                     creadr: creadr, stalled: stalled, lastStallFault: lastStallFault,
                                     deviceBaser: deviceBaser, collectionBaser: collectionBaser, devices: devices,
                                     events: events, collections: collections, translations: translations,
                                     operation: operation, counters: counters)
    }

    /// The (DeviceID, EventID) of an ``eventKey(_:_:)``.
    public func splitEventKey(_ key: UInt64) -> (device: DeviceID, event: EventID) {
        let bits = UInt64(configuration.eventIDBits)
        return (DeviceID(UInt32(truncatingIfNeeded: key >> bits)), EventID(UInt32(truncatingIfNeeded: key & ((1 << bits) - 1))))
    }
}

extension Redistributor {
    /// The redistributor's whole state as a value; the deliverable sets are left out because they
    /// follow from the pending LPIs and their configuration. O(LPIs known here).
    /// - Context: the owning lane.
    public func snapshot() -> VGICSnapshot.RedistributorState {
        var pendingINTIDs: [INTID] = []
        pendingINTIDs.reserveCapacity(pendingCount)
        lpis.forEachMarked { key, _ in
            pendingINTIDs.append(INTID(UInt32(truncatingIfNeeded: key)))
            return true
        }
        return VGICSnapshot.RedistributorState(
            configuration: configuration, lpisEnabled: lpisEnabled, propbaser: propbaser, pendbaser: pendbaser,
            pendingTableZero: pendingTableZero,
            lpis: lpis.entries.map { VGICSnapshot.LPI(INTID(UInt32(truncatingIfNeeded: $0.key)), $0.value) },
            pending: pendingINTIDs, invalidateAllCursor: invalidateAllCursor,
            pendingTableLoadCursor: pendingTableLoadCursor, counters: counters)
    }
}

extension VirtualGIC {
    /// The whole interrupt state of the VM as a value, at ``VGICSnapshot/version``.
    /// - Context: the VM's loop thread.
    public func snapshot() -> VGICSnapshot {
        VGICSnapshot(its: its.snapshot(), redistributors: redistributors.redistributors.map { $0.snapshot() })
    }
}

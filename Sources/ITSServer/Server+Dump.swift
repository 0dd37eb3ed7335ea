import ITSModel
import ITSWire

/// DUMP (Protocol/PROTOCOL.md, 6.18): a VM's devices, ITT entries and collections from its ITS on
/// the loop thread, its LPIs from the lanes that own its redistributors.
extension Server {
    /// Entries a DUMP page holds at most, whatever the frame allows.
    static let maximumDumpEntries = 65536

    func transfers(of session: Session) -> ConnectionTransfers {
        if let existing = transfers[session.connection.id] { return existing }
        let created = ConnectionTransfers()
        transfers[session.connection.id] = created
        return created
    }

    func dump(_ id: VMID, _ section: DumpSection, cursor: UInt64, maxEntries: UInt32, session: Session, frame: Frame,
              fail: (WireStatus, UInt32, String) -> Void)
    {
        let key = VMKey(id.rawValue)
        guard let vm = registry.vms[key] else { return fail(.noSuchVM, id.rawValue, "") }
        let transfers = transfers(of: session)
        let start: UInt64
        if cursor == 0 {
            start = section == .lpis ? UInt64(INTID.firstLPI.rawValue) : 0
        } else {
            guard let position = transfers.position(of: cursor), position.vm == key, position.section == section else {
                return fail(.badCursor, 0, "")
            }
            start = position.key
        }
        let frameLimit = Int(session.hello?.limits.maxFrameLength ?? Limits.defaults.maxFrameLength)
        var limit = min((frameLimit - Wire.headerLength - 24) / section.entrySize, Self.maximumDumpEntries)
        if maxEntries > 0 { limit = min(limit, Int(maxEntries)) }
        func page(_ entries: DumpEntries, next: UInt64?) -> Message {
            let nextCursor = next.map { transfers.issue(.init(vm: key, section: section, key: $0)) } ?? DumpPage.end
            return .dumpReply(DumpPage(vm: id, entries: entries, nextCursor: nextCursor))
        }
        let its = vm.its
        switch section {
        case .devices:
            let (entries, next) = Self.collect(its.devices, from: start, limit: limit) { key, mapping in
                DumpDevice(deviceID: Wire.DeviceID(rawValue: UInt32(truncatingIfNeeded: key)), eventIDBits: mapping.eventIDBits,
                           ittAddress: mapping.ittAddress.rawValue)
            }
            session.reply(Frame(page(.devices(entries), next: next), id: frame.messageID))
        case .itt:
            let (entries, next) = Self.collect(its.events, from: start, limit: limit) { key, mapping in
                let (device, event) = its.splitEventKey(key)
                return DumpITTEntry(deviceID: Wire.DeviceID(rawValue: device.rawValue), eventID: Wire.EventID(rawValue: event.rawValue),
                                    intid: Wire.INTID(rawValue: mapping.intid.rawValue),
                                    collection: Wire.CollectionID(rawValue: mapping.collection.rawValue))
            }
            session.reply(Frame(page(.itt(entries), next: next), id: frame.messageID))
        case .collections:
            let (entries, next) = Self.collect(its.collections, from: start, limit: limit) { key, vcpu in
                DumpCollection(collection: Wire.CollectionID(rawValue: UInt16(truncatingIfNeeded: key)), vcpu: Wire.VCPU(rawValue: vcpu.rawValue))
            }
            session.reply(Frame(page(.collections(entries), next: next), id: frame.messageID))
        case .lpis:
            let slot = session.reserveSlot()
            let connection = session.connection.id
            dumpLPIs(vm, from: start, limit: limit, gathered: []) { [unowned self] entries, next in
                self.sessions[connection]?.fill(slot, with: Frame(page(.lpis(entries), next: next), id: frame.messageID))
            }
        }
    }

    /// Up to `limit` entries of `index` from `start` on, and the key to continue from.
    private static func collect<Value, Entry>(_ index: SparseIndex<Value>, from start: UInt64, limit: Int,
                                              _ entry: (UInt64, Value) -> Entry) -> ([Entry], UInt64?)
    {
        var entries: [Entry] = []
        var next: UInt64?
        index.forEach(in: start ... .max) { key, value in
            guard entries.count < limit else {
                next = key
                return false
            }
            entries.append(entry(key, value))
            return true
        }
        return (entries, next)
    }

    /// LPIs of every vCPU from `position` (vCPU << 32 | INTID) on, asking one lane after another
    /// until the page is full or every vCPU is listed.
    private func dumpLPIs(_ vm: ServerVM, from position: UInt64, limit: Int, gathered: [DumpLPI],
                          _ done: @escaping ([DumpLPI], UInt64?) -> Void)
    {
        let vcpu = position >> 32
        let vcpuCount = UInt64(vm.config.vcpuCount)
        guard vcpu < vcpuCount, gathered.count < limit else { return done(gathered, vcpu < vcpuCount ? position : nil) }
        let index = VCPUIndex(UInt16(vcpu))
        let from = INTID(UInt32(truncatingIfNeeded: position))
        let ticket = ticket { [weak self, key = vm.key] reply in
            guard let self, let vm = self.registry.vms[key], case let .lpis(listed, next) = reply else { return done(gathered, nil) }
            var page = gathered
            page += listed.map {
                DumpLPI(intid: Wire.INTID(rawValue: $0.intid.rawValue), priority: $0.config.priority.rawValue,
                        enabled: $0.config.isEnabled, pending: $0.pending, vcpu: Wire.VCPU(rawValue: index.rawValue))
            }
            let following = next.map { vcpu << 32 | UInt64($0.rawValue) } ?? (vcpu + 1) << 32 | UInt64(INTID.firstLPI.rawValue)
            self.dumpLPIs(vm, from: following, limit: limit, gathered: page, done)
        }
        vm.operations.queue(.request(vm.key, index, .lpis(from: from, limit: limit - gathered.count), ticket: ticket), for: index)
        markDirty(vm)
    }
}

import ArgumentParser
import ITSClient
import ITSWire

/// `itsctl dump VM`: the ITS and LPI state of a VM.
struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a VM's ITS and LPI state: devices with their ITT entries, collections, LPIs.",
        discussion: """
        Without a section flag, every section. Each section is read in pages (DUMP); a page is consistent in \
        itself, but a section is not a point-in-time copy of a running VM (itsctl snapshot is). Any user itsd \
        admits may dump any VM; no attach is needed.
        """)

    @OptionGroup var options: SocketOptions

    @Argument(help: "The VM id (itsctl vm list).")
    var vm: String

    @Flag(name: .long, help: "Mapped devices (MAPD), each with its ITT entries.")
    var devices = false

    @Flag(name: .long, help: "Mapped collections (MAPC) and their target vCPUs.")
    var collections = false

    @Flag(name: .long, help: "LPIs with priority, enable and pending state, and the vCPU holding each.")
    var lpis = false

    @Option(name: .long, help: ArgumentHelp("Only the LPIs of this vCPU (implies --lpis).", valueName: "n"))
    var vcpu: UInt16?

    @Flag(name: .long, help: "One JSON object with the sections asked for.")
    var json = false

    func validate() throws { _ = try parseVM(vm) }

    func run() throws {
        let id = try parseVM(vm)
        let all = !devices && !collections && !lpis && vcpu == nil
        let connection = try options.connect()
        let fetch = { (section: DumpSection) throws -> DumpEntries in
            try options.attempt(vm: id) { () throws(ITSClientError) in try connection.dump(id, section) }
        }
        var deviceList: [DumpDevice] = []
        var ittList: [DumpITTEntry] = []
        var collectionList: [DumpCollection] = []
        var lpiList: [DumpLPI] = []
        if all || devices {
            if case .devices(let list) = try fetch(.devices) { deviceList = list }
            if case .itt(let list) = try fetch(.itt) { ittList = list }
        }
        if all || collections, case .collections(let list) = try fetch(.collections) { collectionList = list }
        if all || lpis || vcpu != nil, case .lpis(let list) = try fetch(.lpis) {
            lpiList = vcpu.map { n in list.filter { $0.vcpu.rawValue == n } } ?? list
        }
        let events = Dictionary(grouping: ittList, by: \.deviceID)
        if json {
            var object = JSONObject()
            object.add("vm", id.rawValue)
            if all || devices {
                object.add("devices", raw: JSONObject.array(deviceList.map { device in
                    var item = JSONObject()
                    item.add("device_id", device.deviceID.rawValue)
                    item.add("event_id_bits", device.eventIDBits)
                    item.add("itt_address", device.ittAddress)
                    item.add("events", raw: JSONObject.array((events[device.deviceID] ?? []).map { entry in
                        var event = JSONObject()
                        event.add("event_id", entry.eventID.rawValue)
                        event.add("intid", entry.intid.rawValue)
                        event.add("collection", entry.collection.rawValue)
                        return event.text
                    }))
                    return item.text
                }))
            }
            if all || collections {
                object.add("collections", raw: JSONObject.array(collectionList.map { entry in
                    var item = JSONObject()
                    item.add("collection", entry.collection.rawValue)
                    item.add("vcpu", entry.vcpu.rawValue)
                    return item.text
                }))
            }
            if all || lpis || vcpu != nil {
                object.add("lpis", raw: JSONObject.array(lpiList.map { entry in
                    var item = JSONObject()
                    item.add("intid", entry.intid.rawValue)
                    item.add("priority", entry.priority)
                    item.add("enabled", entry.enabled)
                    item.add("pending", entry.pending)
                    if entry.vcpu.rawValue == 0xFFFF { item.addNull("vcpu") } else { item.add("vcpu", entry.vcpu.rawValue) }
                    return item.text
                }))
            }
            Terminal.write(object.text + "\n")
            return
        }
        var text = ""
        if all || devices {
            text += "devices: \(deviceList.count)\n"
            for device in deviceList {
                let entries = events[device.deviceID] ?? []
                text += "  device \(device.deviceID)  event_id_bits \(device.eventIDBits)  itt 0x"
                    + String(device.ittAddress, radix: 16) + "  events \(entries.count)\n"
                for entry in entries {
                    text += "    event \(entry.eventID) -> LPI \(entry.intid)  collection \(entry.collection)\n"
                }
            }
        }
        if all || collections {
            text += "collections: \(collectionList.count)\n"
            for entry in collectionList { text += "  collection \(entry.collection) -> vCPU \(entry.vcpu)\n" }
        }
        if all || lpis || vcpu != nil {
            text += "LPIs: \(lpiList.count)" + (vcpu.map { " on vCPU \($0)" } ?? "") + "\n"
            if !lpiList.isEmpty {
                var table = TextTable(["  INTID", "VCPU", "PRIO", "ENABLED", "PENDING"])
                for entry in lpiList {
                    table.add(["  \(entry.intid)", entry.vcpu.rawValue == 0xFFFF ? "-" : "\(entry.vcpu)",
                               "0x" + String(entry.priority, radix: 16), entry.enabled ? "yes" : "no",
                               entry.pending ? "yes" : "no"])
                }
                text += table.text
            }
        }
        Terminal.write(text)
    }
}

import ArgumentParser
import ITSClient
import ITSWire

/// `itsctl vm …`: the VMs itsd serves.
struct VMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm",
        abstract: "The VMs itsd serves.",
        subcommands: [List.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the VMs this user may see.",
            discussion: """
            One line per VM: its id, vCPUs, DeviceID, EventID and INTID widths, whether a client is attached or \
            the VM waits out its grace period (orphaned), and the connections attached.
            """)

        @OptionGroup var options: SocketOptions

        @Flag(name: .long, help: "One JSON object per VM, one per line.")
        var json = false

        func run() throws {
            let connection = try options.connect()
            let list = try options.attempt { () throws(ITSClientError) in try connection.listVMs() }
            if json {
                for info in list {
                    var object = JSONObject()
                    object.add("vm", info.vm.rawValue)
                    object.add("vcpus", info.config.vcpuCount)
                    object.add("device_id_bits", info.config.deviceIDBits)
                    object.add("event_id_bits", info.config.eventIDBits)
                    object.add("intid_bits", info.config.intidBits)
                    object.add("state", info.state == .attached ? "attached" : "orphaned")
                    object.add("connections", info.connections)
                    Terminal.write(object.text + "\n")
                }
                return
            }
            var table = TextTable(["VM", "VCPUS", "DEVBITS", "EVBITS", "INTIDBITS", "STATE", "CONNS"])
            for info in list {
                table.add([String(info.vm.rawValue), String(info.config.vcpuCount), String(info.config.deviceIDBits),
                           String(info.config.eventIDBits), String(info.config.intidBits),
                           info.state == .attached ? "attached" : "orphaned", String(info.connections)])
            }
            Terminal.write(list.isEmpty ? "no VMs\n" : table.text)
        }
    }
}

import ArgumentParser
import ITSClient
import ITSWire

/// `itsctl inject VM DEVICEID EVENTID`: MSIs into a VM, as a device would send them.
struct Inject: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send MSIs to a VM's ITS, as a device writing GITS_TRANSLATER would.",
        discussion: """
        Attaches to the VM (with the operator token unless --token is given), sends COUNT MSIs of (DEVICEID, \
        EVENTID) with replies (INJECT, or INJECT_BATCH for more than one), and prints how many the ITS turned \
        into LPIs and how many it blocked (nothing mapped for the pair). A blocked MSI is an outcome, not an \
        error: the exit code is 0 unless the server refuses the request (ITS_DISABLED: exit 1).
        """)

    @OptionGroup var options: SocketOptions
    @OptionGroup var token: TokenOption

    @Argument(help: "The VM id.")
    var vm: String

    @Argument(help: "The DeviceID (decimal or 0x hex).")
    var deviceID: String

    @Argument(help: "The EventID (decimal or 0x hex).")
    var eventID: String

    @Option(name: [.customShort("n"), .long], help: "MSIs to send.")
    var count: Int = 1

    func validate() throws {
        _ = try parseVM(vm)
        guard parseNumber(deviceID) != nil else { throw ValidationError("DEVICEID '\(deviceID)' is not a 32-bit number") }
        guard parseNumber(eventID) != nil else { throw ValidationError("EVENTID '\(eventID)' is not a 32-bit number") }
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        let id = try parseVM(vm)
        let device = Wire.DeviceID(parseNumber(deviceID)!)
        let event = Wire.EventID(parseNumber(eventID)!)
        let connection = try options.connect()
        let (injected, blocked) = try options.attempt(vm: id) { () throws(ITSClientError) -> (Int, Int) in
            let handle = try connection.attachVM(id, token: token.value)
            if count == 1 {
                return try handle.inject(deviceID: device, eventID: event) ? (1, 0) : (0, 1)
            }
            let capacity = InjectEncoding.maxBatchEntries(connection.agreed.limits)
            var injected = 0
            var blocked = 0
            var left = count
            while left > 0 {
                let size = Swift.min(left, capacity)
                let result = try handle.injectBatch([InjectEntry](repeating: InjectEntry(deviceID: device, eventID: event), count: size))
                injected += Int(result.injected)
                blocked += Int(result.blocked)
                left -= size
            }
            return (injected, blocked)
        }
        let noun = count == 1 ? "MSI" : "MSIs"
        var line = "VM \(id): \(count) \(noun) (device \(device), event \(event)): \(injected) injected, \(blocked) blocked"
        if blocked > 0 { line += " (the ITS has no mapping for the pair, or its collection is unmapped)" }
        Terminal.write(line + "\n")
    }
}

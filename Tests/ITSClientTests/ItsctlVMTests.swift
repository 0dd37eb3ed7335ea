import Glibc
import ITSClient
import ITSWire
import Testing

/// itsctl dump, inject, snapshot and restore against a live itsd.
@Suite(.serialized) struct ItsctlVMTests {
    @Test func dumpShowsDevicesCollectionsAndLPIs() throws {
        let server = try #require(LiveServer())
        let traffic = try TrafficVM(socket: server.socketPath)
        for event: UInt32 in [0, 1, 3] { try traffic.vm.post(deviceID: Wire.DeviceID(7), eventID: Wire.EventID(event)) }
        try traffic.connection.sync()
        #expect(try eventually { try traffic.vm.vcpu(1).pending().count == 2 })
        let id = "\(traffic.vm.id)"

        let json = itsctl(["dump", id, "--json", "--socket", server.socketPath])
        #expect(json.status == 0, "\(json.errors)")
        let dump = try #require(JSONValue.parse(json.output))
        #expect(dump["vm"]?.number == Double(traffic.vm.id.rawValue))
        let devices = try #require(dump["devices"]?.array)
        #expect(devices.compactMap { $0["device_id"]?.number } == [7, 9])
        #expect(devices[0]["itt_address"]?.number == 0x70_0000)
        #expect(devices[1]["events"]?.array?.compactMap { $0["intid"]?.number } == [8196, 8197, 8198, 8199])
        #expect(devices[0]["events"]?.array?.compactMap { $0["collection"]?.number } == [0, 1, 0, 1])
        let collections = try #require(dump["collections"]?.array)
        #expect(collections.map { [$0["collection"]?.number, $0["vcpu"]?.number] } == [[0, 0], [1, 1]])
        let lpis = try #require(dump["lpis"]?.array)
        let pending = lpis.filter { $0["pending"]?.bool == true }.compactMap { $0["intid"]?.number }.sorted()
        #expect(pending == [8192, 8193, 8195])
        #expect(lpis.allSatisfy { $0["priority"]?.number == 0xA0 && $0["enabled"]?.bool == true })

        let onlyVCPU1 = itsctl(["dump", id, "--vcpu", "1", "--json", "--socket", server.socketPath])
        let lpisOn1 = JSONValue.parse(onlyVCPU1.output)?["lpis"]?.array ?? []
        #expect(!lpisOn1.isEmpty && lpisOn1.allSatisfy { $0["vcpu"]?.number == 1 })
        #expect(JSONValue.parse(onlyVCPU1.output)?["devices"] == nil, "only the section asked for")

        let text = itsctl(["dump", id, "--socket", server.socketPath])
        #expect(text.status == 0)
        #expect(text.output.contains("devices: 2\n  device 7  event_id_bits 8  itt 0x700000  events 4\n    event 0 -> LPI 8192  collection 0\n"))
        #expect(text.output.contains("collections: 2\n  collection 0 -> vCPU 0\n  collection 1 -> vCPU 1\n"))
        #expect(text.output.contains("LPIs: 8\n"))
        let row = text.output.split(separator: "\n").first { $0.hasPrefix("  8193 ") }.map { $0.split(separator: " ").map(String.init) }
        #expect(row == ["8193", "1", "0xa0", "yes", "yes"])

        let unknown = itsctl(["dump", "99", "--socket", server.socketPath])
        #expect(unknown.status == 67)
        #expect(unknown.errors == "itsctl: no VM 99 on \(server.socketPath) (`itsctl vm list` shows the VMs)\n")
        #expect(itsctl(["dump", "zero", "--socket", server.socketPath]).status == 64)
    }

    @Test func injectWithTheVMsTokenAndTheOperatorToken() throws {
        let server = try #require(LiveServer())
        let traffic = try TrafficVM(socket: server.socketPath)
        let id = "\(traffic.vm.id)"
        let token = traffic.vm.token.hex
        let ten = itsctl(["inject", id, "7", "1", "--count", "10", "--token", token, "--socket", server.socketPath])
        #expect(ten.status == 0, "\(ten.errors)")
        #expect(ten.output == "VM \(id): 10 MSIs (device 7, event 1): 10 injected, 0 blocked\n")
        #expect(try eventually { try traffic.vm.vcpu(1).highestPriorityPending()?.intid == Wire.INTID(8193) })
        #expect(try traffic.vm.stats().counter("msis_inject_batch_total") == 10)

        let blocked = itsctl(["inject", id, "0x7", "200", "--token", token, "--socket", server.socketPath])
        #expect(blocked.status == 0)
        #expect(blocked.output.hasPrefix("VM \(id): 1 MSI (device 7, event 200): 0 injected, 1 blocked"))

        let wrong = itsctl(["inject", id, "7", "1", "--token", String(repeating: "ab", count: 16), "--socket", server.socketPath])
        #expect(wrong.status == 77)
        #expect(wrong.errors.contains("itsd refused to attach VM \(id): the token does not match"))
        #expect(itsctl(["inject", id, "7", "1", "--token", "123", "--socket", server.socketPath]).status == 64)

        // The operator token: this test runs as itsd's own uid, an operator by default, so itsctl
        // attaches without --token (the refusal of other peers is tested in ITSServerTests).
        let probe = try ITSConnection(path: server.socketPath)
        _ = try probe.attachVM(traffic.vm.id, token: .operatorToken)
        let byOperator = itsctl(["inject", id, "7", "2", "--socket", server.socketPath])
        #expect(byOperator.status == 0, "\(byOperator.errors)")
        #expect(byOperator.output.contains("1 injected"))
        let unknown = itsctl(["inject", "42", "7", "1", "--token", token, "--socket", server.socketPath])
        #expect(unknown.status == 67)
        #expect(unknown.errors.contains("no VM 42 on \(server.socketPath)"))
    }

    @Test func snapshotToAFileAndRestoreIntoANewVM() throws {
        let server = try #require(LiveServer())
        let traffic = try TrafficVM(socket: server.socketPath)
        for event: UInt32 in 0 ..< 4 { try traffic.vm.post(deviceID: Wire.DeviceID(9), eventID: Wire.EventID(event)) }
        try traffic.connection.sync()
        #expect(try eventually { try traffic.vm.vcpu(0).pending().count == 2 && traffic.vm.vcpu(1).pending().count == 2 })
        let file = temporaryPath("vm.snap")
        defer { unlink(file) }
        let saved = itsctl(["snapshot", "\(traffic.vm.id)", file, "--token", traffic.vm.token.hex, "--socket", server.socketPath])
        #expect(saved.status == 0, "\(saved.errors)")
        let image = try #require(SnapshotFile.read(file))
        #expect(saved.output == "VM \(traffic.vm.id): \(image.count) bytes to \(file)\n")
        #expect(Array(image.prefix(8)) == Array("ITSDSNAP".utf8))
        var info = stat()
        #expect(stat(file, &info) == 0 && info.st_mode & 0o777 == 0o600)

        let restored = itsctl(["restore", file, "--socket", server.socketPath])
        #expect(restored.status == 0, "\(restored.errors)")
        let words = restored.output.split(separator: " ")
        let newID = try #require(words.firstIndex(of: "VM").flatMap { UInt32(words[$0 + 1]) })
        let tokenHex = try #require(words.firstIndex(of: "token").map { String(words[$0 + 1].prefix(32)) })
        let copy = try ITSConnection(path: server.socketPath).attachVM(VMID(newID), token: try #require(VMToken(hex: tokenHex)))
        #expect(copy.config == traffic.vm.config)
        #expect(try copy.vcpu(0).pending() == traffic.vm.vcpu(0).pending())
        #expect(try copy.vcpu(1).pending() == traffic.vm.vcpu(1).pending())
        #expect(try copy.dump(.itt) == traffic.vm.dump(.itt))

        var corrupt = image
        corrupt[corrupt.count / 2] ^= 0xFF
        let bad = temporaryPath("bad.snap")
        defer { unlink(bad) }
        let fd = open(bad, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = corrupt.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        let rejected = itsctl(["restore", bad, "--socket", server.socketPath])
        #expect(rejected.status == 65)
        #expect(rejected.errors.contains("is not a snapshot image itsd can load"), "\(rejected.errors)")
        let missing = itsctl(["restore", file + ".absent", "--socket", server.socketPath])
        #expect(missing.status == 66)
        #expect(missing.errors.contains("cannot read \(file).absent: No such file or directory"))
        let unwritable = itsctl(["snapshot", "\(traffic.vm.id)", "/nonexistent-dir/x.snap", "--token", traffic.vm.token.hex,
                                 "--socket", server.socketPath])
        #expect(unwritable.status == 73)
        #expect(try ITSConnection(path: server.socketPath).listVMs().count == 2, "no VM left behind by the failures")
    }
}

enum SnapshotFile {
    static func read(_ path: String) -> [UInt8]? {
        let text = readBytes(path)
        return text.isEmpty ? nil : text
    }

    static func readBytes(_ path: String) -> [UInt8] {
        guard let file = fopen(path, "r") else { return [] }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while case let count = fread(&buffer, 1, buffer.count, file), count > 0 { bytes += buffer[0 ..< count] }
        return bytes
    }
}

/// `itsctl demo`: a VM with traffic that stats sees, destroyed at the end.
@Suite(.serialized) struct ItsctlDemoTests {
    @Test func demoRunsTrafficAndCleansUp() throws {
        let server = try #require(LiveServer())
        let demo = try #require(startItsctl(["demo", "--seconds", "3", "--vcpus", "2", "--devices", "3", "--rate", "5000",
                                             "--socket", server.socketPath]))
        let observer = try ITSConnection(path: server.socketPath)
        #expect(try eventually(seconds: 10) { try observer.listVMs().count == 1 })
        let id = try #require(try observer.listVMs().first?.vm)
        let sample = itsctl(["stats", "0.5", "--once", "--json", "--vm", "\(id)", "--socket", server.socketPath])
        let stats = JSONValue.parse(sample.output)?["stats"]?.array ?? []
        let rate = stats.first { $0["name"]?.string == "msis_inject_batch_total" }?["rate"]?.number ?? 0
        #expect(rate > 1000, "about 5000 MSIs/s: \(rate)")
        let devices = stats.filter { $0["name"]?.string == "device_msis_injected_total" }.compactMap { $0["labels"]?["device"]?.string }
        #expect(devices.sorted() == ["1", "2", "3"])
        #expect(demo.wait(seconds: 20) == 0, "\(demo.errors)")
        #expect(demo.output.hasPrefix("demo: VM \(id) with 2 vCPUs and 3 devices of 8 vectors on \(server.socketPath)"))
        #expect(demo.output.contains("; VM \(id) destroyed\n"))
        #expect(try observer.listVMs().isEmpty)
        let acked = demo.output.split(separator: " ").firstIndex(of: "acknowledged").flatMap { index in
            Int(demo.output.split(separator: " ")[index + 1])
        }
        #expect((acked ?? 0) > 0)
    }
}

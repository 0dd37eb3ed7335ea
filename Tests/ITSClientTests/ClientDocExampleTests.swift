import Glibc
import ITSClient
import ITSWire
import Testing

// CLIENT.md example begins
/// A VMM's interrupt path for one VM: guest RAM, forwarded MMIO, a device's MSI vectors, a vCPU.
func runVMM(socket: String, guestRAM: Int32, forwardGuestMMIO: (ITSVM) throws -> Void) throws -> Set<UInt32> {
    // Connect and say HELLO; ask for error reports of fire-and-forget MSIs.
    let connection = try ITSConnection(path: socket, capabilities: [.errorReports, .snapshot])
    // A VM with 2 vCPUs and 16-bit DeviceIDs, EventIDs and INTIDs; vm.token re-attaches it later.
    let vm = try connection.createVM(VMConfig(vcpuCount: 2, deviceIDBits: 16, eventIDBits: 16, intidBits: 16))
    // Guest RAM: a memfd sealed against shrinking (ITSVM.makeGuestMemoryFile makes one).
    try vm.addMemoryRegion(fd: guestRAM, guestAddress: 0, size: 16 << 20)
    // vCPU 0 wakes on this eventfd when an LPI becomes deliverable.
    let wake = try vm.vcpu(0).makeNotifier()
    defer { close(wake) }
    // The guest's driver programs the ITS; the VMM forwards each access with vm.mmioRead/mmioWrite.
    try forwardGuestMMIO(vm)
    // Device 7's MSI vectors: vector 0 signalled directly, vector 2's eventfd for a vhost-user back-end.
    let device = vm.vectorGroup(deviceID: Wire.DeviceID(7))
    try device.trigger(0)
    let callFD = try device.notifier(2)
    var signal: UInt64 = 1
    _ = write(callFD, &signal, 8)  // what the back-end does when it completes a request
    // Fire-and-forget batches for a busy device; sync() waits for the server and returns failures.
    for _ in 0 ..< 100 { try vm.post(deviceID: Wire.DeviceID(7), eventID: Wire.EventID(0)) }
    let failures = try connection.sync()
    precondition(failures.isEmpty, "\(failures)")
    // The vCPU side: wait for the wakeup, then acknowledge LPIs until a reply says none is left.
    var taken = Set<UInt32>()
    var waiter = pollfd(fd: wake, events: Int16(POLLIN), revents: 0)
    while taken.count < 2, poll(&waiter, 1, 5000) == 1 {
        _ = ITSVCPU.drain(wake)
        try vm.vcpu(0).acknowledgeAll { lpi in taken.insert(lpi.intid.rawValue) }
    }
    return taken
}
// CLIENT.md example ends

/// The example in docs/CLIENT.md is this file's `runVMM`, compiled here and run against itsd.
@Suite struct ClientDocExampleTests {
    @Test func theExampleRunsAgainstALiveServer() throws {
        let server = try #require(LiveServer())
        let ram = GuestRAM()
        let taken = try runVMM(socket: server.socketPath, guestRAM: ram.fd) { vm in
            try ram.program(vm)
            try ram.mapDevice(7, events: 4, on: vm)
        }
        #expect(taken == [8192, 8194], "events 0 and 2 of device 7 are vCPU 0's LPIs")
    }

    @Test func theDocumentShowsThisExample() throws {
        let root = #filePath.split(separator: "/", omittingEmptySubsequences: false).dropLast(3).joined(separator: "/")
        let document = readText(root + "/docs/CLIENT.md")
        let source = readText(#filePath)
        func between(_ text: String, _ start: String, _ end: String) -> String? {
            guard let from = text.range(of: start), let to = text.range(of: end, range: from.upperBound ..< text.endIndex) else { return nil }
            return String(text[from.upperBound ..< to.lowerBound]).trimmingWhitespace
        }
        let example = try #require(between(source, "// CLIENT.md example begins\n", "// CLIENT.md example ends"))
        let shown = try #require(between(document, "<!-- the example, as Tests/ITSClientTests/ClientDocExampleTests.swift runs it -->\n```swift\n", "```"))
        #expect(shown == example, "docs/CLIENT.md's example differs from the tested one")
    }
}

extension String {
    var trimmingWhitespace: String {
        var text = Substring(self)
        while text.first?.isWhitespace == true { text.removeFirst() }
        while text.last?.isWhitespace == true { text.removeLast() }
        return String(text)
    }
}

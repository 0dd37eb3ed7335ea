import Glibc
import ITSClient
import ITSModel
import ITSWire

/// A VM with guest memory, 2 vCPUs, device 7 (events 0 ..< 4 -> LPIs 8192 ..< 8196) and device 9
/// (events 0 ..< 4 -> LPIs 8196 ..< 8200) mapped, and MSI traffic on demand.
final class TrafficVM {
    let connection: ITSConnection
    let vm: ITSVM
    let ram = GuestRAM()

    init(socket: String) throws {
        connection = try ITSConnection(path: socket)
        vm = try connection.createVM(VMConfig(vcpuCount: 2, deviceIDBits: 16, eventIDBits: 16, intidBits: 16))
        try ram.attach(to: vm)
        try ram.mapDevice(7, events: 4, on: vm)
        try ram.submit([.mapd(DeviceID(9), ittAddress: GuestAddress(0x71_0000), eventIDBits: 8, valid: true)]
            + (0 ..< 4).map { .mapti(DeviceID(9), EventID($0), INTID(8196 + $0), CollectionID(UInt16($0 % 2))) }, to: vm)
        try connection.sync()
    }

    /// Posts `count` MSIs to device 7 and a quarter as many to device 9, then acknowledges every
    /// LPI on both vCPUs: LPIs are delivered, coalesced and acknowledged.
    func burst(_ count: Int = 400) throws {
        for index in 0 ..< count { try vm.post(deviceID: Wire.DeviceID(7), eventID: Wire.EventID(UInt32(index % 4))) }
        for index in 0 ..< count / 4 { try vm.post(deviceID: Wire.DeviceID(9), eventID: Wire.EventID(UInt32(index % 4))) }
        try connection.sync()
        for vcpu: UInt16 in 0 ..< 2 { while try vm.vcpu(vcpu).acknowledge() != nil {} }
    }

    /// Runs bursts until `child` exits; returns its result.
    func drive(_ child: ChildProcess, timeout: Double = 60) throws -> CommandResult {
        let start = ITSConnection.monotonicNanoseconds()
        while child.wait(seconds: 0) == nil {
            try burst()
            usleep(2_000)
            if Double(ITSConnection.monotonicNanoseconds() - start) / 1e9 > timeout {
                _ = child.stop()
                break
            }
        }
        return CommandResult(status: child.wait(seconds: 5) ?? -1, output: child.output, errors: child.errors)
    }
}

/// Starts itsctl with `arguments` without waiting for it.
func startItsctl(_ arguments: [String]) -> ChildProcess? {
    ChildProcess(productDirectory() + "/itsctl", arguments, environment: ["NO_COLOR": "1"])
}

import ITSClient
import ITSWire

/// The demo's handles on itsd, through ITSClient: the connection, its VM, the device's MSI vectors
/// and the vCPUs. Each call is one request and its reply; ITSClient's errors become `DemoError`s
/// that name the request.
final class ITSLink {
    let connection: ITSConnection
    let vm: ITSVM

    /// Connects to itsd at `path` (HELLO with the SNAPSHOT capability) and creates a VM (CREATE_VM);
    /// the connection is attached to it.
    init(path: String, config: VMConfig) throws(DemoError) {
        connection = try Self.attempt("connect to \(path)") { () throws(ITSClientError) in
            try ITSConnection(path: path, capabilities: [.snapshot])
        }
        guard connection.agreed.capabilities.contains(.snapshot) else {
            throw DemoError("itsd at \(path) did not agree the SNAPSHOT capability")
        }
        vm = try Self.attempt("CREATE_VM") { [connection] () throws(ITSClientError) in try connection.createVM(config) }
    }

    func destroyVM() throws(DemoError) {
        try Self.attempt("DESTROY_VM") { [vm] () throws(ITSClientError) in try vm.destroy() }
    }

    /// ADD_MEM_REGION with the memfd `fd` at file offset 0.
    func addMemoryRegion(fd: Int32, guestAddress: UInt64, size: UInt64) throws(DemoError) {
        try Self.attempt("ADD_MEM_REGION") { [vm] () throws(ITSClientError) in
            try vm.addMemoryRegion(fd: fd, guestAddress: guestAddress, size: size)
        }
    }

    func mmioRead(_ frame: MMIOFrame, offset: UInt64, width: MMIOWidth = .doubleword) throws(DemoError) -> UInt64 {
        try Self.attempt("MMIO_READ at 0x\(String(offset, radix: 16))") { [vm] () throws(ITSClientError) in
            try vm.mmioRead(frame, offset: offset, width: width)
        }
    }

    func mmioWrite(_ frame: MMIOFrame, offset: UInt64, value: UInt64, width: MMIOWidth = .doubleword) throws(DemoError) {
        try Self.attempt("MMIO_WRITE at 0x\(String(offset, radix: 16))") { [vm] () throws(ITSClientError) in
            try vm.mmioWrite(frame, offset: offset, value: value, width: width)
        }
    }

    /// BIND_IRQFD: each signal of `eventfd` becomes the MSI (deviceID, eventID). Replaces a binding.
    func bind(deviceID: UInt32, eventID: UInt32, eventfd: Int32) throws(DemoError) {
        try Self.attempt("BIND_IRQFD") { [vm] () throws(ITSClientError) in
            try vm.vectorGroup(deviceID: Wire.DeviceID(deviceID)).bind(eventID, eventfd: eventfd)
        }
    }

    /// UNBIND_IRQFD: itsd stops polling the eventfd and closes its copy.
    func unbind(deviceID: UInt32, eventID: UInt32) throws(DemoError) {
        try Self.attempt("UNBIND_IRQFD") { [vm] () throws(ITSClientError) in
            try vm.vectorGroup(deviceID: Wire.DeviceID(deviceID)).unbind(eventID)
        }
    }

    /// MASK: signals only latch until UNMASK.
    func mask(deviceID: UInt32, eventID: UInt32) throws(DemoError) {
        try Self.attempt("MASK") { [vm] () throws(ITSClientError) in
            try vm.vectorGroup(deviceID: Wire.DeviceID(deviceID)).mask(eventID)
        }
    }

    /// UNMASK: a latched signal is injected now.
    func unmask(deviceID: UInt32, eventID: UInt32) throws(DemoError) {
        try Self.attempt("UNMASK") { [vm] () throws(ITSClientError) in
            try vm.vectorGroup(deviceID: Wire.DeviceID(deviceID)).unmask(eventID)
        }
    }

    /// SET_VCPU_NOTIFY: itsd writes `eventfd` when `vcpu` gets an LPI to take.
    func setNotifier(vcpu: UInt16, eventfd: Int32) throws(DemoError) {
        try Self.attempt("SET_VCPU_NOTIFY") { [vm] () throws(ITSClientError) in try vm.vcpu(vcpu).setNotifier(eventfd) }
    }

    /// ACK with priority mask 0xFF: the vCPU's highest-priority pending LPI, now taken, or nil.
    func acknowledge(vcpu: UInt16) throws(DemoError) -> PendingLPI? {
        try Self.attempt("ACK") { [vm] () throws(ITSClientError) in try vm.vcpu(vcpu).acknowledge() }
    }

    /// SNAPSHOT_VM: the VM's whole ITS and LPI state, captured at once and read in chunks.
    func snapshot() throws(DemoError) -> [UInt8] {
        try Self.attempt("SNAPSHOT_VM") { [vm] () throws(ITSClientError) in try vm.snapshot() }
    }

    /// RESTORE_VM: loads `image` into this VM, which has not run.
    func restore(_ image: [UInt8]) throws(DemoError) {
        try Self.attempt("RESTORE_VM") { [vm] () throws(ITSClientError) in try vm.restore(image) }
    }

    private static func attempt<T>(_ request: String, _ body: () throws(ITSClientError) -> T) throws(DemoError) -> T {
        do {
            return try body()
        } catch {
            throw DemoError("itsd: \(request): \(error)")
        }
    }
}

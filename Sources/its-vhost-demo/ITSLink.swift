import ITSClient
import ITSWire
import ToolSupport

/// The demo's handles on itsd, through ITSClient: the connection, its VM, the device's MSI vectors
/// and the vCPUs. Each call is one request and its reply; ITSClient's errors become `ToolError`s
/// that name the request.
final class ITSLink {
    /// The VM's id and the token that attaches it.
    let id: VMID
    private let token: VMToken
    /// The VM through the current connection; nil while detached.
    private var attached: ITSVM?

    /// Connects to itsd at `path` (HELLO with the SNAPSHOT capability) and creates a VM (CREATE_VM);
    /// the connection is attached to it.
    init(path: String, config: VMConfig) throws(ToolError) {
        let connection = try Self.connect(path)
        let vm = try Self.attempt("CREATE_VM") { () throws(ITSClientError) in try connection.createVM(config) }
        id = vm.id
        token = vm.token
        attached = vm
    }

    private static func connect(_ path: String) throws(ToolError) -> ITSConnection {
        let connection = try attempt("connect to \(path)") { () throws(ITSClientError) in
            try ITSConnection(path: path, capabilities: [.snapshot])
        }
        guard connection.agreed.capabilities.contains(.snapshot) else {
            throw ToolError("itsd at \(path) did not agree the SNAPSHOT capability")
        }
        return connection
    }

    /// Closes the connection, as a VMM that crashed or lost its socket: the VM is orphaned and keeps
    /// its state for itsd's grace period.
    func detach() {
        attached = nil
    }

    /// A new connection to itsd at `path`, attached to the VM with ATTACH_VM and its token.
    func attach(path: String) throws(ToolError) {
        precondition(attached == nil, "attach while attached")
        let connection = try Self.connect(path)
        attached = try Self.attempt("ATTACH_VM") { [id, token] () throws(ITSClientError) in
            try connection.attachVM(id, token: token)
        }
    }

    /// Runs one request on the VM through the current connection.
    private func request<T>(_ name: String, _ body: (ITSVM) throws(ITSClientError) -> T) throws(ToolError) -> T {
        guard let attached else { throw ToolError("itsd: \(name): VM \(id) is detached") }
        return try Self.attempt(name) { () throws(ITSClientError) in try body(attached) }
    }

    func destroyVM() throws(ToolError) {
        try request("DESTROY_VM") { (vm: ITSVM) throws(ITSClientError) in try vm.destroy() }
    }

    /// ADD_MEM_REGION with the memfd `fd` at file offset 0.
    func addMemoryRegion(fd: Int32, guestAddress: UInt64, size: UInt64) throws(ToolError) {
        try request("ADD_MEM_REGION") { (vm: ITSVM) throws(ITSClientError) in
            try vm.addMemoryRegion(fd: fd, guestAddress: guestAddress, size: size)
        }
    }

    func mmioRead(_ frame: MMIOFrame, offset: UInt64, width: MMIOWidth = .doubleword) throws(ToolError) -> UInt64 {
        try request("MMIO_READ at 0x\(String(offset, radix: 16))") { (vm: ITSVM) throws(ITSClientError) in
            try vm.mmioRead(frame, offset: offset, width: width)
        }
    }

    func mmioWrite(_ frame: MMIOFrame, offset: UInt64, value: UInt64, width: MMIOWidth = .doubleword) throws(ToolError) {
        try request("MMIO_WRITE at 0x\(String(offset, radix: 16))") { (vm: ITSVM) throws(ITSClientError) in
            try vm.mmioWrite(frame, offset: offset, value: value, width: width)
        }
    }

    /// BIND_IRQFD: each signal of `eventfd` becomes the MSI (deviceID, eventID). Replaces a binding.
    func bind(deviceID: UInt32, eventID: UInt32, eventfd: Int32) throws(ToolError) {
        try request("BIND_IRQFD") { (vm: ITSVM) throws(ITSClientError) in
            try vm.vectorGroup(deviceID: Wire.DeviceID(deviceID)).bind(eventID, eventfd: eventfd)
        }
    }

    /// UNBIND_IRQFD: itsd stops polling the eventfd and closes its copy.
    func unbind(deviceID: UInt32, eventID: UInt32) throws(ToolError) {
        try request("UNBIND_IRQFD") { (vm: ITSVM) throws(ITSClientError) in
            try vm.vectorGroup(deviceID: Wire.DeviceID(deviceID)).unbind(eventID)
        }
    }

    /// MASK: signals only latch until UNMASK.
    func mask(deviceID: UInt32, eventID: UInt32) throws(ToolError) {
        try request("MASK") { (vm: ITSVM) throws(ITSClientError) in
            try vm.vectorGroup(deviceID: Wire.DeviceID(deviceID)).mask(eventID)
        }
    }

    /// UNMASK: a latched signal is injected now.
    func unmask(deviceID: UInt32, eventID: UInt32) throws(ToolError) {
        try request("UNMASK") { (vm: ITSVM) throws(ITSClientError) in
            try vm.vectorGroup(deviceID: Wire.DeviceID(deviceID)).unmask(eventID)
        }
    }

    /// SET_VCPU_NOTIFY: itsd writes `eventfd` when `vcpu` gets an LPI to take.
    func setNotifier(vcpu: UInt16, eventfd: Int32) throws(ToolError) {
        try request("SET_VCPU_NOTIFY") { (vm: ITSVM) throws(ITSClientError) in try vm.vcpu(vcpu).setNotifier(eventfd) }
    }

    /// ACK with priority mask 0xFF: the vCPU's highest-priority pending LPI, now taken, or nil.
    func acknowledge(vcpu: UInt16) throws(ToolError) -> PendingLPI? {
        try request("ACK") { (vm: ITSVM) throws(ITSClientError) in try vm.vcpu(vcpu).acknowledge() }
    }

    /// SNAPSHOT_VM: the VM's whole ITS and LPI state, captured at once and read in chunks.
    func snapshot() throws(ToolError) -> [UInt8] {
        try request("SNAPSHOT_VM") { (vm: ITSVM) throws(ITSClientError) in try vm.snapshot() }
    }

    /// RESTORE_VM: loads `image` into this VM, which has not run.
    func restore(_ image: [UInt8]) throws(ToolError) {
        try request("RESTORE_VM") { (vm: ITSVM) throws(ITSClientError) in try vm.restore(image) }
    }

    private static func attempt<T>(_ request: String, _ body: () throws(ITSClientError) -> T) throws(ToolError) -> T {
        do {
            return try body()
        } catch {
            throw ToolError("itsd: \(request): \(error)")
        }
    }
}

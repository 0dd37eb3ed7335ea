import CITSSupport
import CLibUV
import Glibc
import ITSModel
import ITSWire

/// One VM in the server, as the loop thread holds it: its ITS, its guest memory, the connections
/// attached to it, and the operations queued for its lanes.
/// - Context: the loop thread.
public final class ServerVM {
    public let key: VMKey
    public let token: VMToken
    public let config: VMConfig
    public var its: ITS
    public let memory: MappedGuestMemory
    public var operations: LaneRedistributors
    /// Connections that created or attached the VM.
    public private(set) var attached: Set<UInt64> = []
    /// When the last client left, in the registry's clock (nil while a client is attached).
    public private(set) var orphanedAt: UInt64?
    /// Bound eventfds by (DeviceID, EventID).
    var irqfds: [IRQFDKeyPair: IRQFDBinding] = [:]
    /// MSIs by source, outcome and device (STATS).
    var msis = MSIStatistics()
    /// Guest errors at the ITS, logged with a rate limit.
    var guestErrors = GuestErrorLog()
    /// A SNAPSHOT_VM capture waiting for the lanes to owe the loop nothing.
    var captureWaiting: (() -> Void)?
    /// A capture has asked the lanes for their redistributors and waits for them.
    var capturing = false
    /// While a capture is waiting or under way the ITS takes no commands: they are the only source
    /// of work that crosses back from the lanes (see Server+Snapshot.swift).
    var commandsHeld: Bool { captureWaiting != nil || capturing }
    /// When the VM was created or last restored (uv_hrtime): STATS `vm_uptime_seconds`.
    var startedAt = uv_hrtime()
    /// An MMIO write or an MSI reached the VM: RESTORE_VM is no longer allowed.
    var guestHasRun = false
    var hasNotRun: Bool { !guestHasRun && !msis.any && !its.enabled && its.devices.isEmpty && its.collections.isEmpty }
    public static let maximumIRQFDs = 4096

    init(key: VMKey, token: VMToken, config: VMConfig, lanes: LaneGroup, maximumRegions: Int) {
        self.key = key
        self.token = token
        self.config = config
        its = ITS(ITS.Configuration(deviceIDBits: Int(config.deviceIDBits), eventIDBits: Int(config.eventIDBits),
                                    intidBits: Int(config.intidBits), vcpuCount: Int(config.vcpuCount)))
        memory = MappedGuestMemory(maximumRegions: maximumRegions)
        operations = LaneRedistributors(vm: key, vcpuCount: Int(config.vcpuCount), lanes: lanes)
        for vcpu in 0 ..< Int(config.vcpuCount) {
            let index = VCPUIndex(UInt16(vcpu))
            let redistributor = Redistributor(.init(vcpu: index, isLast: vcpu == Int(config.vcpuCount) - 1,
                                                    intidBits: Int(config.intidBits)))
            operations.queue(.attach(key, memory: memory, redistributors: [redistributor]), for: index)
        }
        operations.flush()
    }

    /// Releases what the VM holds outside its memory: eventfd bindings.
    func close() {
        irqfds.values.forEach { $0.close() }
        irqfds.removeAll()
    }

    /// Set when the registry forgets the VM (destroyed, grace period over): a session's cached
    /// resolution of it (``Session/lastVM``) is then stale.
    fileprivate(set) var isRemoved = false
    /// Whether the VM is in the server's list of VMs whose lane work waits for the next flush.
    var isDirty = false
    /// The lane work queued for sessions' NO_REPLY requests since the last flush, released by
    /// barriers queued behind it.
    var laneWorkCharges: [LaneWorkCharge] = []

    func attach(_ connection: UInt64) {
        attached.insert(connection)
        orphanedAt = nil
    }

    /// Detaches a connection; returns true when it was the last one (the grace period starts).
    func detach(_ connection: UInt64, now: UInt64) -> Bool {
        guard attached.remove(connection) != nil, attached.isEmpty else { return false }
        orphanedAt = now
        return true
    }
}

/// The VMs of the server: creation with an unguessable token, attach by token, destroy, listing,
/// and the grace period that keeps a VM whose clients all disconnected.
/// - Context: the loop thread.
public final class VMRegistry {
    public enum Failure: Error, Hashable, Sendable {
        case badConfig
        case noSuchVM
        case badToken
        case notAttached
        case tooManyVMs
    }

    public let lanes: LaneGroup
    /// Milliseconds a VM without clients lives on.
    public var gracePeriod: UInt64
    public var maximumVMs: Int
    public var maximumRegionsPerVM: Int
    public private(set) var vms: [VMKey: ServerVM] = [:]
    private var nextKey: UInt32 = 1

    public init(lanes: LaneGroup, gracePeriod: UInt64 = 60_000, maximumVMs: Int = 256, maximumRegionsPerVM: Int = 64) {
        self.lanes = lanes
        self.gracePeriod = gracePeriod
        self.maximumVMs = maximumVMs
        self.maximumRegionsPerVM = maximumRegionsPerVM
    }

    /// Creates a VM attached to `connection`.
    public func create(_ config: VMConfig, by connection: UInt64) -> Result<ServerVM, Failure> {
        guard (1 ... 512).contains(config.vcpuCount), (1 ... 32).contains(config.deviceIDBits),
              (1 ... 32).contains(config.eventIDBits), (14 ... 32).contains(config.intidBits)
        else { return .failure(.badConfig) }
        guard vms.count < maximumVMs else { return .failure(.tooManyVMs) }
        while vms[VMKey(nextKey)] != nil || nextKey == 0 || nextKey == .max { nextKey &+= 1 }
        let key = VMKey(nextKey)
        nextKey &+= 1
        let vm = ServerVM(key: key, token: Self.randomToken(), config: config, lanes: lanes,
                          maximumRegions: maximumRegionsPerVM)
        vm.attach(connection)
        vms[key] = vm
        return .success(vm)
    }

    /// Attaches `connection` to a VM whose token it knows.
    public func attach(_ key: VMKey, token: VMToken, by connection: UInt64) -> Result<ServerVM, Failure> {
        guard let vm = vms[key] else { return .failure(.noSuchVM) }
        guard vm.token.matches(token) else { return .failure(.badToken) }
        vm.attach(connection)
        return .success(vm)
    }

    /// Attaches `connection` to a VM without its token: an operator's (``Server/Configuration/operatorUIDs``).
    public func attachAsOperator(_ key: VMKey, by connection: UInt64) -> Result<ServerVM, Failure> {
        guard let vm = vms[key] else { return .failure(.noSuchVM) }
        vm.attach(connection)
        return .success(vm)
    }

    /// The VM, if `connection` is attached to it.
    public func vm(_ key: VMKey, for connection: UInt64) -> Result<ServerVM, Failure> {
        guard let vm = vms[key] else { return .failure(.noSuchVM) }
        guard vm.attached.contains(connection) else { return .failure(.notAttached) }
        return .success(vm)
    }

    /// Destroys a VM `connection` is attached to.
    public func destroy(_ key: VMKey, by connection: UInt64) -> Result<Void, Failure> {
        switch vm(key, for: connection) {
        case .failure(let failure): return .failure(failure)
        case .success: remove(key)
        }
        return .success(())
    }

    /// A connection closed: it leaves every VM it was attached to.
    public func connectionClosed(_ connection: UInt64, now: UInt64) {
        for vm in vms.values { _ = vm.detach(connection, now: now) }
    }

    /// Destroys every VM whose grace period has run out; returns their keys.
    @discardableResult
    public func expire(now: UInt64) -> [VMKey] {
        let expired = vms.values.filter { vm in vm.orphanedAt.map { now >= $0 + gracePeriod } ?? false }.map(\.key)
        expired.forEach(remove)
        return expired.sorted()
    }

    /// Forgets the VM and tells its lanes to drop their state. Its memory is unmapped once the
    /// lanes have let go of it (they hold the last references).
    private func remove(_ key: VMKey) {
        guard let vm = vms.removeValue(forKey: key) else { return }
        vm.isRemoved = true
        vm.close()
        for lane in lanes.lanes { lane.submit(.detach(key, ticket: nil)) }
    }

    /// 128 bits from the kernel's random number generator; never the all-zero operator token.
    static func randomToken() -> VMToken {
        while true {
            var words: (UInt64, UInt64) = (0, 0)
            let count = withUnsafeMutableBytes(of: &words) { its_getrandom($0.baseAddress, 16) }
            precondition(count == 16, "getrandom")
            let token = VMToken(high: words.0, low: words.1)
            if !token.matches(.operatorAttachToken) { return token }
        }
    }
}

extension VMToken {
    /// Sixteen zero bytes: what an operator sends to ATTACH_VM (Protocol/PROTOCOL.md, 6.4).
    static let operatorAttachToken = VMToken(high: 0, low: 0)
}

/// (DeviceID, EventID) of an eventfd binding.
struct IRQFDKeyPair: Hashable {
    var device: DeviceID
    var event: EventID
}

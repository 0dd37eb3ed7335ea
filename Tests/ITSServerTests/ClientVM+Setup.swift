import ITSModel
@testable import ITSServer
import ITSWire

/// The setup most server tests share: a client that has said HELLO, a VM of the usual shape (2
/// vCPUs, 16-bit IDs), all of the client's RAM mapped into it, and LPIs 8192...8195 programmed
/// (``ClientVM/programGuest()``).
extension ClientVM {
    /// The VM configuration the tests use unless they say otherwise: 2 vCPUs, 16-bit IDs.
    static let usualConfig = VMConfig(vcpuCount: 2, deviceIDBits: 16, eventIDBits: 16, intidBits: 16)

    /// A connection that has completed HELLO with `limits` (0: the default) and every capability.
    static func hello(_ path: String, limits: Limits = Limits(maxFrameLength: 0, maxBatchEntries: 0, maxInFlight: 0, maxFDsPerMessage: 0)) -> ClientVM? {
        guard let client = TestClient(path: path) else { return nil }
        let vm = ClientVM(client: client)
        guard case .helloReply? = vm.call(.hello(Hello(capabilities: .defined, limits: limits)))?.message else { return nil }
        return vm
    }

    /// Creates a VM of ``usualConfig`` and makes it this client's `vm`.
    func createVM() -> Bool {
        guard case let .createVMReply(id, _)? = call(.createVM(Self.usualConfig))?.message else { return false }
        vm = id
        return true
    }

    /// Maps all of this client's RAM (its memfd) at guest address 0 of `vm`; the reply.
    func mapAllRAM() -> Frame? {
        call(.addMemRegion(MemRegion(vm: vm, guestAddress: 0, size: UInt64(Self.ramSize), fileOffset: 0)), fds: [memfd])
    }

    /// Creates a VM, maps all of this client's RAM into it and programs LPIs 8192...8195
    /// (``programGuest()``), checking each step: false when one fails.
    func createProgrammedVM() -> Bool {
        guard createVM(), mapAllRAM()?.status == .ok else { return false }
        _ = programGuest()
        return mmioRead(.its, 0x90) == 6 * 32   // GITS_CREADR: all six commands done
    }

    /// HELLO with `capabilities` and the default limits, then a VM set up as ``createProgrammedVM()``
    /// sets one up, for tests that check the outcome later: only CREATE_VM's reply is looked at.
    /// Returns the VM (now `vm`), nil when CREATE_VM is refused.
    func helloAndProgrammedVM(capabilities: Capabilities = .defined) -> VMID? {
        _ = call(.hello(Hello(capabilities: capabilities, limits: .defaults)))
        guard createVM() else { return nil }
        _ = mapAllRAM()
        _ = programGuest()
        return vm
    }

    /// Another connection to `path`, attached to this client's VM as an operator (the tests run as
    /// root or as the server's own uid), with the default limits and every capability.
    func attachAnother(_ path: String) -> ClientVM? {
        guard let client = TestClient(path: path) else { return nil }
        let other = ClientVM(client: client)
        _ = other.call(.hello(Hello(capabilities: .defined, limits: .defaults)))
        guard other.call(.attachVM(vm, token: .operatorAttachToken))?.status == .ok else { return nil }
        other.vm = vm
        return other
    }

    /// One figure of STATS for `id` (the whole server by default), as a number.
    func stat(_ name: String, of id: VMID = .all) -> Int64? {
        guard let frame = call(.stats(id, includeSchema: true)), let values = StatsLog.values(frame) else { return nil }
        switch values[name] {
        case .counter(let value)?: return Int64(value)
        case .gauge(let value)?: return value
        default: return nil
        }
    }

    /// Gives LPI 8192 + `event` of a VM set up by ``programGuest()`` the configuration byte `config`
    /// and makes the ITS read it again: an INV in the seventh slot of the command queue (the first
    /// command after the six of ``programGuest()``; one use per VM).
    func reconfigure(event: UInt32, _ config: UInt8) {
        precondition(mmioRead(.its, ITS.Offset.cwriter) == 6 * 32, "reconfigure(event:_:) runs once per VM, after programGuest()")
        write8(config, at: 0x10_0000 + UInt64(event))
        let inv = ITSCommand.inv(DeviceID(7), EventID(event)).encoded
        for (word, value) in [inv.0, inv.1, inv.2, inv.3].enumerated() { write64(value, at: 0x40_0000 + 6 * 32 + UInt64(word * 8)) }
        _ = mmioWrite(.its, ITS.Offset.cwriter, 7 * 32)
    }
}


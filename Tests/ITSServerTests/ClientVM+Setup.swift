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
}

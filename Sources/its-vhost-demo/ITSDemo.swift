import ITSWire
import ToolSupport

/// The demo with itsd: the VM, the guest's ITS programming, the binding of the back-end's call
/// eventfd, and the run with its phases.
extension VhostDemo {
    /// The device's requester ID (bus 0, device 1, function 0): its DeviceID at the ITS.
    static let deviceID: UInt32 = 0x0008
    /// MSI-X vector 1, virtqueue 0's (vector 0 would be the configuration vector): the EventID.
    static let queueEvent: UInt32 = 1
    /// The LPI the guest maps the queue's event to.
    static let queueLPI: UInt32 = 8192 + 64
    static let vmBits: UInt8 = 16

    /// The VM: --vcpus vCPUs, 16-bit DeviceIDs, EventIDs and INTIDs.
    var vmConfig: VMConfig {
        VMConfig(vcpuCount: UInt16(vcpus), deviceIDBits: Self.vmBits, eventIDBits: Self.vmBits, intidBits: Self.vmBits)
    }

    func runWithITS(device: BlockDevice, scratch: ScratchDirectory, log: StepLog) throws(ToolError) -> DemoReport {
        let own = socket == nil ? try OwnItsd(executable: itsd, scratch: scratch) : nil
        let itsdPath = socket ?? own!.socketPath
        if own != nil { log("itsd started at \(itsdPath)") }
        var link = try ITSLink(path: itsdPath, config: vmConfig)
        try link.addMemoryRegion(fd: device.ram.fd, guestAddress: 0, size: device.ram.size)
        log("itsd: VM \(link.id) with \(vcpus) vCPUs; guest RAM (\(device.ram.size >> 20) MiB memfd) added at 0")
        let guest = GuestITSDriver(link: link, ram: device.ram, vcpus: vcpus, intidBits: Self.vmBits, timeoutSeconds: answerTimeout)
        try guest.initialize()
        // One EventID bit: vectors 0 (configuration) and 1 (the queue).
        try guest.mapEvent(deviceID: Self.deviceID, eventBits: 1, eventID: Self.queueEvent, intid: Self.queueLPI, collection: 0)
        log("guest: ITS enabled, collection n on vCPU n; DeviceID 0x\(String(Self.deviceID, radix: 16)) "
            + "EventID \(Self.queueEvent) -> LPI \(Self.queueLPI) in collection 0 (MAPD, MAPC, MAPTI, SYNC)")
        let path = try LPIPath(link: link, vcpus: vcpus, intid: Self.queueLPI)
        log("itsd: a notify eventfd for each vCPU (SET_VCPU_NOTIFY)")
        // Where a VMM on KVM would call KVM_IRQFD with an MSI route: bind the call eventfd at itsd.
        let bindCall = { (call: EventFD) throws(ToolError) in
            try link.bind(deviceID: Self.deviceID, eventID: Self.queueEvent, eventfd: call.fd)
        }
        try device.connect(beforeEnable: bindCall)
        log("vhost-user: features, owner, memory table, vring 0 set up; call eventfd bound (BIND_IRQFD); ring enabled")
        let workload = Workload(device: device, path: path, silenceMilliseconds: timeout * 1000)
        // The back-end signals every new call fd once: an LPI with nothing in the used ring.
        try workload.settle(milliseconds: 50)

        let phases = Phase.allCases.filter { !skippedPhases.contains($0) }
        let maskRequests = phases.contains(.mask) ? queueDepth : 0
        let reattachRequests = phases.contains(.reattach) ? queueDepth : 0
        let migrateRequests = phases.contains(.migrate) ? queueDepth : 0
        let first = (requests - maskRequests - reattachRequests - migrateRequests) / 2
        let second = requests - maskRequests - reattachRequests - migrateRequests - first
        var results: [PhaseResult] = []
        log("running \(first) requests, \(queueDepth) in flight")
        var complete = try workload.run(count: first, queueDepth: queueDepth)
        if complete, phases.contains(.mask) {
            log("phase mask: MASK, \(maskRequests) requests, UNMASK")
            let result = try maskPhase(workload: workload, link: link, path: path, count: maskRequests)
            results.append(result)
            complete = result.passed
        }
        var reconnect: (starts: Int, spurious: Int, slot: Int, completions: Int)?
        if complete, phases.contains(.reconnect) {
            log("phase reconnect: SIGKILL to the back-end, a new one, the whole setup with a new call eventfd")
            try workload.settle(milliseconds: 20)
            let emptyBefore = workload.interruptsWithoutCompletion
            let startsBefore = device.daemon.starts
            try device.crashAndReconnect(beforeEnable: bindCall)
            try workload.settle(milliseconds: 50)
            reconnect = (device.daemon.starts - startsBefore, workload.interruptsWithoutCompletion - emptyBefore, results.count,
                         workload.completions)
        }
        if complete, phases.contains(.reattach) {
            log("phase reattach: the connection to itsd closed, \(reattachRequests) requests, ATTACH_VM on a new one")
            let result = try reattachPhase(workload: workload, link: link, path: path, count: reattachRequests, itsdPath: itsdPath)
            results.append(result)
            complete = result.passed
        }
        if complete, phases.contains(.migrate) {
            log("phase migrate: \(migrateRequests) requests left pending, SNAPSHOT_VM, RESTORE_VM into a new VM")
            let (result, destination) = try migratePhase(workload: workload, source: link, path: path, count: migrateRequests,
                                                          itsdPath: itsdPath, ram: device.ram, call: device.call)
            results.append(result)
            complete = result.passed
            link = destination
            guest.link = destination
        }
        var moved: [Int]?
        if complete {
            log("running \(second) requests" + (phases.contains(.movi) ? ", MOVI to collection 1 (vCPU 1) halfway" : ""))
            complete = try workload.run(count: second, queueDepth: queueDepth, midway: phases.contains(.movi) ? {
                () throws(ToolError) in
                try guest.move(deviceID: Self.deviceID, eventID: Self.queueEvent, to: 1)
                log("phase movi: MOVI and SYNC done (GITS_CREADR caught up)")
                moved = path.acknowledged
            } : nil)
            try workload.settle(milliseconds: 50)
            if phases.contains(.movi) { results.append(moviPhase(path: path, atMove: moved, complete: complete)) }
        }
        if let reconnect {
            // The requests after it decide the phase; its result goes where it ran.
            let after = workload.completions - reconnect.completions
            var failure = ""
            if reconnect.spurious == 0 { failure = "no LPI for the new call fd's first signal" }
            else if !complete || after == 0 { failure = "requests after the reconnect were lost" }
            results.insert(PhaseResult(name: "reconnect", passed: reconnect.starts == 1 && failure.isEmpty,
                                       figures: [("backend_restarts", reconnect.starts), ("spurious_lpis", reconnect.spurious),
                                                 ("completions_after", after)],
                                       failure: failure), at: reconnect.slot)
        }
        log("\(workload.completions) of \(workload.requests) requests completed; DESTROY_VM")
        try link.destroyVM()
        try own?.stop()
        return DemoReport(mode: "itsd", workload: workload, device: device, phases: results, lpisAcked: path.totalAcknowledged)
    }

    /// MASK the binding, let requests complete (no LPI may arrive), UNMASK: the latched signal must
    /// arrive as an LPI and return every one of them.
    private func maskPhase(workload: Workload, link: ITSLink, path: LPIPath, count: Int) throws(ToolError) -> PhaseResult {
        try workload.settle(milliseconds: 20)
        let acknowledgedBefore = path.totalAcknowledged
        let target = workload.completions + count
        try link.mask(deviceID: Self.deviceID, eventID: Self.queueEvent)
        try workload.submitUnserviced(count: count, queueDepth: queueDepth)
        // Every request is in the used ring and the back-end has signalled; give itsd time to (wrongly) deliver.
        let ready = try pollReadable(path.pollFDs, timeoutMilliseconds: 100)
        let whileMasked = ready.isEmpty ? 0 : try path.acknowledge(readable: ready) { () throws(ToolError) in }
        let unmaskedAt = monotonicNanoseconds()
        try link.unmask(deviceID: Self.deviceID, eventID: Self.queueEvent)
        var firstLPI: UInt64?
        while workload.completions < target {
            let before = path.totalAcknowledged
            guard try workload.service(timeoutMilliseconds: timeout * 1000, measured: false) else { break }
            if firstLPI == nil, path.totalAcknowledged > before { firstLPI = monotonicNanoseconds() }
        }
        let latched = path.totalAcknowledged - acknowledgedBefore - whileMasked
        let returned = count - (target - workload.completions)
        var failure = ""
        if whileMasked > 0 { failure = "\(whileMasked) LPI(s) arrived while masked" }
        else if latched == 0 { failure = "no LPI after UNMASK" }
        else if returned < count { failure = "\(count - returned) masked request(s) never returned" }
        return PhaseResult(name: "mask", passed: failure.isEmpty,
                           figures: [("masked_requests", count), ("lpis_while_masked", whileMasked), ("latched_lpis", latched),
                                     ("returned", returned),
                                     ("unmask_to_lpi_us", firstLPI.map { Int(($0 - unmaskedAt) / 1000) } ?? -1)],
                           failure: failure)
    }

    /// The VMM loses its connection to itsd: the VM is orphaned, but its binding and notify eventfds
    /// stay, so requests completing meanwhile still make the LPI pending and write the notify
    /// eventfd. A new connection attaches with the token and takes the LPI, which returns them all.
    private func reattachPhase(workload: Workload, link: ITSLink, path: LPIPath, count: Int,
                               itsdPath: String) throws(ToolError) -> PhaseResult {
        try workload.settle(milliseconds: 20)
        let target = workload.completions + count
        link.detach()
        try workload.submitUnserviced(count: count, queueDepth: queueDepth)
        let notified = try !pollReadable(path.pollFDs, timeoutMilliseconds: timeout * 1000).isEmpty
        try link.attach(path: itsdPath)
        let (lpis, returned) = try serviceUntil(target, of: count, workload: workload, path: path)
        var failure = ""
        if !notified { failure = "no notify eventfd was written while detached" }
        else if lpis == 0 { failure = "no LPI after ATTACH_VM" }
        else if returned < count { failure = "\(count - returned) request(s) completed while detached never returned" }
        return PhaseResult(name: "reattach", passed: failure.isEmpty,
                           figures: [("requests_while_detached", count), ("notified_while_detached", notified ? 1 : 0),
                                     ("lpis_after_attach", lpis), ("returned", returned)],
                           failure: failure)
    }

    /// Services the queue until `target` completions or a timeout; returns the LPIs acknowledged
    /// meanwhile and how many of the last `count` requests came back.
    private func serviceUntil(_ target: Int, of count: Int, workload: Workload,
                              path: LPIPath) throws(ToolError) -> (lpis: Int, returned: Int) {
        let acknowledgedBefore = path.totalAcknowledged
        while workload.completions < target {
            guard try workload.service(timeoutMilliseconds: timeout * 1000, measured: false) else { break }
        }
        return (path.totalAcknowledged - acknowledgedBefore, count - (target - workload.completions))
    }

    /// A migration with an LPI pending: the requests complete and their LPI is pending (its notify
    /// eventfd written) but not taken; the binding is masked and the VM captured with SNAPSHOT_VM; a
    /// new VM on a new connection gets the same RAM, notify eventfds, RESTORE_VM and the call eventfd;
    /// the source is destroyed. The restored LPI must arrive through the new VM and return them all.
    private func migratePhase(workload: Workload, source: ITSLink, path: LPIPath, count: Int, itsdPath: String,
                              ram: GuestRAM, call: EventFD) throws(ToolError) -> (PhaseResult, ITSLink) {
        try workload.settle(milliseconds: 20)
        let target = workload.completions + count
        try workload.submitUnserviced(count: count, queueDepth: queueDepth)
        let pendingAtSource = try !pollReadable(path.pollFDs, timeoutMilliseconds: timeout * 1000).isEmpty
        try source.mask(deviceID: Self.deviceID, eventID: Self.queueEvent)
        let image = try source.snapshot()

        let destination = try ITSLink(path: itsdPath, config: vmConfig)
        try destination.addMemoryRegion(fd: ram.fd, guestAddress: 0, size: ram.size)
        try path.switchTo(destination)
        try destination.restore(image)
        try source.unbind(deviceID: Self.deviceID, eventID: Self.queueEvent)
        try source.destroyVM()
        try destination.bind(deviceID: Self.deviceID, eventID: Self.queueEvent, eventfd: call.fd)

        let (restored, returned) = try serviceUntil(target, of: count, workload: workload, path: path)
        var failure = ""
        if !pendingAtSource { failure = "no LPI became pending before the snapshot" }
        else if restored == 0 { failure = "no LPI arrived from the restored VM" }
        else if returned < count { failure = "\(count - returned) request(s) pending at the snapshot never returned" }
        return (PhaseResult(name: "migrate", passed: failure.isEmpty,
                            figures: [("image_bytes", image.count), ("requests_pending_at_snapshot", count),
                                      ("restored_lpis", restored), ("returned", returned)],
                            failure: failure), destination)
    }

    /// After MOVI to collection 1 every LPI must be taken on vCPU 1, none on vCPU 0.
    private func moviPhase(path: LPIPath, atMove: [Int]?, complete: Bool) -> PhaseResult {
        guard let atMove else {
            return PhaseResult(name: "movi", passed: false, figures: [], failure: "the run ended before the move")
        }
        let before = atMove[0]
        let oldAfter = path.acknowledged[0] - atMove[0]
        let newAfter = path.acknowledged[1] - atMove[1]
        var failure = ""
        if before == 0 || atMove[1] != 0 { failure = "LPIs were not on vCPU 0 alone before the move" }
        else if oldAfter > 0 { failure = "\(oldAfter) LPI(s) taken on vCPU 0 after the move" }
        else if newAfter == 0 { failure = "no LPI on vCPU 1 after the move" }
        else if !complete { failure = "requests after the move were lost" }
        return PhaseResult(name: "movi", passed: failure.isEmpty,
                           figures: [("lpis_vcpu0_before", before), ("lpis_vcpu0_after", oldAfter), ("lpis_vcpu1_after", newAfter)],
                           failure: failure)
    }
}

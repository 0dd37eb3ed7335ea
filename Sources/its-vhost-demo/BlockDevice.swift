/// The VMM's side of one vhost-user-blk device: the guest's virtqueue and driver, the connection to
/// the back-end, and the kick and call eventfds. A reconnect replays the whole vhost-user setup on a
/// new connection with a new call eventfd and resumes the ring where the driver left it.
import ToolSupport

final class BlockDevice {
    let daemon: StorageDaemon
    let ram: GuestRAM
    let ring: SplitVirtqueue
    let driver: VirtioBlkDriver
    let kick: EventFD
    /// The back-end's interrupt: it writes here after adding used elements.
    private(set) var call: EventFD
    /// The open vhost-user connection: the back-end serves the ring only while it stays open.
    private var frontEnd: VhostUserFrontEnd?

    /// How long the back-end may take to answer a vhost-user request.
    private let timeoutSeconds: Int

    init(daemon: StorageDaemon, ram: GuestRAM, queueDepth: Int, timeoutSeconds: Int) throws(ToolError) {
        self.daemon = daemon
        self.timeoutSeconds = timeoutSeconds
        self.ram = ram
        ring = SplitVirtqueue(ram: ram, layout: GuestMemoryMap.ring, size: GuestMemoryMap.ringSize(queueDepth: queueDepth))
        // 4 KiB blocks, four times as many as fit in flight, so requests rarely wait for a busy block.
        driver = VirtioBlkDriver(ring: ring, buffers: GuestMemoryMap.requestBuffers, queueDepth: queueDepth,
                                 blockCount: 4 * queueDepth + 8, retainsData: daemon.backend == .file)
        kick = try EventFD()
        call = try EventFD()
    }

    /// Connects to the running daemon and sets the ring up with the current call eventfd. The ring
    /// is not enabled yet: `beforeEnable` runs first (the VMM binds the call eventfd there), then
    /// SET_VRING_ENABLE.
    func connect(beforeEnable: (EventFD) throws(ToolError) -> Void = { _ throws(ToolError) in }) throws(ToolError) {
        let frontEnd = try VhostUserFrontEnd(path: daemon.socketPath, timeoutSeconds: timeoutSeconds)
        try frontEnd.setUp(ram: ram, ring: ring, kick: kick, call: call)
        let neededSectors = UInt64(driver.blockCount) * VirtioBlkDriver.sectorsPerBlock
        guard frontEnd.capacitySectors >= neededSectors else {
            throw ToolError("the disk has \(frontEnd.capacitySectors) sectors; the demo needs \(neededSectors)")
        }
        try beforeEnable(call)
        try frontEnd.enable()
        self.frontEnd = frontEnd
    }

    /// Plays a back-end crash and recovery: SIGKILL, a new daemon, a new call eventfd (the old one
    /// may hold a stale signal and the back-end is gone), the full setup again. The driver must have
    /// nothing in flight: qemu-storage-daemon 7.2 has no in-flight tracking (INFLIGHT_SHMFD), so
    /// requests caught by a crash would have to be resubmitted by the guest.
    func crashAndReconnect(beforeEnable: (EventFD) throws(ToolError) -> Void) throws(ToolError) {
        precondition(driver.inFlight == 0, "reconnect with requests in flight")
        frontEnd = nil
        daemon.crash()
        try daemon.start()
        call = try EventFD()
        try connect(beforeEnable: beforeEnable)
    }

    /// Makes requests available until `limit` are in flight or `budget` runs out, then kicks once.
    /// Returns how many were submitted.
    func submit(upTo limit: Int, budget: Int, now: UInt64) throws(ToolError) -> Int {
        var count = 0
        while count < budget, driver.inFlight < limit, driver.submit(now: now) { count += 1 }
        if count > 0 { try kick.signal() }
        return count
    }
}

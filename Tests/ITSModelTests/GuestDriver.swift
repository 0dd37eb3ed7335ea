@testable import ITSModel

/// Plays a guest's GIC driver against a ``VirtualGIC``: lays out the LPI and ITS tables in guest
/// memory, programs the registers, and writes commands into the queue as Linux's ITS driver does.
struct GuestDriver {
    static let memorySize = 64 << 20
    static let configTable = GuestAddress(0x10_0000)
    static let pendingTables = GuestAddress(0x20_0000)      // 64K apart, one per vCPU
    static let commandQueue = GuestAddress(0x80_0000)
    static let collectionTable = GuestAddress(0x90_0000)
    static let deviceTable = GuestAddress(0xA0_0000)
    static let level2Pages = GuestAddress(0xC0_0000)        // for two-level device tables
    static let itts = GuestAddress(0x100_0000)              // 64K per device

    var gic: VirtualGIC<InMemoryGuestMemory, DeliveryLog>
    let memory: InMemoryGuestMemory
    let queuePages: Int

    /// A VM with LPIs enabled on every vCPU and an enabled ITS.
    init(vcpus: Int = 4, deviceIDBits: Int = 16, eventIDBits: Int = 16, queuePages: Int = 1,
         twoLevelDeviceTable: Bool = false, enableITS: Bool = true, cacheLimit: Int = 1 << 22,
         maximumDevices: Int = 1 << 20, maximumEvents: Int = 1 << 22)
    {
        memory = InMemoryGuestMemory(base: GuestAddress(0), size: Self.memorySize)
        self.queuePages = queuePages
        gic = VirtualGIC(ITS.Configuration(deviceIDBits: deviceIDBits, eventIDBits: eventIDBits, intidBits: 16,
                                           vcpuCount: vcpus, translationCacheLimit: cacheLimit,
                                           maximumDevices: maximumDevices, maximumEvents: maximumEvents),
                         memory: memory, sink: DeliveryLog())
        for vcpu in 0 ..< vcpus {
            let v = VCPUIndex(UInt16(vcpu))
            gic.writeRedistributor(v, Redistributor.Offset.propbaser, Self.configTable.rawValue | 15)
            gic.writeRedistributor(v, Redistributor.Offset.pendbaser,
                                   Self.pendingTables.rawValue + UInt64(vcpu) * 0x1_0000 | 1 << 62)
            gic.writeRedistributor(v, Redistributor.Offset.ctlr, 1, width: .word)
        }
        gic.writeITS(ITS.Offset.cbaser, 1 << 63 | Self.commandQueue.rawValue | UInt64(queuePages - 1))
        // Device table: 64K pages; flat 8 pages (65536 DTEs), or two-level with one page of level-1 entries.
        if twoLevelDeviceTable {
            gic.writeITS(ITS.Offset.baser0, 1 << 63 | 1 << 62 | 2 << 8 | Self.deviceTable.rawValue)
        } else {
            gic.writeITS(ITS.Offset.baser0, 1 << 63 | 2 << 8 | Self.deviceTable.rawValue | 7)
        }
        gic.writeITS(ITS.Offset.baser0 + 8, 1 << 63 | Self.collectionTable.rawValue)   // one 4K page: 512 ICIDs
        if enableITS { gic.writeITS(ITS.Offset.ctlr, 1, width: .word) }
    }

    /// Writes LPI `intid`'s configuration byte (what the guest does before INV).
    func configure(_ intid: UInt32, priority: UInt8 = 0xA0, enabled: Bool = true) {
        try! memory.writeUInt8(LPIConfig(priority: Priority(priority), enabled: enabled).rawValue,
                               at: Self.configTable.adding(UInt64(intid) - 8192)!)
    }

    /// Points level-1 entry `index` of a two-level device table at a fresh 64K page.
    func provideLevel2Page(_ index: UInt64) {
        let page = Self.level2Pages.rawValue + index * 0x1_0000
        try! memory.writeUInt64(1 << 63 | page, at: Self.deviceTable.adding(index * 8)!)
    }

    static func itt(of device: UInt32) -> GuestAddress { itts.adding(UInt64(device) * 0x1_0000)! }

    // MARK: - Commands

    /// Queues the four doublewords of one command and advances CWRITER, which processes the queue.
    @discardableResult
    mutating func send(_ dw0: UInt64, _ dw1: UInt64 = 0, _ dw2: UInt64 = 0, _ dw3: UInt64 = 0,
                       budget: Int = ITS.defaultWorkBudget) -> MMIOIgnoredReason?
    {
        queue(dw0, dw1, dw2, dw3)
        return flush(budget: budget)
    }

    /// Writes one command at CWRITER and moves the local CWRITER, without telling the ITS.
    mutating func queue(_ dw0: UInt64, _ dw1: UInt64 = 0, _ dw2: UInt64 = 0, _ dw3: UInt64 = 0) {
        let offset = pendingWriter ?? gic.its.cwriter
        let address = Self.commandQueue.adding(offset)!
        for (index, word) in [dw0, dw1, dw2, dw3].enumerated() {
            try! memory.writeUInt64(word, at: address.adding(UInt64(index * 8))!)
        }
        pendingWriter = (offset + 32) % UInt64(queuePages * 4096)
    }

    /// CWRITER as the guest will publish it, while commands are queued but not yet published.
    var pendingWriter: UInt64?

    /// Publishes every queued command by writing CWRITER.
    @discardableResult
    mutating func flush(budget: Int = ITS.defaultWorkBudget, retry: Bool = false) -> MMIOIgnoredReason? {
        let writer = pendingWriter ?? gic.its.cwriter
        pendingWriter = nil
        return gic.writeITS(ITS.Offset.cwriter, writer | (retry ? 1 : 0), budget: budget)
    }

    static func mapd(_ device: UInt32, eventBits: Int = 8, itt: GuestAddress? = nil, valid: Bool = true) -> (UInt64, UInt64, UInt64, UInt64) {
        (UInt64(device) << 32 | 0x08, UInt64(eventBits - 1), (valid ? 1 << 63 : 0) | (itt ?? Self.itt(of: device)).rawValue, 0)
    }
    static func mapc(_ collection: UInt16, vcpu: UInt64, valid: Bool = true) -> (UInt64, UInt64, UInt64, UInt64) {
        (0x09, 0, (valid ? 1 << 63 : 0) | vcpu << 16 | UInt64(collection), 0)
    }
    static func mapti(_ device: UInt32, _ event: UInt32, intid: UInt32, collection: UInt16) -> (UInt64, UInt64, UInt64, UInt64) {
        (UInt64(device) << 32 | 0x0A, UInt64(intid) << 32 | UInt64(event), UInt64(collection), 0)
    }
    static func mapi(_ device: UInt32, _ event: UInt32, collection: UInt16) -> (UInt64, UInt64, UInt64, UInt64) {
        (UInt64(device) << 32 | 0x0B, UInt64(event), UInt64(collection), 0)
    }
    static func movi(_ device: UInt32, _ event: UInt32, collection: UInt16) -> (UInt64, UInt64, UInt64, UInt64) {
        (UInt64(device) << 32 | 0x01, UInt64(event), UInt64(collection), 0)
    }
    static func event(_ opcode: UInt64, _ device: UInt32, _ event: UInt32) -> (UInt64, UInt64, UInt64, UInt64) {
        (UInt64(device) << 32 | opcode, UInt64(event), 0, 0)
    }
    static func discard(_ device: UInt32, _ event: UInt32) -> (UInt64, UInt64, UInt64, UInt64) { Self.event(0x0F, device, event) }
    static func inv(_ device: UInt32, _ event: UInt32) -> (UInt64, UInt64, UInt64, UInt64) { Self.event(0x0C, device, event) }
    static func int(_ device: UInt32, _ event: UInt32) -> (UInt64, UInt64, UInt64, UInt64) { Self.event(0x03, device, event) }
    static func clear(_ device: UInt32, _ event: UInt32) -> (UInt64, UInt64, UInt64, UInt64) { Self.event(0x04, device, event) }
    static func invall(_ collection: UInt16) -> (UInt64, UInt64, UInt64, UInt64) { (0x0D, 0, UInt64(collection), 0) }
    static func sync(vcpu: UInt64) -> (UInt64, UInt64, UInt64, UInt64) { (0x05, 0, vcpu << 16, 0) }
    static func movall(from: UInt64, to: UInt64) -> (UInt64, UInt64, UInt64, UInt64) { (0x0E, 0, from << 16, to << 16) }

    @discardableResult
    mutating func run(_ command: (UInt64, UInt64, UInt64, UInt64), budget: Int = ITS.defaultWorkBudget) -> MMIOIgnoredReason? {
        send(command.0, command.1, command.2, command.3, budget: budget)
    }

    mutating func enqueue(_ command: (UInt64, UInt64, UInt64, UInt64)) {
        queue(command.0, command.1, command.2, command.3)
    }

    /// Everything `vcpu` acknowledges until spurious.
    mutating func drain(_ vcpu: UInt16) -> [UInt32] {
        var taken: [UInt32] = []
        while true {
            let intid = gic.acknowledge(VCPUIndex(vcpu))
            if intid == .spurious { return taken }
            taken.append(intid.rawValue)
        }
    }

    func errors(_ code: UInt32) -> UInt64 { gic.its.counters.commandErrors[code] ?? 0 }

    /// Four vCPUs with LPIs 8192 ... 8199 configured; collections 0 -> vCPU 1 and 1 -> vCPU 2;
    /// device 7 (8 EventID bits) with events 3 -> 8192 and 9 -> 8193; device 65000 (4 EventID bits,
    /// ITT at 0x1800000) with event 0 -> 8194. The shared starting point of the save/restore and
    /// snapshot fixtures.
    static func withSampleMappings() -> GuestDriver {
        var driver = GuestDriver(vcpus: 4)
        for intid: UInt32 in 8192 ..< 8200 { driver.configure(intid) }
        driver.run(mapc(0, vcpu: 1))
        driver.run(mapc(1, vcpu: 2))
        driver.run(mapd(7))
        driver.run(mapti(7, 3, intid: 8192, collection: 0))
        driver.run(mapti(7, 9, intid: 8193, collection: 1))
        driver.run(mapd(65000, eventBits: 4, itt: GuestAddress(0x180_0000)))
        driver.run(mapti(65000, 0, intid: 8194, collection: 1))
        return driver
    }
}

extension GuestDriver {
    /// The guest of the translation tests: 8-bit DeviceIDs and EventIDs, a translation cache of 24,
    /// collections 0 and 1 on vCPUs 1 and 3, devices 0...5 with 5-bit EventIDs, and 103 of events
    /// 0...119 (every n with n % 7 != 3) mapped to LPI 8192 + n of device n / 20, event n % 20, on
    /// collection n % 2: so that random pairs hit, miss, fill the cache and name unmapped events.
    static func translationFixture() -> GuestDriver {
        var driver = GuestDriver(deviceIDBits: 8, eventIDBits: 8, cacheLimit: 24)
        driver.run(mapc(0, vcpu: 1))
        driver.run(mapc(1, vcpu: 3))
        for device: UInt32 in 0 ..< 6 { driver.run(mapd(device, eventBits: 5)) }
        for n: UInt32 in 0 ..< 120 where n % 7 != 3 {
            driver.run(mapti(n / 20, n % 20, intid: 8192 + n, collection: UInt16(n % 2)))
        }
        return driver
    }
}

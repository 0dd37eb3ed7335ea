@testable import ITSModel

/// A redistributor with guest memory holding an LPI Configuration table and a Pending table.
struct RedistributorFixture {
    static let configTable = GuestAddress(0x1_0000)
    static let pendingTable = GuestAddress(0x1000_0000)

    var memory: InMemoryGuestMemory
    var redistributor: Redistributor
    var sink = DeliveryLog()

    /// `idBits` is both the VM's limit and the PROPBASER.IDbits + 1 the fixture programs.
    init(vcpu: UInt16 = 0, idBits: Int = 16, enable: Bool = true, pendingTableZero: Bool = true,
         maximumLPIs: Int = 1 << 22) {
        memory = InMemoryGuestMemory()
        let lpis = (1 << idBits) - 8192
        memory.addRegion(base: Self.configTable, size: lpis)
        memory.addRegion(base: Self.pendingTable, size: (1 << idBits) / 8)
        redistributor = Redistributor(.init(vcpu: VCPUIndex(vcpu), isLast: true, intidBits: idBits, maximumLPIs: maximumLPIs))
        write(Redistributor.Offset.propbaser, Self.configTable.rawValue | UInt64(idBits - 1))
        write(Redistributor.Offset.pendbaser, Self.pendingTable.rawValue | (pendingTableZero ? 1 << 62 : 0))
        if enable { write(Redistributor.Offset.ctlr, 1) }
    }

    /// Writes the configuration byte of `intid` in guest memory (not yet seen by the model).
    mutating func configure(_ intid: UInt32, priority: UInt8, enabled: Bool = true) {
        try! memory.writeUInt8(LPIConfig(priority: Priority(priority), enabled: enabled).rawValue,
                               at: Self.configTable.adding(UInt64(intid) - 8192)!)
    }

    /// Configures and maps `intid`.
    mutating func map(_ intid: UInt32, priority: UInt8 = 0xA0, enabled: Bool = true) {
        configure(intid, priority: priority, enabled: enabled)
        let outcome = redistributor.mapLPI(INTID(intid), memory: memory)
        precondition(outcome == .mapped, "map \(intid): \(outcome)")
    }

    @discardableResult
    mutating func pend(_ intid: UInt32) -> LPIPendOutcome {
        redistributor.setPending(INTID(intid), sink: &sink)
    }

    @discardableResult
    mutating func write(_ offset: UInt64, _ value: UInt64, width: MMIOWidth = .doubleword) -> MMIOIgnoredReason? {
        let width = offset == Redistributor.Offset.ctlr ? MMIOWidth.word : width
        return redistributor.mmioWrite(offset: offset, width: width, value: value, memory: memory, sink: &sink)
    }

    mutating func read(_ offset: UInt64, width: MMIOWidth = .doubleword) -> UInt64? {
        try? redistributor.mmioRead(offset: offset, width: width).get()
    }

    /// Sets or clears the bit of `intid` in the guest's pending table.
    mutating func setPendingTableBit(_ intid: UInt32, _ value: Bool = true) {
        let address = Self.pendingTable.adding(UInt64(intid / 8))!
        let old = try! memory.readUInt8(at: address)
        let bit = UInt8(1) << UInt8(intid % 8)
        try! memory.writeUInt8(value ? old | bit : old & ~bit, at: address)
    }

    func pendingTableBit(_ intid: UInt32) -> Bool {
        let byte = try! memory.readUInt8(at: Self.pendingTable.adding(UInt64(intid / 8))!)
        return byte & (1 << UInt8(intid % 8)) != 0
    }

    /// Acknowledges until spurious; returns the INTIDs in the order taken.
    mutating func drain(mask: UInt8 = 0xFF) -> [UInt32] {
        var taken: [UInt32] = []
        while true {
            let intid = redistributor.acknowledge(priorityMask: Priority(mask))
            if intid == .spurious { return taken }
            taken.append(intid.rawValue)
        }
    }
}

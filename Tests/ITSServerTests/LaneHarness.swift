import CITSSupport
import Glibc
import ITSModel
@testable import ITSServer

/// One VM served by lanes, with its ITS on the test's thread acting as the loop thread: guest
/// memory in a sealed memfd, LPI tables and an ITS programmed through it.
final class LaneHarness {
    static let configTable: UInt64 = 0x10_0000
    static let pendingTables: UInt64 = 0x20_0000
    static let commandQueue: UInt64 = 0x80_0000
    static let collectionTable: UInt64 = 0x90_0000
    static let deviceTable: UInt64 = 0xA0_0000
    static let itts: UInt64 = 0x100_0000

    let loop = EventLoop()
    let memory = MappedGuestMemory()
    var mailbox: Mailbox<LoopWork>!
    var lanes: LaneGroup!
    var its: ITS
    var operations: LaneRedistributors!
    let vm = VMKey(1)
    let vcpus: Int
    var replies: [ReplyTicket: LaneReply] = [:]
    var deliverableEdges = 0
    private var nextTicket: UInt64 = 1

    init(vcpus: Int, lanes laneCount: Int) {
        self.vcpus = vcpus
        its = ITS(.init(deviceIDBits: 16, eventIDBits: 16, intidBits: 16, vcpuCount: vcpus))
        let fd = its_memfd_create("lane-harness", 1)
        precondition(ftruncate(fd, 64 << 20) == 0 && its_add_seals(fd, its_seal_shrink()) == 0)
        precondition(memory.addRegion(base: GuestAddress(0), size: 64 << 20, fileOffset: 0, fd: fd) == nil)
        close(fd)
        mailbox = Mailbox(loop: loop) { [unowned self] batch in
            for work in batch {
                switch work {
                case let .reply(ticket, reply): self.replies[ticket] = reply
                case .deliverable: self.deliverableEdges += 1
                case let .moved(_, intid, source, target, epoch, wasPending):
                    self.operations.moved(intid, from: source, to: target, epoch: epoch, wasPending: wasPending)
                case let .movedAllPending(_, intids, target): self.operations.allPendingMoved(intids, to: target)
                case let .backgroundWorkDone(_, vcpu): self.operations.backgroundWorkDone(on: vcpu)
                }
            }
            // A SYNC may have been waiting for what the lanes just finished.
            _ = self.its.processCommands(budget: .max, memory: self.memory, redistributors: &self.operations)
            self.operations.flush()
        }
        lanes = LaneGroup(count: laneCount, replies: mailbox)
        operations = LaneRedistributors(vm: vm, vcpuCount: vcpus, lanes: lanes)
        for vcpu in 0 ..< vcpus {
            let redistributor = Redistributor(.init(vcpu: VCPUIndex(UInt16(vcpu)), isLast: vcpu == vcpus - 1))
            operations.queue(.attach(vm, memory: memory, redistributors: [redistributor]), for: VCPUIndex(UInt16(vcpu)))
        }
        // Every LPI enabled at priority 0xA0.
        for intid in 8192 ..< 65536 as Range<UInt64> {
            try! memory.writeUInt8(0xA3, at: GuestAddress(Self.configTable + intid - 8192))
        }
        var tickets: [ReplyTicket] = []
        for vcpu in 0 ..< vcpus {
            let v = VCPUIndex(UInt16(vcpu))
            tickets.append(request(.mmioWrite(offset: Redistributor.Offset.propbaser, width: .doubleword, value: Self.configTable | 15), vcpu: v))
            tickets.append(request(.mmioWrite(offset: Redistributor.Offset.pendbaser, width: .doubleword,
                                              value: Self.pendingTables + UInt64(vcpu) << 16 | 1 << 62), vcpu: v))
            tickets.append(request(.mmioWrite(offset: Redistributor.Offset.ctlr, width: .word, value: 1), vcpu: v))
        }
        wait(for: tickets)
        writeITS(ITS.Offset.cbaser, 1 << 63 | Self.commandQueue | 15)           // 16 pages: 2048 commands
        writeITS(ITS.Offset.baser0, 1 << 63 | 2 << 8 | Self.deviceTable | 7)    // flat, 8 x 64K
        writeITS(ITS.Offset.baser0 + 8, 1 << 63 | Self.collectionTable)
        writeITS(ITS.Offset.ctlr, 1, width: .word)
    }

    func shutDown() {
        lanes.stop()
        mailbox.close()
    }

    func writeITS(_ offset: UInt64, _ value: UInt64, width: MMIOWidth = .doubleword, deviceID: DeviceID? = nil) {
        its.mmioWrite(offset: offset, width: width, value: value, deviceID: deviceID, memory: memory,
                      redistributors: &operations, budget: .max)
        operations.flush()
    }

    /// Writes commands into the queue and advances CWRITER (processing them); with `waiting`, runs
    /// the loop until the queue drains (a SYNC may wait for lanes).
    func run(_ commands: [ITSCommand], waiting: Bool) {
        var writer = its.cwriter
        for command in commands {
            let words = command.encoded
            for (index, word) in [words.0, words.1, words.2, words.3].enumerated() {
                try! memory.writeUInt64(word, at: GuestAddress(Self.commandQueue + writer + UInt64(index * 8)))
            }
            writer = (writer + 32) % (16 * 4096)
        }
        writeITS(ITS.Offset.cwriter, writer)
        while waiting, its.creadr != its.cwriter {
            loop.runOnce()
            usleep(100)
        }
    }

    /// Writes commands into the queue and advances CWRITER, which processes them at once.
    func run(_ commands: [ITSCommand]) {
        run(commands, waiting: false)
        precondition(its.creadr == its.cwriter && !its.stalled, "commands processed")
    }

    /// An MSI, translated here and queued to its lane (flushed by the caller).
    @discardableResult
    func inject(_ device: UInt32, _ event: UInt32) -> ITS.Translation? {
        try? its.signal(DeviceID(device), EventID(event), redistributors: &operations).get()
    }

    func request(_ request: LaneRequest, vcpu: VCPUIndex) -> ReplyTicket {
        let ticket = ReplyTicket(rawValue: nextTicket)
        nextTicket += 1
        operations.queue(.request(vm, vcpu, request, ticket: ticket), for: vcpu)
        return ticket
    }

    /// Sends what is batched and runs the loop until every ticket is answered.
    func wait(for tickets: [ReplyTicket]) {
        operations.flush()
        while !tickets.allSatisfy({ replies[$0] != nil }) {
            loop.runOnce()
            if !tickets.allSatisfy({ replies[$0] != nil }) { usleep(50) }
        }
    }

    /// Acknowledges on `vcpu` until spurious.
    func drain(_ vcpu: Int) -> [UInt32] {
        var taken: [UInt32] = []
        while true {
            let ticket = request(.acknowledge(priorityMask: .lowest), vcpu: VCPUIndex(UInt16(vcpu)))
            wait(for: [ticket])
            guard case .acknowledged(let intid, _, _) = replies.removeValue(forKey: ticket)!, intid != .spurious else { return taken }
            taken.append(intid.rawValue)
        }
    }
}

extension LaneHarness {
    /// Two vCPUs on two lanes, collection n on vCPU n, and events 0...7 of device 1 mapped to LPIs
    /// 8192...8199 on vCPU (event % 2).
    static func twoVCPUsEightEvents() -> LaneHarness {
        let harness = LaneHarness(vcpus: 2, lanes: 2)
        harness.run((0 ..< 2).map { .mapc(CollectionID(UInt16($0)), rdbase: UInt64($0), valid: true) }
            + [.mapd(DeviceID(1), ittAddress: GuestAddress(LaneHarness.itts), eventIDBits: 8, valid: true)]
            + (0 ..< 8).map { .mapti(DeviceID(1), EventID(UInt32($0)), INTID(8192 + UInt32($0)), CollectionID(UInt16($0 % 2))) })
        return harness
    }
}

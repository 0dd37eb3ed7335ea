// Injector threads, one per connection. Each owns a share of the (device, event) pairs and sends
// MSIs for them round robin, as vgic_lpi_stress's per-device host threads do.
import Glibc
import Histogram
import ITSModel
import ITSWire
import ToolSupport

/// How MSIs travel to itsd.
enum LoadMode: String, CaseIterable, Sendable {
    /// INJECT with a reply, one outstanding per connection.
    case rtt
    /// Single-MSI INJECT frames with NO_REPLY, written back to back.
    case pipelined
    /// INJECT_BATCH frames of `--batch` pairs with NO_REPLY.
    case batch
    /// Eventfds bound with BIND_IRQFD, one outstanding per injector thread.
    case irqfd
    /// MMIO_WRITE to GITS_TRANSLATER with NO_REPLY.
    case translater
}

/// What every injector shares: its pairs, its stopping rule, its results.
/// Owned by its thread while the run goes on; the main thread reads the results after joining it.
class Injector: @unchecked Sendable {
    let connection: WireConnection
    let vm: VMID
    /// LPI numbers of this injector's pairs, in sending order.
    let lpis: [Int]
    let workload: Workload
    let tracker: LPITracker
    let control: RunControl
    /// MSIs to send, or 0 to run until `deadline` (ns since the start, 0 when iterations rule).
    let total: Int
    let duration: UInt64

    var sent = 0
    /// When the lanes had applied the last MSI (`awaitApplied`), CLOCK_MONOTONIC ns.
    var finished: UInt64 = 0
    /// Request round trips (rtt) or inject -> notify wakeups measured here, in ns.
    var pathLatency = makeLatencyHistogram()
    var timeouts = 0
    var error: ToolError?

    init(connection: WireConnection, vm: VMID, lpis: [Int], workload: Workload, tracker: LPITracker,
         control: RunControl, iterations: Int, duration: UInt64) {
        self.connection = connection
        self.vm = vm
        self.lpis = lpis
        self.workload = workload
        self.tracker = tracker
        self.control = control
        self.total = duration == 0 ? lpis.count * iterations : 0
        self.duration = duration
    }

    func run() {
        while !control.go.load(ordering: .acquiring) {
            if control.failed.load(ordering: .relaxed) { return }
            sched_yield()
        }
        do {
            try inject(deadline: duration == 0 ? 0 : monotonicNanoseconds() + duration)
            try awaitApplied()
            finished = monotonicNanoseconds()
        } catch {
            self.error = error as? ToolError ?? ToolError("\(error)")
            control.failed.store(true, ordering: .relaxed)
        }
    }

    /// Waits until every MSI sent so far is pending at its redistributor, not just accepted: the
    /// server handles a connection's requests in order and queues each lane's work in order, so an
    /// HPPI for every vCPU, sent behind the MSIs, is answered by each lane after it has applied them.
    func awaitApplied() throws {
        var frames: [UInt8] = []
        for vcpu in 0 ..< workload.vcpus {
            Frame(.hppi(vm, Wire.VCPU(rawValue: UInt16(vcpu))), id: MessageID(rawValue: 0)).encode(into: &frames)
        }
        try frames.withUnsafeBytes { try connection.sendRaw($0) }
        for _ in 0 ..< workload.vcpus {
            let reply = try connection.receive()
            guard case .hppiReply = reply.message else { throw ToolError("HPPI: unexpected reply \(reply.message)") }
        }
    }

    /// Sends MSIs until `total` are sent or `deadline` (CLOCK_MONOTONIC ns) has passed.
    func inject(deadline: UInt64) throws {
        fatalError("subclasses implement inject(deadline:)")
    }

    /// Whether another MSI may go.
    @inline(__always)
    func more(deadline: UInt64) -> Bool {
        deadline == 0 ? sent < total : monotonicNanoseconds() < deadline && !control.failed.load(ordering: .relaxed)
    }
}

/// `pipelined`, `batch` and `translater`: frames built once in a 64 KiB buffer, written whole.
final class StreamInjector: Injector, @unchecked Sendable {
    /// Where the DeviceID and EventID of each MSI slot of the buffer are.
    private var deviceOffsets: [Int] = []
    private var eventOffsets: [Int] = []
    private let frameLength: Int
    private let msisPerFrame: Int
    private let template: [UInt8]
    private var buffer: UnsafeMutableRawBufferPointer
    /// Whether the buffer's contents are the same for every write (its slots are whole rounds).
    private let fixed: Bool

    /// One frame of `mode` for `batch` MSIs (1 unless batch mode), with its slot offsets.
    init(mode: LoadMode, batch: Int, connection: WireConnection, vm: VMID, lpis: [Int], workload: Workload,
         tracker: LPITracker, control: RunControl, iterations: Int, duration: UInt64) {
        let frame: Frame
        var deviceAt: [Int] = []
        var eventAt: [Int] = []
        switch mode {
        case .batch:
            let entries = (0 ..< batch).map { _ in InjectEntry(deviceID: Wire.DeviceID(0), eventID: Wire.EventID(0)) }
            frame = Frame(.injectBatch(InjectBatch(vm: vm, entries: entries)), id: MessageID(rawValue: 0), noReply: true)
            for entry in 0 ..< batch {
                deviceAt.append(24 + 8 * entry)
                eventAt.append(28 + 8 * entry)
            }
        case .translater:
            let access = MMIOAccess(vm: vm, frame: .its, width: .word, offset: ITS.Offset.translater)
            frame = Frame(.mmioWrite(access, value: 0, deviceID: Wire.DeviceID(0)), id: MessageID(rawValue: 0), noReply: true)
            deviceAt = [40]
            eventAt = [32]
        default:
            frame = Frame(.inject(vm, Wire.DeviceID(0), Wire.EventID(0)), id: MessageID(rawValue: 0), noReply: true)
            deviceAt = [20]
            eventAt = [24]
        }
        template = frame.encoded
        frameLength = template.count
        msisPerFrame = deviceAt.count
        // The buffer: as many frames as fit in 64 KiB, fewer if that makes its slots whole rounds.
        let maxFrames = max(1, 65536 / frameLength)
        let pairs = lpis.count
        var frames = maxFrames
        var isFixed = false
        let slotsPerRound = pairs / gcd(pairs, msisPerFrame) * msisPerFrame   // lcm(pairs, msisPerFrame)
        if slotsPerRound / msisPerFrame <= maxFrames {
            let framesPerRound = slotsPerRound / msisPerFrame
            frames = maxFrames / framesPerRound * framesPerRound
            isFixed = true
        }
        fixed = isFixed
        buffer = .allocate(byteCount: frames * frameLength, alignment: 8)
        for index in 0 ..< frames {
            // SAFETY: frame `index` occupies index*frameLength ..< (index+1)*frameLength, inside the buffer.
            UnsafeMutableRawBufferPointer(rebasing: buffer[index * frameLength ..< (index + 1) * frameLength]).copyBytes(from: template)
            for slot in 0 ..< msisPerFrame {
                deviceOffsets.append(index * frameLength + deviceAt[slot])
                eventOffsets.append(index * frameLength + eventAt[slot])
            }
        }
        super.init(connection: connection, vm: vm, lpis: lpis, workload: workload, tracker: tracker, control: control,
                   iterations: iterations, duration: duration)
        if fixed { fill(from: 0, slots: deviceOffsets.count) }
    }

    deinit { buffer.deallocate() }

    /// Writes the pairs `position ..< position + slots` (cyclic over `lpis`) into the first slots.
    private func fill(from position: Int, slots: Int) {
        var pair = position
        for slot in 0 ..< slots {
            let lpi = lpis[pair]
            // SAFETY: the offsets were computed inside the buffer, 4 bytes before a frame's end at most.
            buffer.storeBytes(of: workload.device(ofLPI: lpi).littleEndian, toByteOffset: deviceOffsets[slot], as: UInt32.self)
            buffer.storeBytes(of: workload.event(ofLPI: lpi).littleEndian, toByteOffset: eventOffsets[slot], as: UInt32.self)
            pair += 1
            if pair == lpis.count { pair = 0 }
        }
    }

    /// Marks the pairs `position ..< position + slots` (cyclic) injected at `time`, each once.
    @inline(__always)
    private func mark(from position: Int, slots: Int, at time: UInt64) {
        if slots >= lpis.count {
            for lpi in lpis { tracker.injected(lpi, at: time) }
            return
        }
        var pair = position
        for _ in 0 ..< slots {
            tracker.injected(lpis[pair], at: time)
            pair += 1
            if pair == lpis.count { pair = 0 }
        }
    }

    override func inject(deadline: UInt64) throws {
        let capacity = deviceOffsets.count
        var position = 0
        while more(deadline: deadline) {
            let slots = deadline == 0 ? min(capacity, total - sent) : capacity
            let frames = slots / msisPerFrame
            if frames > 0 {
                let whole = frames * msisPerFrame
                if !fixed { fill(from: position, slots: whole) }
                mark(from: position, slots: whole, at: monotonicNanoseconds())
                try connection.sendRaw(UnsafeRawBufferPointer(rebasing: buffer[0 ..< frames * frameLength]))
                sent += whole
                position = (position + whole) % lpis.count
            } else {
                // The last, partial INJECT_BATCH of an iteration count that is no multiple of --batch.
                let entries = (0 ..< slots).map { index in
                    let lpi = lpis[(position + index) % lpis.count]
                    return InjectEntry(deviceID: Wire.DeviceID(workload.device(ofLPI: lpi)),
                                       eventID: Wire.EventID(workload.event(ofLPI: lpi)))
                }
                mark(from: position, slots: slots, at: monotonicNanoseconds())
                try connection.send(Frame(.injectBatch(InjectBatch(vm: vm, entries: entries)), id: MessageID(rawValue: 0), noReply: true))
                sent += slots
                position = (position + slots) % lpis.count
            }
        }
    }
}

func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? max(a, 1) : gcd(b, a % b) }

/// `rtt`: one MSI outstanding. Each INJECT is sent with a reply, and the next one goes when a
/// consumer has acknowledged the LPI (without consumers, when the reply has come), so that
/// inject -> acknowledge is one MSI's path through itsd and never a wait behind others. The INJECT
/// round trip is recorded as the path latency.
final class RTTInjector: Injector, @unchecked Sendable {
    /// Signalled by the consumer that acknowledges one of this injector's LPIs; nil without consumers.
    let doneFD: Int32?

    init(connection: WireConnection, vm: VMID, lpis: [Int], workload: Workload, tracker: LPITracker, control: RunControl,
         iterations: Int, duration: UInt64, waitsForAcknowledge: Bool) throws {
        doneFD = waitsForAcknowledge ? try makeEventFD(nonblocking: false) : nil
        super.init(connection: connection, vm: vm, lpis: lpis, workload: workload, tracker: tracker, control: control,
                   iterations: iterations, duration: duration)
    }

    deinit { if let doneFD { close(doneFD) } }

    override func inject(deadline: UInt64) throws {
        var frame = Frame(.inject(vm, Wire.DeviceID(0), Wire.EventID(0)), id: MessageID(rawValue: 0)).encoded
        var pair = 0
        try frame.withUnsafeMutableBytes { (raw) throws in
            while more(deadline: deadline) {
                let lpi = lpis[pair]
                raw.storeBytes(of: workload.device(ofLPI: lpi).littleEndian, toByteOffset: 20, as: UInt32.self)
                raw.storeBytes(of: workload.event(ofLPI: lpi).littleEndian, toByteOffset: 24, as: UInt32.self)
                let start = monotonicNanoseconds()
                tracker.injected(lpi, at: start)
                try connection.sendRaw(UnsafeRawBufferPointer(raw))
                let reply = try connection.receive()
                let end = monotonicNanoseconds()
                guard case .done(.inject) = reply.message else { throw ToolError("INJECT: unexpected reply \(reply.message)") }
                pathLatency.record(end - start)
                if let doneFD, !waitEventFD(doneFD, timeoutMs: 2000) { timeouts += 1 }
                sent += 1
                pair += 1
                if pair == lpis.count { pair = 0 }
            }
        }
    }
}

/// `irqfd`: one eventfd per pair bound with BIND_IRQFD; one MSI outstanding, the next one written
/// when a consumer has acknowledged the last.
final class IRQFDInjector: Injector, @unchecked Sendable {
    /// The bound eventfds, by index into `lpis`.
    private(set) var eventFDs: [Int32] = []
    /// Signalled by the consumer that acknowledges one of this injector's LPIs.
    let doneFD: Int32

    init(binding connection: WireConnection, vm: VMID, lpis: [Int], workload: Workload, tracker: LPITracker,
         control: RunControl, iterations: Int, duration: UInt64) throws {
        doneFD = try makeEventFD(nonblocking: false)
        super.init(connection: connection, vm: vm, lpis: lpis, workload: workload, tracker: tracker, control: control,
                   iterations: iterations, duration: duration)
        for lpi in lpis {
            let fd = try makeEventFD(nonblocking: false)
            eventFDs.append(fd)
            let key = IRQFDKey(vm: vm, deviceID: Wire.DeviceID(workload.device(ofLPI: lpi)),
                               eventID: Wire.EventID(workload.event(ofLPI: lpi)))
            _ = try connection.call(.bindIRQFD(key, startMasked: false), fd: fd)
        }
    }

    deinit {
        for fd in eventFDs { close(fd) }
        close(doneFD)
    }

    override func inject(deadline: UInt64) throws {
        var pair = 0
        while more(deadline: deadline) {
            tracker.injected(lpis[pair], at: monotonicNanoseconds())
            signalEventFD(eventFDs[pair])
            if !waitEventFD(doneFD, timeoutMs: 2000) { timeouts += 1 }
            sent += 1
            pair += 1
            if pair == lpis.count { pair = 0 }
        }
    }
}

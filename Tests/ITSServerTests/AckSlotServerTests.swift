import CITSSupport
import Glibc
import ITSModel
import ITSWire
import Synchronization
import Testing
@testable import ITSServer

/// An acknowledge slot in a memfd the test shares with the server, as a VMM would.
final class SharedSlot: @unchecked Sendable {
    let fd: Int32
    private let page: UnsafeMutableRawPointer
    /// SAFETY: the first page of `fd` is mapped for the object's lifetime; `offset` is a multiple
    /// of 8 below the page size, so the word is aligned and inside the mapping.
    private let word: UnsafeMutablePointer<UInt64>
    static let offset = 64

    init?(sealed: Bool = true, size: Int = 4096) {
        fd = its_memfd_create("ack-slot-test", 1)
        guard fd >= 0, ftruncate(fd, off_t(size)) == 0 else { return nil }
        if sealed { _ = its_add_seals(fd, its_seal_shrink() | its_seal_grow()) }
        guard let mapped = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), mapped != MAP_FAILED else { return nil }
        page = mapped
        word = (mapped + Self.offset).assumingMemoryBound(to: UInt64.self)
    }

    deinit {
        munmap(page, 4096)
        close(fd)
    }

    var value: AckSlotWord { AckSlotWord(rawValue: its_atomic_load_u64(word)) }

    /// Replaces `expected` by `desired` if the word holds it; the word found.
    @discardableResult
    func exchange(_ expected: AckSlotWord, _ desired: AckSlotWord) -> (Bool, AckSlotWord) {
        var found = expected.rawValue
        let done = its_atomic_cas_u64(word, &found, desired.rawValue) != 0
        return (done, AckSlotWord(rawValue: found))
    }

    /// Stores `value` whatever the word holds (a VMM arming from scratch, or writing garbage).
    func store(_ value: AckSlotWord) {
        var current = self.value
        while case (false, let found) = exchange(current, value) { current = found }
    }

    /// The VMM's take (PROTOCOL.md 6.16b): DELIVERED becomes ARMED with `mask`; returns the LPI
    /// taken (nil when none was delivered) and whether `more` was set in the word replaced. A word
    /// that is not DELIVERED is re-armed too, clearing its `more`.
    func take(mask: UInt8 = 0xFF) -> (intid: UInt32?, more: Bool) {
        var current = value
        while true {
            let (done, found) = exchange(current, .armed(priorityMask: mask))
            if done { return (current.state == .delivered ? current.intid : nil, current.more) }
            current = found
        }
    }
}

/// SET_ACK_SLOT and CLEAR_ACK_SLOT over the socket (Protocol/PROTOCOL.md, section 6.16b): what the
/// server writes into an armed slot and when it sets `more`, the eventfd after each change, the
/// refusals of bad descriptors, masks, invalid words, CLEAR, and the statistics.
@Suite(.serialized) struct AckSlotServerTests {
    static let device = Wire.DeviceID(rawValue: 7)
    static let vcpu = Wire.VCPU(rawValue: 1)

    private static func setSlot(_ vm: ClientVM, _ slot: SharedSlot, offset: UInt64 = UInt64(SharedSlot.offset), vcpu: UInt16 = 1) -> Frame? {
        vm.call(.setAckSlot(vm.vm, Wire.VCPU(rawValue: vcpu), offset: offset), fds: [slot.fd])
    }

    /// Whether the eventfd had been written (reads and resets it).
    private static func signalled(_ fd: Int32) -> Bool {
        var counter: UInt64 = 0
        return read(fd, &counter, 8) == 8 && counter > 0
    }

    private static func inject(_ vm: ClientVM, _ event: UInt32) -> WireStatus? {
        vm.call(.inject(vm.vm, Self.device, Wire.EventID(rawValue: event)))?.status
    }

    @Test func anArmedSlotTakesLPIsAndMoreTellsTheVMMToAsk() throws {
        let log = AckSlotLog()
        _ = try runServer("ack-slot") { path in
            // 7/0..3 -> 8192..8195 on vCPU 1, priority 0xA0.
            guard let vm = ClientVM.hello(path), vm.createProgrammedVM(), let slot = SharedSlot(),
                  let unsealed = SharedSlot(sealed: false), let short = SharedSlot(size: 64)
            else { return }
            let notify = its_eventfd(0, 1)
            defer { close(notify) }
            log.statuses.append(vm.call(.setVCPUNotify(vm.vm, Self.vcpu), fds: [notify])?.status)

            // Refusals: no seal, the file too short, a vCPU the VM lacks, an offset not a multiple of 8.
            let refusals = [Self.setSlot(vm, unsealed), Self.setSlot(vm, short), Self.setSlot(vm, slot, vcpu: 5),
                            Self.setSlot(vm, slot, offset: 4)]
            log.refusals = refusals.map { frame in
                guard case .error(_, let report)? = frame?.message else { return nil }
                return "\(report.status) \(report.detail)"
            }
            log.statuses.append(Self.setSlot(vm, slot)?.status)
            log.words.append(slot.value)   // idle: nothing is pending

            // Not armed: the LPI stays pending, `more` is set and the eventfd written.
            log.statuses.append(Self.inject(vm, 2))
            log.signals.append(Self.signalled(notify))
            log.words.append(slot.value)
            // The VMM arms, sees `more`, and asks.
            log.taken.append(slot.take().more ? vm.drain(1) : [])
            log.words.append(slot.value)

            // Armed: the next MSI is acknowledged into the slot, the eventfd written.
            log.statuses.append(Self.inject(vm, 1))
            log.signals.append(Self.signalled(notify))
            log.words.append(slot.value)
            log.hppiAfterDelivery = vm.call(.hppi(vm.vm, Self.vcpu)).flatMap { frame in
                if case .hppiReply(let lpi) = frame.message { lpi.intid.rawValue } else { nil }
            }

            // Two more while the slot holds it: `more`; the take re-arms, ACK takes 8192, and the
            // slot, armed again, takes 8195 as that ACK is served.
            log.statuses.append(Self.inject(vm, 0))
            log.statuses.append(Self.inject(vm, 3))
            log.signals.append(Self.signalled(notify))
            log.words.append(slot.value)
            let (first, more) = slot.take()
            log.taken.append([first ?? 0] + (more ? vm.drain(1) : []))
            log.words.append(slot.value)
            log.taken.append([slot.take().intid ?? 0])

            // A mask that admits nothing: the LPI stays pending, no `more` (judged by that mask).
            slot.store(.armed(priorityMask: 0xA0))
            log.statuses.append(Self.inject(vm, 2))
            log.words.append(slot.value)
            // Widening the mask is followed by an ACK, as the protocol asks.
            slot.store(.armed(priorityMask: 0xFF))
            log.taken.append(vm.drain(1))

            // An invalid word is left alone and counted; the LPI stays pending for ACK.
            slot.store(AckSlotWord(rawValue: 3 << 56))
            log.statuses.append(Self.inject(vm, 0))
            log.words.append(slot.value)
            log.taken.append(vm.drain(1))
            log.gaugeBeforeClear = vm.stat("ack_slots")

            // `more` without an edge: with a masked LPI pending, the vCPU always has something
            // deliverable, so only the slot's own eventfd write tells the VMM of the next LPI.
            vm.reconfigure(event: 3, 0x13)   // 8195: priority 0x10
            slot.store(.armed(priorityMask: 0x20))
            log.statuses.append(Self.inject(vm, 0))   // 8192, priority 0xA0: masked, stays pending
            log.signals.append(Self.signalled(notify))
            log.statuses.append(Self.inject(vm, 3))   // 8195 goes into the slot
            log.signals.append(Self.signalled(notify))
            log.words.append(slot.value)
            log.statuses.append(Self.inject(vm, 3))   // 8195 again: `more`, and no edge
            log.signals.append(Self.signalled(notify))
            log.words.append(slot.value)
            let (again, moreAgain) = slot.take()
            log.taken.append([again ?? 0] + (moreAgain ? vm.drain(1) : []))
            log.taken.append([slot.take().intid ?? 0])

            // CLEAR: an armed word is no longer served.
            log.statuses.append(vm.call(.clearAckSlot(vm.vm, Self.vcpu))?.status)
            slot.store(.armed(priorityMask: 0xFF))
            log.statuses.append(Self.inject(vm, 1))
            log.words.append(slot.value)
            log.taken.append(vm.drain(1))
            log.gaugeAfterClear = vm.stat("ack_slots")
            log.deliveries = vm.stat("ack_slot_deliveries_total")
            log.invalid = vm.stat("ack_slot_invalid_total")
            log.acknowledged = vm.stat("vcpu_1_lpis_acknowledged_total", of: vm.vm)
        }
        #expect(log.statuses.allSatisfy { $0 == .ok } && log.statuses.count == 13, "\(log.statuses)")
        #expect(log.refusals == ["BAD_FD 2", "BAD_FD 3", "NO_SUCH_VCPU 5", "BAD_VALUE 4"], "\(log.refusals)")
        let delivered8193 = AckSlotWord.delivered(intid: 8193, priority: 0xA0)
        #expect(log.words == [
            .idle, AckSlotWord.idle.withMore, .armed(priorityMask: 0xFF), delivered8193, delivered8193.withMore,
            .delivered(intid: 8195, priority: 0xA0), .armed(priorityMask: 0xA0), AckSlotWord(rawValue: 3 << 56),
            .delivered(intid: 8195, priority: 0x10), AckSlotWord.delivered(intid: 8195, priority: 0x10).withMore,
            .armed(priorityMask: 0xFF),
        ], "\(log.words)")
        #expect(log.signals == [true, true, true, true, true, true])
        #expect(log.taken == [[8194], [8193, 8192], [8195], [8194], [8192], [8195, 8195], [8192], [8193]], "\(log.taken)")
        #expect(log.hppiAfterDelivery == 1023, "an LPI in the slot is acknowledged, not pending")
        #expect(log.gaugeBeforeClear == 1 && log.gaugeAfterClear == 0)
        #expect(log.deliveries == 4)
        #expect((log.invalid ?? 0) >= 1)
        #expect(log.acknowledged == 10, "slot deliveries count as acknowledges: \(String(describing: log.acknowledged))")
    }
}

extension AckSlotServerTests {
    /// SET_ACK_SLOT before SET_VCPU_NOTIFY with an LPI pending: the slot takes the LPI while there
    /// is no eventfd to write, so the eventfd set next is written at once, as for a deliverable LPI.
    @Test func anEventfdSetAfterTheSlotHearsOfWhatTheSlotHolds() throws {
        let log = AckSlotLog()
        _ = try runServer("ack-slot-order") { path in
            guard let vm = ClientVM.hello(path), vm.createProgrammedVM(), let slot = SharedSlot() else { return }
            log.statuses.append(Self.inject(vm, 0))
            slot.store(.armed(priorityMask: 0xFF))
            log.statuses.append(Self.setSlot(vm, slot)?.status)
            log.words.append(slot.value)
            let notify = its_eventfd(0, 1)
            defer { close(notify) }
            log.statuses.append(vm.call(.setVCPUNotify(vm.vm, Self.vcpu), fds: [notify])?.status)
            log.signals.append(Self.signalled(notify))
        }
        #expect(log.statuses == [.ok, .ok, .ok])
        #expect(log.words == [.delivered(intid: 8192, priority: 0xA0)])
        #expect(log.signals == [true], "the eventfd set after the slot took the LPI was written")
    }

    /// A consumer that waits on the notify eventfd and takes LPIs from its armed slot (ACK only
    /// on `more`), while two connections inject into the vCPU, one with NO_REPLY bursts and one
    /// with replies, so that the lane serves the slot on the loop and on its own thread by turns.
    /// Once the injectors are done and the eventfd has stayed quiet, the consumer disarms the slot
    /// and drains: nothing is left pending, and every LPI was taken. Run under ThreadSanitizer by
    /// `make test-race`.
    @Test func aSlotConsumerMissesNothingWhileInjectorsRace() throws {
        let log = AckSlotStressLog()
        _ = try runServer("ack-slot-stress") { path in
            guard let vm = ClientVM.hello(path), vm.createProgrammedVM(), let consumer = vm.attachAnother(path),
                  let bursts = vm.attachAnother(path), let replies = vm.attachAnother(path),
                  let slot = SharedSlot()
            else { return }
            let notify = its_eventfd(0, 1)
            defer { close(notify) }
            slot.store(.armed(priorityMask: 0xFF))
            guard vm.call(.setVCPUNotify(vm.vm, Self.vcpu), fds: [notify])?.status == .ok,
                  Self.setSlot(vm, slot)?.status == .ok
            else { return }
            let injectors = RacingInjectors(vm: vm.vm, bursts: bursts, replies: replies, seed: 0x5_107)
            let taker = startThread {
                func record(_ intids: [UInt32]) {
                    for intid in intids { log.taken[Int(intid) - 8192] += 1 }
                }
                var quiet = false
                var barrierPassed = false
                while !quiet {
                    let done = injectors.done
                    // Once the injectors are done, an HPPI on the vCPU is answered by its lane after
                    // every MSI queued before it: the quiet that follows is the lane's.
                    if done, !barrierPassed {
                        _ = consumer.call(.hppi(vm.vm, Self.vcpu))
                        barrierPassed = true
                    }
                    var poller = pollfd(fd: notify, events: Int16(POLLIN), revents: 0)
                    guard poll(&poller, 1, 50) == 1 else {
                        quiet = done && barrierPassed
                        continue
                    }
                    _ = Self.signalled(notify)
                    let (intid, more) = slot.take()
                    if let intid {
                        record([intid])
                        log.fromSlot += 1
                    }
                    if more { record(consumer.drain(1)) }
                }
                // Disarm and take what the slot holds. A quiet eventfd means nothing was left
                // pending: ACK finds nothing.
                var current = slot.value
                while case (false, let found) = slot.exchange(current, .idle) { current = found }
                if current.state == .delivered { record([current.intid]) }
                log.pendingWhenQuiet = consumer.drain(1)
            }
            injectors.join()
            log.injectFailures = injectors.failures
            pthread_join(taker, nil)
            log.left = vm.drain(1)
            log.deliveries = vm.stat("ack_slot_deliveries_total")
            log.invalid = vm.stat("ack_slot_invalid_total")
            log.acknowledged = vm.stat("vcpu_1_lpis_acknowledged_total", of: vm.vm)
        }
        #expect(log.injectFailures == 0)
        #expect(log.pendingWhenQuiet == [], "an LPI stayed pending while the eventfd was quiet")
        #expect(log.left == [])
        #expect(log.taken.allSatisfy { $0 > 0 }, "every LPI was taken: \(log.taken)")
        #expect(log.fromSlot > 0 && log.deliveries.map { $0 >= Int64(log.fromSlot) } == true,
                "the slot delivered \(log.fromSlot) (server: \(String(describing: log.deliveries)))")
        #expect(log.invalid == 0)
        #expect(log.acknowledged == Int64(log.taken.reduce(0, +)),
                "each LPI the server acknowledged was taken once: \(String(describing: log.acknowledged)) vs \(log.taken)")
    }
}

final class AckSlotStressLog: @unchecked Sendable {
    // Each written by one thread (the consumer; the injector with replies), read after it is joined.
    var taken = [Int](repeating: 0, count: 4)
    var fromSlot = 0
    var injectFailures = 0
    var left, pendingWhenQuiet: [UInt32]?
    var deliveries, invalid, acknowledged: Int64?
}

final class AckSlotLog: @unchecked Sendable {
    var statuses: [WireStatus?] = []
    var refusals: [String?] = []
    var words: [AckSlotWord] = []
    var signals: [Bool] = []
    var taken: [[UInt32]] = []
    var hppiAfterDelivery: UInt32?
    var gaugeBeforeClear, gaugeAfterClear, deliveries, invalid, acknowledged: Int64?
}

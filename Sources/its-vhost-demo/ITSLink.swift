import ITSWire

/// The demo's connection to itsd and its VM: the requests a VMM makes (Protocol/PROTOCOL.md,
/// section 6), one at a time, each checked for an error reply.
final class ITSLink {
    private let socket: UnixStream
    private let decoder = FrameDecoder(role: .client, limits: .serverMaximum)
    private var received: [UInt8] = []
    private var nextID: UInt32 = 1
    private(set) var vm = VMID(0)

    /// Connects to itsd at `path` and says HELLO (version 1.0, the SNAPSHOT capability, default
    /// limits); an itsd silent for `timeoutSeconds` fails the request.
    init(path: String, timeoutSeconds: Int) throws(DemoError) {
        socket = try UnixStream(path: path, timeoutSeconds: timeoutSeconds)
        let hello = Hello(capabilities: [.snapshot], limits: Limits(maxFrameLength: 0, maxBatchEntries: 0, maxInFlight: 0,
                                                                    maxFDsPerMessage: 0))
        guard case .helloReply(let agreed) = try call(.hello(hello)), agreed.major == Wire.majorVersion else {
            throw DemoError("itsd at \(path) does not speak version \(Wire.majorVersion)")
        }
        guard agreed.capabilities.contains(.snapshot) else { throw DemoError("itsd at \(path) refuses SNAPSHOT") }
    }

    /// CREATE_VM; the connection is attached to the new VM.
    func createVM(_ config: VMConfig) throws(DemoError) {
        guard case .createVMReply(let id, _) = try call(.createVM(config)) else { throw unexpected("CREATE_VM") }
        vm = id
    }

    func destroyVM() throws(DemoError) {
        _ = try call(.destroyVM(vm))
    }

    /// ADD_MEM_REGION with the memfd `fd` at file offset 0.
    func addMemoryRegion(fd: Int32, guestAddress: UInt64, size: UInt64) throws(DemoError) {
        _ = try call(.addMemRegion(MemRegion(vm: vm, guestAddress: guestAddress, size: size, fileOffset: 0)), fds: [fd])
    }

    func mmioRead(_ frame: MMIOFrame, offset: UInt64, width: MMIOWidth = .doubleword) throws(DemoError) -> UInt64 {
        let access = MMIOAccess(vm: vm, frame: frame, width: width, offset: offset)
        guard case .mmioReadReply(let value) = try call(.mmioRead(access)) else { throw unexpected("MMIO_READ") }
        return value
    }

    func mmioWrite(_ frame: MMIOFrame, offset: UInt64, value: UInt64, width: MMIOWidth = .doubleword) throws(DemoError) {
        let access = MMIOAccess(vm: vm, frame: frame, width: width, offset: offset)
        _ = try call(.mmioWrite(access, value: value, deviceID: Wire.DeviceID(0)))
    }

    /// BIND_IRQFD: each signal of `eventfd` becomes the MSI (deviceID, eventID). Replaces a binding.
    func bind(deviceID: UInt32, eventID: UInt32, eventfd: Int32, masked: Bool = false) throws(DemoError) {
        _ = try call(.bindIRQFD(key(deviceID, eventID), startMasked: masked), fds: [eventfd])
    }

    /// MASK: signals only latch until UNMASK.
    func mask(deviceID: UInt32, eventID: UInt32) throws(DemoError) {
        _ = try call(.mask(key(deviceID, eventID)))
    }

    /// UNMASK: a latched signal is injected now.
    func unmask(deviceID: UInt32, eventID: UInt32) throws(DemoError) {
        _ = try call(.unmask(key(deviceID, eventID)))
    }

    /// SET_VCPU_NOTIFY: itsd writes `eventfd` when `vcpu` gets an LPI to take.
    func setNotifier(vcpu: UInt16, eventfd: Int32) throws(DemoError) {
        _ = try call(.setVCPUNotify(vm, Wire.VCPU(vcpu)), fds: [eventfd])
    }

    /// ACK with priority mask 0xFF: the vCPU's highest-priority pending LPI, now taken, or nil.
    func acknowledge(vcpu: UInt16) throws(DemoError) -> PendingLPI? {
        guard case .ackReply(let lpi) = try call(.ack(vm, Wire.VCPU(vcpu), priorityMask: 0xFF)) else {
            throw unexpected("ACK")
        }
        return lpi.intid == .spurious ? nil : lpi
    }

    /// SNAPSHOT_VM: the VM's whole ITS and LPI state, captured at once and read in chunks.
    func snapshot() throws(DemoError) -> [UInt8] {
        var image: [UInt8] = []
        while true {
            let request = Message.snapshotVM(vm, offset: UInt64(image.count), maxBytes: 0)
            guard case .snapshotReply(let chunk) = try call(request) else { throw unexpected("SNAPSHOT_VM") }
            guard chunk.offset == UInt64(image.count) else {
                throw DemoError("SNAPSHOT_VM answered offset \(chunk.offset) where \(image.count) was asked")
            }
            image += chunk.bytes
            if chunk.isLast { return image }
        }
    }

    /// RESTORE_VM: loads `image` into this (not yet run) VM, 32 KiB at a time.
    func restore(_ image: [UInt8]) throws(DemoError) {
        let chunkBytes = 32768
        var offset = 0
        repeat {
            let end = min(offset + chunkBytes, image.count)
            let chunk = SnapshotChunk(vm: vm, offset: UInt64(offset), totalLength: UInt64(image.count),
                                      isLast: end == image.count, bytes: image[offset ..< end])
            _ = try call(.restoreVM(chunk))
            offset = end
        } while offset < image.count
    }

    /// UNBIND_IRQFD: itsd stops polling the eventfd and closes its copy.
    func unbind(deviceID: UInt32, eventID: UInt32) throws(DemoError) {
        _ = try call(.unbindIRQFD(key(deviceID, eventID)))
    }

    private func key(_ deviceID: UInt32, _ eventID: UInt32) -> IRQFDKey {
        IRQFDKey(vm: vm, deviceID: Wire.DeviceID(deviceID), eventID: Wire.EventID(eventID))
    }

    private func unexpected(_ request: String) -> DemoError {
        DemoError("itsd answered \(request) with a reply of another kind")
    }

    /// Sends one request and returns its reply; an error reply throws with its status and text.
    private func call(_ message: Message, fds: [Int32] = []) throws(DemoError) -> Message {
        let id = MessageID(nextID)
        nextID &+= 1
        try socket.send(Frame(message, id: id).encoded, fds: fds)
        while true {
            switch decoder.decode(received, fdCount: 0) {
            case .needMoreData:
                let bytes = try socket.receiveSome(capacity: 65536)
                guard !bytes.isEmpty else { throw DemoError("itsd closed the connection during \(message.opcode)") }
                received += bytes
            case .failure(let error):
                throw DemoError("itsd sent a malformed frame: \(error.status) (detail \(error.detail))")
            case .frame(let frame, let consumed):
                received.removeFirst(consumed)
                guard frame.message.kind == .reply else { continue }
                guard frame.messageID == id else {
                    throw DemoError("itsd answered message \(frame.messageID) while \(id) waited")
                }
                if case .error(let opcode, let report) = frame.message {
                    throw DemoError("itsd refused \(opcode): \(report.status) (detail \(report.detail))"
                        + (report.text.isEmpty ? "" : ": \(report.text)"))
                }
                return frame.message
            }
        }
    }
}

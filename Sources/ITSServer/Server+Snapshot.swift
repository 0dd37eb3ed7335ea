import CLibUV
import ITSModel
import ITSWire

/// SNAPSHOT_VM and RESTORE_VM (Protocol/PROTOCOL.md, 6.19): the VM's ITS and LPI state as one
/// image (``VGICSnapshot/image()``), moved in chunks.
///
/// A capture must hold every pending LPI exactly once, but the loop and the lanes each hold part
/// of the state, and some work crosses between them: a move's source half reports back to the
/// loop, which then queues the target half; an INVALL or MOVALL finishes on a lane and releases
/// a SYNC. So a capture first holds the VM's ITS commands (the only source of such work) and
/// waits until none is in flight (``LaneRedistributors/isQuiescent``); then, in one loop turn, it
/// copies the ITS and queues a snapshot request to every vCPU's lane behind all that was queued
/// before. What those requests see is the state as of that turn.
extension Server {
    func snapshotVM(_ id: VMID, offset: UInt64, maxBytes: UInt32, session: Session, frame: Frame,
                    fail: (WireStatus, UInt32, String) -> Void)
    {
        guard session.capabilities.contains(.snapshot) else { return fail(.capabilityNotAgreed, UInt32(Capabilities.snapshot.rawValue), "") }
        guard let vm = attachedVM(id, session, fail) else { return }
        let transfers = transfers(of: session)
        let frameLimit = Int(session.hello?.limits.maxFrameLength ?? Limits.defaults.maxFrameLength)
        // Header, chunk fields, and room for the padding.
        var chunkLimit = (frameLimit - Wire.headerLength - 32) & ~7
        if maxBytes > 0 { chunkLimit = min(chunkLimit, Int(maxBytes)) }
        chunkLimit = max(chunkLimit, 1)
        guard offset == 0 else {
            guard let reading = transfers.readings[vm.key], UInt64(reading.offset) == offset else { return fail(.badCursor, 0, "") }
            session.reply(Frame(.snapshotReply(nextChunk(vm.key, of: transfers, limit: chunkLimit)), id: frame.messageID))
            return
        }
        guard !vm.commandsHeld else { return fail(.busy, 0, "a snapshot of this VM is being captured") }
        transfers.readings[vm.key] = nil
        let slot = session.reserveSlot()
        let connection = session.connection.id
        vm.captureWaiting = { [weak self, weak transfers, unowned vm] in
            self?.capture(vm) { [weak self] image in
                guard let self, let session = self.sessions[connection], let transfers else { return }
                guard !image.isEmpty else {
                    return session.fill(slot, with: Frame(.error(.snapshotVM, ErrorReport(.noSuchVM, detail: id.rawValue)), id: frame.messageID))
                }
                transfers.readings[vm.key] = .init(image: image, offset: 0)
                session.fill(slot, with: Frame(.snapshotReply(self.nextChunk(vm.key, of: transfers, limit: chunkLimit)), id: frame.messageID))
            }
        }
        startCaptureIfQuiescent(vm)
    }

    /// The next chunk of the image a connection is reading; the image is dropped after its last.
    private func nextChunk(_ key: VMKey, of transfers: ConnectionTransfers, limit: Int) -> SnapshotChunk {
        let reading = transfers.readings[key]!
        let end = min(reading.image.count, reading.offset + limit)
        let isLast = end == reading.image.count
        let chunk = SnapshotChunk(vm: VMID(rawValue: key.rawValue), offset: UInt64(reading.offset), totalLength: UInt64(reading.image.count),
                                  isLast: isLast, bytes: reading.image[reading.offset ..< end])
        transfers.readings[key] = isLast ? nil : .init(image: reading.image, offset: end)
        return chunk
    }

    /// Runs a waiting capture once the VM's lanes owe the loop nothing.
    func startCaptureIfQuiescent(_ vm: ServerVM) {
        guard let start = vm.captureWaiting, vm.operations.isQuiescent else { return }
        vm.captureWaiting = nil
        start()
    }

    /// Copies the ITS now and every redistributor as of now, then hands over the image.
    private func capture(_ vm: ServerVM, _ done: @escaping ([UInt8]) -> Void) {
        vm.capturing = true
        let its = vm.its.snapshot()
        let count = Int(vm.config.vcpuCount)
        var redistributors = [VGICSnapshot.RedistributorState?](repeating: nil, count: count)
        var outstanding = count
        for vcpu in 0 ..< count {
            let index = VCPUIndex(UInt16(vcpu))
            let ticket = ticket { [weak self, key = vm.key] reply in
                if case .redistributor(let redistributor) = reply { redistributors[vcpu] = redistributor.snapshot() }
                outstanding -= 1
                guard outstanding == 0, let self else { return }
                // A VM destroyed meanwhile: no image.
                guard let vm = self.registry.vms[key] else { return done([]) }
                vm.capturing = false
                self.resumeITSWork(vm)
                // A VM destroyed meanwhile answers .gone: its image would be incomplete.
                guard redistributors.allSatisfy({ $0 != nil }) else { return done([]) }
                done(VGICSnapshot(its: its, redistributors: redistributors.map { $0! }).image())
            }
            vm.operations.queue(.request(vm.key, index, .snapshot, ticket: ticket), for: index)
        }
        markDirty(vm)
    }

    func restoreVM(_ chunk: SnapshotChunk, session: Session, frame: Frame, fail: (WireStatus, UInt32, String) -> Void) {
        guard session.capabilities.contains(.snapshot) else { return fail(.capabilityNotAgreed, UInt32(Capabilities.snapshot.rawValue), "") }
        guard let vm = attachedVM(chunk.vm, session, fail) else { return }
        guard !vm.commandsHeld, vm.hasNotRun else { return fail(.busy, 0, "RESTORE_VM needs a VM whose guest has not run") }
        let transfers = transfers(of: session)
        guard chunk.totalLength <= UInt64(configuration.maximumSnapshotBytes) else {
            transfers.assemblies[vm.key] = nil
            return fail(.limitExceeded, UInt32(clamping: configuration.maximumSnapshotBytes), "")
        }
        var assembly: ConnectionTransfers.Assembly
        if chunk.offset == 0 {
            assembly = .init(image: [], totalLength: Int(chunk.totalLength))
            assembly.image.reserveCapacity(min(assembly.totalLength, 1 << 24))
        } else {
            guard let existing = transfers.assemblies[vm.key], UInt64(existing.image.count) == chunk.offset,
                  UInt64(existing.totalLength) == chunk.totalLength
            else { return fail(.badCursor, 0, "chunks must follow each other from offset 0 with one total length") }
            assembly = existing
        }
        guard assembly.image.count + chunk.bytes.count <= assembly.totalLength,
              chunk.isLast == (assembly.image.count + chunk.bytes.count == assembly.totalLength)
        else {
            transfers.assemblies[vm.key] = nil
            return fail(.badCursor, 0, "the chunks do not add up to total_length")
        }
        assembly.image += chunk.bytes
        guard chunk.isLast else {
            transfers.assemblies[vm.key] = assembly
            return session.reply(Frame(.done(.restoreVM), id: frame.messageID))
        }
        transfers.assemblies[vm.key] = nil
        switch restore(vm, from: assembly.image) {
        case .success: session.reply(Frame(.done(.restoreVM), id: frame.messageID))
        case .failure(let defect): fail(.badSnapshot, UInt32(clamping: defect.offset), defect.text)
        }
    }

    struct SnapshotDefect: Error {
        var offset: Int
        var text: String
    }

    /// Decodes and checks the image whole, then replaces the VM's ITS and sends each restored
    /// redistributor to its lane, in order behind what was queued before.
    private func restore(_ vm: ServerVM, from image: [UInt8]) -> Result<Void, SnapshotDefect> {
        let snapshot: VGICSnapshot
        do {
            snapshot = try VGICSnapshot(image: image)
        } catch {
            return .failure(SnapshotDefect(offset: error.offset, text: "\(error)"))
        }
        guard snapshot.its.configuration == vm.its.configuration, snapshot.redistributors.count == Int(vm.config.vcpuCount) else {
            return .failure(SnapshotDefect(offset: 0, text: "the image is of a VM with another configuration"))
        }
        let its: ITS
        let redistributors: [Redistributor]
        do {
            (its, redistributors) = try snapshot.restoredParts()
        } catch {
            return .failure(SnapshotDefect(offset: 0, text: "inconsistent state: \(error)"))
        }
        vm.its = its
        vm.startedAt = uv_hrtime()
        for redistributor in redistributors {
            vm.operations.queue(.attach(vm.key, memory: vm.memory, redistributors: [redistributor]), for: redistributor.vcpu)
        }
        markDirty(vm)
        return .success(())
    }
}

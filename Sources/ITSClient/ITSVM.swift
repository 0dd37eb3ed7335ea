import CITSSupport
import Glibc
import ITSWire

/// A VM this connection created or attached: guest memory, MMIO forwarding, MSIs, the vCPU side,
/// statistics, dumps and snapshots (Protocol/PROTOCOL.md, section 6). A handle: copying it copies no
/// state, and every call goes through `connection` on the caller's thread.
public struct ITSVM {
    public let connection: ITSConnection
    public let id: VMID
    public let config: VMConfig
    /// The token that attaches the VM from another connection (CREATE_VM), or the one this
    /// connection attached with.
    public let token: VMToken

    /// A handle on a VM `connection` created or attached (as `createVM` and `attachVM` make it).
    /// - Context: the thread that owns the connection; no I/O.
    public init(connection: ITSConnection, id: VMID, config: VMConfig, token: VMToken) {
        self.connection = connection
        self.id = id
        self.config = config
        self.token = token
    }

    /// DESTROY_VM: frees the VM's state, unmaps its memory and closes every descriptor bound to it.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func destroy() throws(ITSClientError) {
        _ = try connection.call(.destroyVM(id))
    }

    // MARK: Guest memory

    /// ADD_MEM_REGION: shares `size` bytes of guest RAM at `guestAddress`, backed by `fd` (a memfd sealed
    /// against shrinking, as `makeGuestMemoryFile` makes, or
    /// another mappable file that cannot shrink) from `fileOffset`. Addresses, size and offset are 4 KiB aligned. The
    /// server maps its own copy of the descriptor; the caller may close `fd` afterwards.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func addMemoryRegion(fd: Int32, guestAddress: UInt64, size: UInt64, fileOffset: UInt64 = 0) throws(ITSClientError) {
        let region = MemRegion(vm: id, guestAddress: guestAddress, size: size, fileOffset: fileOffset)
        _ = try connection.call(.addMemRegion(region), fds: [fd])
    }

    /// REMOVE_MEM_REGION: the range must match an added region exactly.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func removeMemoryRegion(guestAddress: UInt64, size: UInt64) throws(ITSClientError) {
        _ = try connection.call(.removeMemRegion(id, guestAddress: guestAddress, size: size))
    }

    // MARK: MMIO forwarding

    /// MMIO_READ of an ITS or redistributor register the guest accessed. A narrower access returns its
    /// value in the low bytes.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func mmioRead(_ frame: MMIOFrame, offset: UInt64, width: MMIOWidth = .doubleword) throws(ITSClientError) -> UInt64 {
        let reply = try connection.call(.mmioRead(MMIOAccess(vm: id, frame: frame, width: width, offset: offset)))
        guard case .mmioReadReply(let value) = reply else { throw .unexpectedReply(request: .mmioRead, reply: reply.opcode) }
        return value
    }

    /// MMIO_WRITE of a register. `deviceID` names the requester of a write to GITS_TRANSLATER (an
    /// MSI). With `posted`, the write goes with NO_REPLY, as MMIO writes are posted on hardware, and
    /// the call returns once it is written to the socket.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func mmioWrite(_ frame: MMIOFrame, offset: UInt64, value: UInt64, width: MMIOWidth = .doubleword,
                          deviceID: Wire.DeviceID = Wire.DeviceID(0), posted: Bool = false) throws(ITSClientError) {
        let message = Message.mmioWrite(MMIOAccess(vm: id, frame: frame, width: width, offset: offset), value: value,
                                        deviceID: deviceID)
        if posted {
            try connection.send(message, noReply: true)
        } else {
            _ = try connection.call(message)
        }
    }

    // MARK: MSIs

    /// INJECT with a reply: whether the ITS translated the MSI into an LPI (false: TRANSLATION_BLOCKED,
    /// nothing mapped for the pair). Throws ITS_DISABLED and the common errors.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func inject(deviceID: Wire.DeviceID, eventID: Wire.EventID) throws(ITSClientError) -> Bool {
        do throws(ITSClientError) {
            _ = try connection.call(.inject(id, deviceID, eventID))
            return true
        } catch {
            if error.status == .translationBlocked { return false }
            throw error
        }
    }

    /// INJECT_BATCH with a reply: the pairs that made an LPI pending and those that were blocked.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func injectBatch(_ entries: [InjectEntry]) throws(ITSClientError) -> (injected: UInt32, blocked: UInt32) {
        let reply = try connection.call(.injectBatch(InjectBatch(vm: id, entries: entries)))
        guard case .injectBatchReply(let injected, let blocked) = reply else {
            throw .unexpectedReply(request: .injectBatch, reply: reply.opcode)
        }
        return (injected, blocked)
    }

    /// Queues one MSI into the connection's INJECT_BATCH for this VM, sent with NO_REPLY when the
    /// batch is full, when `flush()` is called, or before any other request. Allocates nothing.
    /// - Context: the thread that owns the connection; writes to the socket at most, never waits for a reply.
    @inline(__always)
    public func post(deviceID: Wire.DeviceID, eventID: Wire.EventID) throws(ITSClientError) {
        try connection.post(vm: id, deviceID: deviceID, eventID: eventID)
    }

    /// The MSI vector group of one DeviceID: trigger, bound eventfds, mask and unmask.
    /// - Context: the thread that owns the connection; no I/O.
    public func vectorGroup(deviceID: Wire.DeviceID) -> MSIVectorGroup {
        MSIVectorGroup(vm: self, deviceID: deviceID)
    }

    // MARK: vCPUs

    /// The vCPU side of vCPU `index`: notification, HPPI, ACK, PENDING.
    /// - Context: the thread that owns the connection; no I/O.
    public func vcpu(_ index: UInt16) -> ITSVCPU {
        ITSVCPU(vm: self, index: Wire.VCPU(index))
    }

    /// SUBSCRIBE: which events this connection receives for the VM (needs `EVENTS`).
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func subscribe(_ events: EventMask) throws(ITSClientError) {
        _ = try connection.call(.subscribe(id, events))
    }

    // MARK: Operators

    /// STATS of this VM: its counters, one group per vCPU and one per device that had an MSI.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func stats() throws(ITSClientError) -> StatsSample {
        try connection.stats(id)
    }

    /// Every entry of one DUMP section, fetched `pageSize` entries a page (0: as many as fit).
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func dump(_ section: DumpSection, pageSize: UInt32 = 0) throws(ITSClientError) -> DumpEntries {
        try connection.dump(id, section, pageSize: pageSize)
    }

    /// SNAPSHOT_VM: the VM's whole ITS and LPI state as one image, captured atomically and fetched in
    /// chunks (needs the `SNAPSHOT` capability).
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func snapshot() throws(ITSClientError) -> [UInt8] {
        var image: [UInt8] = []
        var offset: UInt64 = 0
        while true {
            let reply = try connection.call(.snapshotVM(id, offset: offset, maxBytes: 0))
            guard case .snapshotReply(let chunk) = reply else {
                throw .unexpectedReply(request: .snapshotVM, reply: reply.opcode)
            }
            guard chunk.offset == offset, chunk.offset + UInt64(chunk.bytes.count) <= chunk.totalLength else {
                throw .protocolViolation("chunk at \(chunk.offset) of \(chunk.totalLength) bytes, \(offset) expected")
            }
            if offset == 0 { image.reserveCapacity(Int(chunk.totalLength)) }
            image.append(contentsOf: chunk.bytes)
            offset += UInt64(chunk.bytes.count)
            if chunk.isLast {
                guard offset == chunk.totalLength else {
                    throw .protocolViolation("the last chunk ends at \(offset) of \(chunk.totalLength) bytes")
                }
                return image
            }
            guard !chunk.bytes.isEmpty else { throw .protocolViolation("an empty chunk that is not the last") }
        }
    }

    /// RESTORE_VM: loads an image into this VM, which must have the image's configuration and must not
    /// have run (GITS_CTLR.Enabled 0, nothing mapped). Sent in chunks that fit the agreed frame length;
    /// the server applies the image whole when the last chunk arrives, or leaves the VM unchanged.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func restore(_ image: [UInt8]) throws(ITSClientError) {
        let room = Int(connection.agreed.limits.maxFrameLength) - Wire.headerLength - 32 - 8
        let chunkSize = Swift.max(8, room & ~7)
        var offset = 0
        repeat {
            let end = Swift.min(image.count, offset + chunkSize)
            let chunk = SnapshotChunk(vm: id, offset: UInt64(offset), totalLength: UInt64(image.count),
                                      isLast: end == image.count, bytes: image[offset ..< end])
            _ = try connection.call(.restoreVM(chunk))
            offset = end
        } while offset < image.count
    }
}

extension ITSVM {
    /// Makes a memfd of `size` bytes for guest RAM, sealed against shrinking as ADD_MEM_REGION
    /// requires (a file that could shrink under the server's mapping is BAD_FD). The caller owns the
    /// descriptor: map it for the guest, pass it to `addMemoryRegion`, close it when done.
    /// - Context: any thread.
    public static func makeGuestMemoryFile(size: Int, name: String = "guest-ram") throws(ITSClientError) -> Int32 {
        try makeSealedMemoryFile(size: size, name: name, seals: its_seal_shrink())
    }

    /// A memfd of `size` bytes carrying `seals`; the caller owns the descriptor. Nothing is left
    /// open when it throws.
    static func makeSealedMemoryFile(size: Int, name: String, seals: Int32) throws(ITSClientError) -> Int32 {
        let fd = its_memfd_create(name, 1)
        guard fd >= 0 else { throw .system(call: "memfd_create", errno: its_errno()) }
        guard ftruncate(fd, off_t(size)) == 0 else {
            let code = errno
            close(fd)
            throw .system(call: "ftruncate", errno: code)
        }
        guard its_add_seals(fd, seals) == 0 else {
            let code = its_errno()
            close(fd)
            throw .system(call: "fcntl(F_ADD_SEALS)", errno: code)
        }
        return fd
    }
}

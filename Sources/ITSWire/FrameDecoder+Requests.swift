/// Payload layouts of requests (Protocol/PROTOCOL.md, "Messages"). Each reads its fields in wire
/// order; `decodeFrame` then checks that nothing is left over.
extension FrameDecoder {
    func decodeRequest(_ opcode: Opcode, _ r: inout ByteReader, slice: ArraySlice<UInt8>) throws(WireError) -> Message {
        switch opcode {
        case .injectBatch:
            let vm = VMID(try r.u32())
            let count = try r.u32()
            try r.expectEntries(count, size: 8)
            guard count <= limits.maxBatchEntries else {
                throw WireError(.limitExceeded, detail: limits.maxBatchEntries)
            }
            let start = try r.skip(Int(count) &* 8)
            let first = slice.startIndex + start
            return .injectBatch(InjectBatch(vm: vm, validatedEntryBytes: slice[first..<(first + Int(count) * 8)]))
        case .inject:
            let vm = VMID(try r.u32())
            let device = Wire.DeviceID(try r.u32())
            let event = Wire.EventID(try r.u32())
            try r.zeros(4)
            return .inject(vm, device, event)
        case .hello:
            return .hello(try Self.readHello(&r))
        case .ping:
            return .ping(nonce: try r.u64())
        case .authenticate:
            let length = try r.u32()
            try r.zeros(4)
            guard (1 ... UInt32(Message.maxSecretLength)).contains(length) else { throw WireError(.badValue, detail: length) }
            let start = try r.skip(Int(length))
            try r.padding(after: Int(length))
            let first = slice.startIndex + start
            return .authenticate(secret: Array(slice[first ..< first + Int(length)]))
        case .createVM:
            return .createVM(try Self.readVMConfig(&r, reserved: 3))
        case .attachVM:
            let vm = VMID(try r.u32())
            try r.zeros(4)
            return .attachVM(vm, token: try Self.readToken(&r))
        case .destroyVM:
            let vm = VMID(try r.u32())
            try r.zeros(4)
            return .destroyVM(vm)
        case .listVMs:
            return .listVMs
        case .addMemRegion:
            let vm = VMID(try r.u32())
            try r.zeros(4)
            return .addMemRegion(MemRegion(vm: vm, guestAddress: try r.u64(), size: try r.u64(),
                                           fileOffset: try r.u64()))
        case .removeMemRegion:
            let vm = VMID(try r.u32())
            try r.zeros(4)
            return .removeMemRegion(vm, guestAddress: try r.u64(), size: try r.u64())
        case .mmioRead:
            return .mmioRead(try Self.readMMIOAccess(&r))
        case .mmioWrite:
            let access = try Self.readMMIOAccess(&r)
            let value = try r.u64()
            if access.width != .doubleword, value >> (UInt64(access.width.rawValue) * 8) != 0 {
                throw WireError(.badValue, detail: UInt32(access.width.rawValue))
            }
            let device = Wire.DeviceID(try r.u32())
            try r.zeros(4)
            return .mmioWrite(access, value: value, deviceID: device)
        case .bindIRQFD:
            let key = try Self.readIRQFDKey(&r)
            let flags = try r.u32()
            guard flags & ~1 == 0 else { throw WireError(.badValue, detail: flags) }
            return .bindIRQFD(key, startMasked: flags & 1 != 0)
        case .unbindIRQFD, .mask, .unmask:
            let key = try Self.readIRQFDKey(&r)
            try r.zeros(4)
            switch opcode {
            case .unbindIRQFD: return .unbindIRQFD(key)
            case .mask: return .mask(key)
            default: return .unmask(key)
            }
        case .setVCPUNotify, .clearVCPUNotify, .hppi, .wake, .clearAckSlot:
            let vm = VMID(try r.u32())
            let vcpu = Wire.VCPU(try r.u16())
            try r.zeros(2)
            switch opcode {
            case .setVCPUNotify: return .setVCPUNotify(vm, vcpu)
            case .clearVCPUNotify: return .clearVCPUNotify(vm, vcpu)
            case .wake: return .wake(vm, vcpu)
            case .clearAckSlot: return .clearAckSlot(vm, vcpu)
            default: return .hppi(vm, vcpu)
            }
        case .subscribe:
            let vm = VMID(try r.u32())
            let mask = EventMask(rawValue: try r.u32())
            guard mask.isSubset(of: .defined) else { throw WireError(.badValue, detail: mask.rawValue) }
            return .subscribe(vm, mask)
        case .ack:
            let vm = VMID(try r.u32())
            let vcpu = Wire.VCPU(try r.u16())
            let priorityMask = try r.u8()
            try r.zeros(1)
            return .ack(vm, vcpu, priorityMask: priorityMask)
        case .waitAck:
            let vm = VMID(try r.u32())
            let vcpu = Wire.VCPU(try r.u16())
            let priorityMask = try r.u8()
            try r.zeros(1)
            let timeout = try r.u32()
            try r.zeros(4)
            return .waitAck(vm, vcpu, priorityMask: priorityMask, timeoutMicroseconds: timeout)
        case .setAckSlot:
            let vm = VMID(try r.u32())
            let vcpu = Wire.VCPU(try r.u16())
            try r.zeros(2)
            let offset = try r.u64()
            guard offset % 8 == 0 else { throw WireError(.badValue, detail: UInt32(truncatingIfNeeded: offset)) }
            return .setAckSlot(vm, vcpu, offset: offset)
        case .pending:
            let vm = VMID(try r.u32())
            let vcpu = Wire.VCPU(try r.u16())
            try r.zeros(2)
            return .pending(vm, vcpu, cursor: try r.u32(), maxEntries: try r.u32())
        case .stats:
            let vm = VMID(try r.u32())
            let flags = try r.u32()
            guard flags & ~1 == 0 else { throw WireError(.badValue, detail: flags) }
            return .stats(vm, includeSchema: flags & 1 != 0)
        case .dump:
            let vm = VMID(try r.u32())
            let section = try Self.readDumpSection(&r)
            try r.zeros(2)
            let cursor = try r.u64()
            let maxEntries = try r.u32()
            try r.zeros(4)
            return .dump(vm, section, cursor: cursor, maxEntries: maxEntries)
        case .snapshotVM:
            let vm = VMID(try r.u32())
            let maxBytes = try r.u32()
            return .snapshotVM(vm, offset: try r.u64(), maxBytes: maxBytes)
        case .restoreVM:
            return .restoreVM(try Self.readSnapshotChunk(&r, slice: slice))
        default:
            throw WireError(.unknownOpcode, detail: UInt32(opcode.rawValue))
        }
    }

    static func readHello(_ r: inout ByteReader) throws(WireError) -> Hello {
        let major = try r.u16()
        let minor = try r.u16()
        try r.zeros(4)
        let capabilities = Capabilities(rawValue: try r.u64())
        let maxFrame = try r.u32()
        let maxBatch = try r.u32()
        let maxInFlight = try r.u32()
        let maxFDs = try r.u16()
        try r.zeros(2)
        return Hello(major: major, minor: minor, capabilities: capabilities,
                     limits: Limits(maxFrameLength: maxFrame, maxBatchEntries: maxBatch, maxInFlight: maxInFlight,
                                    maxFDsPerMessage: maxFDs))
    }

    static func readVMConfig(_ r: inout ByteReader, reserved: Int) throws(WireError) -> VMConfig {
        let vcpus = try r.u16()
        let deviceBits = try r.u8()
        let eventBits = try r.u8()
        let intidBits = try r.u8()
        try r.zeros(reserved)
        return VMConfig(vcpuCount: vcpus, deviceIDBits: deviceBits, eventIDBits: eventBits, intidBits: intidBits)
    }

    static func readToken(_ r: inout ByteReader) throws(WireError) -> VMToken {
        let low = try r.u64()
        let high = try r.u64()
        return VMToken(high: high, low: low)
    }

    static func readMMIOAccess(_ r: inout ByteReader) throws(WireError) -> MMIOAccess {
        let vm = VMID(try r.u32())
        let frameKind = try r.u8()
        let rawWidth = try r.u8()
        let index = try r.u16()
        let offset = try r.u64()
        let frame: MMIOFrame
        switch frameKind {
        case 0:
            guard index == 0 else { throw WireError(.badMMIOFrame, detail: UInt32(index)) }
            frame = .its
        case 1: frame = .redistributor(Wire.VCPU(index))
        default: throw WireError(.badMMIOFrame, detail: UInt32(frameKind))
        }
        guard let width = MMIOWidth(rawValue: rawWidth) else {
            throw WireError(.badMMIOWidth, detail: UInt32(rawWidth))
        }
        return MMIOAccess(vm: vm, frame: frame, width: width, offset: offset)
    }

    static func readIRQFDKey(_ r: inout ByteReader) throws(WireError) -> IRQFDKey {
        let vm = VMID(try r.u32())
        let device = Wire.DeviceID(try r.u32())
        let event = Wire.EventID(try r.u32())
        return IRQFDKey(vm: vm, deviceID: device, eventID: event)
    }

    static func readDumpSection(_ r: inout ByteReader) throws(WireError) -> DumpSection {
        let raw = try r.u16()
        guard let section = DumpSection(rawValue: raw) else { throw WireError(.badValue, detail: UInt32(raw)) }
        return section
    }

    /// `u32 vm, u32 chunk_length, u64 offset, u64 total_length, u32 flags, u32 reserved`, then the bytes
    /// padded to 8. The bytes stay in the received buffer.
    static func readSnapshotChunk(_ r: inout ByteReader, slice: ArraySlice<UInt8>) throws(WireError) -> SnapshotChunk {
        let vm = VMID(try r.u32())
        let length = try r.u32()
        let offset = try r.u64()
        let total = try r.u64()
        let flags = try r.u32()
        try r.zeros(4)
        guard flags & ~1 == 0 else { throw WireError(.badValue, detail: flags) }
        let padded = (UInt64(length) + 7) & ~7
        guard padded == UInt64(r.remaining) else { throw WireError(.batchCountMismatch, detail: length) }
        let start = try r.skip(Int(length))
        try r.padding(after: Int(length))
        let first = slice.startIndex + start
        return SnapshotChunk(vm: vm, offset: offset, totalLength: total, isLast: flags & 1 != 0,
                             bytes: slice[first..<(first + Int(length))])
    }
}

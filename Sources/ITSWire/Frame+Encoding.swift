/// Frame encoding: the mirror of the decoder, field for field (Protocol/PROTOCOL.md, "Messages").
/// Encoding cannot fail on a value the decoder would produce; values outside the protocol's ranges
/// (an over-long string, a histogram whose bucket count disagrees with its schema) are programming
/// errors and trap.
extension Frame {
    /// Appends the frame's bytes to `bytes`.
    public func encode(into bytes: inout [UInt8]) {
        precondition(!noReply || message.opcode.traits?.noReplyAllowed == true, "NO_REPLY not allowed on this opcode")
        var w = ByteWriter(bytes: [])
        swap(&w.bytes, &bytes)
        let start = w.bytes.count
        w.u32(0)
        w.u16(message.opcode.rawValue)
        w.u16(flags.rawValue)
        w.u32(messageID.rawValue)
        w.u32(status.rawValue)
        message.encodePayload(&w)
        let length = w.bytes.count - start
        precondition(length <= Int(UInt32.max), "frame too large to encode")
        w.patch(UInt32(length), at: start)
        swap(&w.bytes, &bytes)
    }

    /// The frame's bytes.
    public var encoded: [UInt8] {
        var bytes: [UInt8] = []
        encode(into: &bytes)
        return bytes
    }
}

extension Message {
    func encodePayload(_ w: inout ByteWriter) {
        switch self {
        case .hello(let hello), .helloReply(let hello):
            w.u16(hello.major)
            w.u16(hello.minor)
            w.zeros(4)
            w.u64(hello.capabilities.rawValue)
            w.u32(hello.limits.maxFrameLength)
            w.u32(hello.limits.maxBatchEntries)
            w.u32(hello.limits.maxInFlight)
            w.u16(hello.limits.maxFDsPerMessage)
            w.zeros(2)
        case .ping(let nonce), .pingReply(let nonce):
            w.u64(nonce)
        case .authenticate(let secret):
            precondition((1 ... Message.maxSecretLength).contains(secret.count), "secret length 1 ... 256")
            w.u32(UInt32(secret.count))
            w.zeros(4)
            w.bytes.append(contentsOf: secret)
            w.padding(after: secret.count)
        case .createVM(let config):
            Self.write(config, reserved: 3, &w)
        case .attachVM(let vm, let token), .createVMReply(let vm, let token):
            w.u32(vm.rawValue)
            w.zeros(4)
            w.u64(token.low)
            w.u64(token.high)
        case .destroyVM(let vm):
            w.u32(vm.rawValue)
            w.zeros(4)
        case .listVMs:
            break
        case .done(let opcode):
            precondition(opcode.traits?.replyIsEmpty == true, "\(opcode) has a reply payload")
        case .addMemRegion(let region):
            w.u32(region.vm.rawValue)
            w.zeros(4)
            w.u64(region.guestAddress)
            w.u64(region.size)
            w.u64(region.fileOffset)
        case .removeMemRegion(let vm, let address, let size):
            w.u32(vm.rawValue)
            w.zeros(4)
            w.u64(address)
            w.u64(size)
        case .mmioRead(let access):
            Self.write(access, &w)
        case .mmioWrite(let access, let value, let device):
            Self.write(access, &w)
            w.u64(value)
            w.u32(device.rawValue)
            w.zeros(4)
        case .inject(let vm, let device, let event):
            w.u32(vm.rawValue)
            w.u32(device.rawValue)
            w.u32(event.rawValue)
            w.zeros(4)
        case .injectBatch(let batch):
            w.u32(batch.vm.rawValue)
            w.u32(UInt32(batch.count))
            w.bytes.append(contentsOf: batch.entryBytes)
        case .bindIRQFD(let key, let startMasked):
            Self.write(key, &w)
            w.u32(startMasked ? 1 : 0)
        case .unbindIRQFD(let key), .mask(let key), .unmask(let key):
            Self.write(key, &w)
            w.zeros(4)
        case .setVCPUNotify(let vm, let vcpu), .clearVCPUNotify(let vm, let vcpu), .hppi(let vm, let vcpu),
             .wake(let vm, let vcpu), .clearAckSlot(let vm, let vcpu), .vcpuNotify(let vm, let vcpu):
            w.u32(vm.rawValue)
            w.u16(vcpu.rawValue)
            w.zeros(2)
        case .subscribe(let vm, let mask):
            w.u32(vm.rawValue)
            w.u32(mask.rawValue)
        case .ack(let vm, let vcpu, let priorityMask):
            w.u32(vm.rawValue)
            w.u16(vcpu.rawValue)
            w.u8(priorityMask)
            w.zeros(1)
        case .waitAck(let vm, let vcpu, let priorityMask, let timeout):
            w.u32(vm.rawValue)
            w.u16(vcpu.rawValue)
            w.u8(priorityMask)
            w.zeros(1)
            w.u32(timeout)
            w.zeros(4)
        case .setAckSlot(let vm, let vcpu, let offset):
            w.u32(vm.rawValue)
            w.u16(vcpu.rawValue)
            w.zeros(2)
            w.u64(offset)
        case .pending(let vm, let vcpu, let cursor, let maxEntries):
            w.u32(vm.rawValue)
            w.u16(vcpu.rawValue)
            w.zeros(2)
            w.u32(cursor)
            w.u32(maxEntries)
        case .stats(let vm, let includeSchema):
            w.u32(vm.rawValue)
            w.u32(includeSchema ? 1 : 0)
        case .dump(let vm, let section, let cursor, let maxEntries):
            w.u32(vm.rawValue)
            w.u16(section.rawValue)
            w.zeros(2)
            w.u64(cursor)
            w.u32(maxEntries)
            w.zeros(4)
        case .snapshotVM(let vm, let offset, let maxBytes):
            w.u32(vm.rawValue)
            w.u32(maxBytes)
            w.u64(offset)
        case .restoreVM(let chunk), .snapshotReply(let chunk):
            Self.write(chunk, &w)
        case .attachVMReply(let vm, let config):
            w.u32(vm.rawValue)
            Self.write(config, reserved: 7, &w)
        case .listVMsReply(let list):
            w.u32(UInt32(list.count))
            w.zeros(4)
            for info in list {
                w.u32(info.vm.rawValue)
                Self.write(info.config, reserved: 0, &w)
                w.u8(info.state.rawValue)
                w.u16(info.connections)
                w.zeros(4)
            }
        case .mmioReadReply(let value):
            w.u64(value)
        case .injectBatchReply(let injected, let blocked):
            w.u32(injected)
            w.u32(blocked)
        case .hppiReply(let lpi):
            Self.write(lpi, more: false, &w)
        case .ackReply(let lpi, let more), .waitAckReply(let lpi, let more):
            Self.write(lpi, more: more, &w)
        case .pendingReply(let list, let next):
            w.u32(UInt32(list.count))
            w.u32(next)
            for lpi in list { Self.write(lpi, more: false, &w) }
        case .statsReply(let report):
            Self.write(report, &w)
        case .dumpReply(let page):
            Self.write(page, &w)
        case .error(_, let report):
            precondition(report.status != .ok, "an error reply needs a status other than OK")
            let text = Array(report.text.utf8)
            precondition(text.count <= ErrorReport.maxTextLength, "error text too long")
            w.u32(report.detail)
            w.u16(UInt16(text.count))
            w.zeros(2)
            w.bytes.append(contentsOf: text)
            w.padding(after: text.count)
        case .vmGone(let vm, let reason):
            w.u32(vm.rawValue)
            w.u32(reason.rawValue)
        }
    }

    static func write(_ config: VMConfig, reserved: Int, _ w: inout ByteWriter) {
        w.u16(config.vcpuCount)
        w.u8(config.deviceIDBits)
        w.u8(config.eventIDBits)
        w.u8(config.intidBits)
        w.zeros(reserved)
    }

    static func write(_ access: MMIOAccess, _ w: inout ByteWriter) {
        w.u32(access.vm.rawValue)
        switch access.frame {
        case .its:
            w.u8(0)
            w.u8(access.width.rawValue)
            w.u16(0)
        case .redistributor(let vcpu):
            w.u8(1)
            w.u8(access.width.rawValue)
            w.u16(vcpu.rawValue)
        }
        w.u64(access.offset)
    }

    static func write(_ key: IRQFDKey, _ w: inout ByteWriter) {
        w.u32(key.vm.rawValue)
        w.u32(key.deviceID.rawValue)
        w.u32(key.eventID.rawValue)
    }

    static func write(_ lpi: PendingLPI, more: Bool, _ w: inout ByteWriter) {
        w.u32(lpi.intid.rawValue)
        w.u8(lpi.priority)
        w.u8((lpi.enabled ? PendingLPI.enabledFlag : 0) | (more ? PendingLPI.moreFlag : 0))
        w.zeros(2)
    }

    static func write(_ chunk: SnapshotChunk, _ w: inout ByteWriter) {
        w.u32(chunk.vm.rawValue)
        w.u32(UInt32(chunk.bytes.count))
        w.u64(chunk.offset)
        w.u64(chunk.totalLength)
        w.u32(chunk.isLast ? 1 : 0)
        w.zeros(4)
        w.bytes.append(contentsOf: chunk.bytes)
        w.padding(after: chunk.bytes.count)
    }

    static func write(_ page: DumpPage, _ w: inout ByteWriter) {
        let section = page.entries.section
        w.u32(page.vm.rawValue)
        w.u16(section.rawValue)
        w.u16(UInt16(section.entrySize))
        w.u32(UInt32(page.entries.count))
        w.zeros(4)
        w.u64(page.nextCursor)
        switch page.entries {
        case .devices(let list):
            for entry in list {
                w.u32(entry.deviceID.rawValue)
                w.u8(entry.eventIDBits)
                w.zeros(3)
                w.u64(entry.ittAddress)
            }
        case .itt(let list):
            for entry in list {
                w.u32(entry.deviceID.rawValue)
                w.u32(entry.eventID.rawValue)
                w.u32(entry.intid.rawValue)
                w.u16(entry.collection.rawValue)
                w.zeros(2)
            }
        case .collections(let list):
            for entry in list {
                w.u16(entry.collection.rawValue)
                w.u16(entry.vcpu.rawValue)
                w.zeros(4)
            }
        case .lpis(let list):
            for entry in list {
                w.u32(entry.intid.rawValue)
                w.u8(entry.priority)
                w.u8((entry.enabled ? 1 : 0) | (entry.pending ? 2 : 0))
                w.u16(entry.vcpu.rawValue)
            }
        }
    }

    static func write(_ report: StatsReport, _ w: inout ByteWriter) {
        if let schema = report.schema {
            precondition(schema.count == report.values.count, "STATS schema and values differ in count")
        }
        w.u64(report.schemaID)
        w.u32(UInt32(report.values.count))
        w.u32(report.schema == nil ? 0 : 1)
        for descriptor in report.schema ?? [] {
            let name = Array(descriptor.name.utf8)
            let help = Array(descriptor.help.utf8)
            precondition(!name.isEmpty && name.count <= StatDescriptor.maxNameLength, "bad stat name")
            precondition(help.count <= StatDescriptor.maxHelpLength, "stat help too long")
            precondition(descriptor.bucketBounds.count <= StatDescriptor.maxBuckets, "too many buckets")
            w.u8(descriptor.kind.rawValue)
            w.u8(descriptor.unit.rawValue)
            w.u16(UInt16(descriptor.bucketBounds.count))
            w.u16(UInt16(name.count))
            w.u16(UInt16(help.count))
            w.bytes.append(contentsOf: name)
            w.bytes.append(contentsOf: help)
            w.padding(after: name.count + help.count)
            for bound in descriptor.bucketBounds { w.u64(bound) }
        }
        for value in report.values {
            w.u8(value.kind.rawValue)
            w.zeros(3)
            switch value {
            case .counter(let raw):
                w.u32(1)
                w.u64(raw)
            case .gauge(let raw):
                w.u32(1)
                w.u64(UInt64(bitPattern: raw))
            case .histogram(let count, let sum, let buckets):
                precondition(buckets.count >= 2, "a histogram has at least one bounded bucket and the overflow")
                w.u32(UInt32(buckets.count + 2))
                w.u64(count)
                w.u64(sum)
                for bucket in buckets { w.u64(bucket) }
            }
        }
    }
}

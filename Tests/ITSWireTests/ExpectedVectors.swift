@testable import ITSWire

/// What each golden vector holds, written out by hand from PROTOCOL.md (not produced by the encoder).
enum ExpectedVectors {
    static let token = VMToken(high: 0x99AA_BBCC_DDEE_FF00, low: 0x1122_3344_5566_7788)
    static let config = VMConfig(vcpuCount: 4, deviceIDBits: 16, eventIDBits: 16, intidBits: 16)
    static let key = IRQFDKey(vm: VMID(1), deviceID: Wire.DeviceID(0x100), eventID: Wire.EventID(2))
    static let image: [UInt8] = Array("ITSSNAP".utf8) + [1, 0, 0, 0, 0x2A]

    static func request(_ id: UInt32, _ message: Message, noReply: Bool = false) -> Frame {
        Frame(message, id: MessageID(id), noReply: noReply)
    }

    static func reply(_ id: UInt32, _ message: Message) -> Frame {
        Frame(message, id: MessageID(id))
    }

    static let statsValues: [StatValue] = [
        .counter(1234), .gauge(2), .histogram(count: 10, sum: 42000, buckets: [3, 5, 2, 0]),
    ]
    static let statsSchema: [StatDescriptor] = [
        StatDescriptor(name: "lpis_injected_total", kind: .counter, unit: .none, help: "LPIs made pending"),
        StatDescriptor(name: "vcpus_pending", kind: .gauge, unit: .none, help: "vCPUs with a deliverable LPI"),
        StatDescriptor(name: "inject_latency_ns", kind: .histogram, unit: .nanoseconds, help: "Decode to pending",
                       bucketBounds: [1000, 10000, 100000]),
    ]

    static let all: [String: Frame] = [
        "01-hello.request.hex": request(1, .hello(Hello(minor: 0, capabilities: [.errorReports, .events, .snapshot],
            limits: Limits(maxFrameLength: 0, maxBatchEntries: 1024, maxInFlight: 0, maxFDsPerMessage: 0)))),
        "01-hello.reply.hex": reply(1, .helloReply(Hello(minor: 0, capabilities: [.errorReports, .events, .snapshot],
            limits: Limits(maxFrameLength: 65536, maxBatchEntries: 1024, maxInFlight: 64, maxFDsPerMessage: 1)))),
        "02-ping.request.hex": request(2, .ping(nonce: 0x0123_4567_89AB_CDEF)),
        "02-ping.reply.hex": reply(2, .pingReply(nonce: 0x0123_4567_89AB_CDEF)),
        "03-create_vm.request.hex": request(3, .createVM(config)),
        "03-create_vm.reply.hex": reply(3, .createVMReply(VMID(1), token: token)),
        "04-attach_vm.request.hex": request(4, .attachVM(VMID(1), token: token)),
        "04-attach_vm.reply.hex": reply(4, .attachVMReply(VMID(1), config)),
        "05-destroy_vm.request.hex": request(5, .destroyVM(VMID(1))),
        "05-destroy_vm.reply.hex": reply(5, .done(.destroyVM)),
        "06-list_vms.request.hex": request(6, .listVMs),
        "06-list_vms.reply.hex": reply(6, .listVMsReply([
            VMInfo(vm: VMID(1), config: config, state: .attached, connections: 1),
            VMInfo(vm: VMID(2), config: VMConfig(vcpuCount: 2, deviceIDBits: 20, eventIDBits: 12, intidBits: 24),
                   state: .orphaned, connections: 0),
        ])),
        "07-add_mem_region.request.hex": request(7, .addMemRegion(MemRegion(vm: VMID(1), guestAddress: 0x4000_0000,
                                                                            size: 0x1000_0000, fileOffset: 0))),
        "07-add_mem_region.reply.hex": reply(7, .done(.addMemRegion)),
        "08-remove_mem_region.request.hex": request(8, .removeMemRegion(VMID(1), guestAddress: 0x4000_0000,
                                                                        size: 0x1000_0000)),
        "08-remove_mem_region.reply.hex": reply(8, .done(.removeMemRegion)),
        "09-mmio_read.request.hex": request(9, .mmioRead(MMIOAccess(vm: VMID(1), frame: .its, width: .doubleword,
                                                                    offset: 0x8))),
        "09-mmio_read.reply.hex": reply(9, .mmioReadReply(value: 0x1F701)),
        "10-mmio_write.request.hex": request(10, .mmioWrite(MMIOAccess(vm: VMID(1), frame: .its, width: .word,
                                                                       offset: 0x10040),
                                                            value: 5, deviceID: Wire.DeviceID(0x100))),
        "10-mmio_write.reply.hex": reply(10, .done(.mmioWrite)),
        "11-inject.request.hex": request(11, .inject(VMID(1), Wire.DeviceID(0x100), Wire.EventID(5))),
        "11-inject.reply.hex": reply(11, .done(.inject)),
        "12-inject_batch.request.hex": request(12, .injectBatch(InjectBatch(vm: VMID(1), entries: [
            InjectEntry(deviceID: Wire.DeviceID(0x100), eventID: Wire.EventID(0)),
            InjectEntry(deviceID: Wire.DeviceID(0x100), eventID: Wire.EventID(1)),
            InjectEntry(deviceID: Wire.DeviceID(0x208), eventID: Wire.EventID(7)),
        ]))),
        "12-inject_batch.reply.hex": reply(12, .injectBatchReply(injected: 2, blocked: 1)),
        "13-bind_irqfd.request.hex": request(13, .bindIRQFD(key, startMasked: false)),
        "13-bind_irqfd.reply.hex": reply(13, .done(.bindIRQFD)),
        "14-unbind_irqfd.request.hex": request(14, .unbindIRQFD(key)),
        "14-unbind_irqfd.reply.hex": reply(14, .done(.unbindIRQFD)),
        "15-mask.request.hex": request(15, .mask(key)),
        "15-mask.reply.hex": reply(15, .done(.mask)),
        "16-unmask.request.hex": request(16, .unmask(key)),
        "16-unmask.reply.hex": reply(16, .done(.unmask)),
        "17-set_vcpu_notify.request.hex": request(17, .setVCPUNotify(VMID(1), Wire.VCPU(2))),
        "17-set_vcpu_notify.reply.hex": reply(17, .done(.setVCPUNotify)),
        "18-clear_vcpu_notify.request.hex": request(18, .clearVCPUNotify(VMID(1), Wire.VCPU(2))),
        "18-clear_vcpu_notify.reply.hex": reply(18, .done(.clearVCPUNotify)),
        "19-subscribe.request.hex": request(19, .subscribe(VMID(1), [.vcpuNotify, .vmGone])),
        "19-subscribe.reply.hex": reply(19, .done(.subscribe)),
        "20-hppi.request.hex": request(20, .hppi(VMID(1), Wire.VCPU(0))),
        "20-hppi.reply.hex": reply(20, .hppiReply(PendingLPI(intid: Wire.INTID(8192), priority: 0xA0, enabled: true))),
        "21-ack.request.hex": request(21, .ack(VMID(1), Wire.VCPU(0), priorityMask: 0xF0)),
        "21-ack.reply.hex": reply(21, .ackReply(PendingLPI(intid: Wire.INTID(8192), priority: 0xA0, enabled: true),
                                                       more: false)),
        "22-pending.request.hex": request(22, .pending(VMID(1), Wire.VCPU(0), cursor: 8192, maxEntries: 16)),
        "22-pending.reply.hex": reply(22, .pendingReply([
            PendingLPI(intid: Wire.INTID(8193), priority: 0xA0, enabled: true),
            PendingLPI(intid: Wire.INTID(8200), priority: 0x80, enabled: false),
        ], nextCursor: 0)),
        "23-stats.request.hex": request(23, .stats(VMID(1), includeSchema: true)),
        "23-stats.reply.hex": reply(23, .statsReply(StatsReport(schemaID: 0x5EED, schema: statsSchema,
                                                                values: statsValues))),
        "24-stats_values.request.hex": request(24, .stats(.all, includeSchema: false)),
        "24-stats_values.reply.hex": reply(24, .statsReply(StatsReport(schemaID: 0x5EED, schema: nil,
                                                                       values: statsValues))),
        "25-dump_devices.request.hex": request(25, .dump(VMID(1), .devices, cursor: 0, maxEntries: 64)),
        "25-dump_devices.reply.hex": reply(25, .dumpReply(DumpPage(vm: VMID(1), entries: .devices([
            DumpDevice(deviceID: Wire.DeviceID(0x100), eventIDBits: 5, ittAddress: 0x4800_0000),
        ]), nextCursor: DumpPage.end))),
        "26-dump_itt.request.hex": request(26, .dump(VMID(1), .itt, cursor: 0, maxEntries: 2)),
        "26-dump_itt.reply.hex": reply(26, .dumpReply(DumpPage(vm: VMID(1), entries: .itt([
            DumpITTEntry(deviceID: Wire.DeviceID(0x100), eventID: Wire.EventID(0), intid: Wire.INTID(8192),
                         collection: Wire.CollectionID(0)),
            DumpITTEntry(deviceID: Wire.DeviceID(0x100), eventID: Wire.EventID(1), intid: Wire.INTID(8193),
                         collection: Wire.CollectionID(1)),
        ]), nextCursor: 2))),
        "27-dump_collections.request.hex": request(27, .dump(VMID(1), .collections, cursor: 0, maxEntries: 64)),
        "27-dump_collections.reply.hex": reply(27, .dumpReply(DumpPage(vm: VMID(1), entries: .collections([
            DumpCollection(collection: Wire.CollectionID(0), vcpu: Wire.VCPU(0)),
            DumpCollection(collection: Wire.CollectionID(1), vcpu: Wire.VCPU(3)),
        ]), nextCursor: DumpPage.end))),
        "28-dump_lpis.request.hex": request(28, .dump(VMID(1), .lpis, cursor: 8192, maxEntries: 64)),
        "28-dump_lpis.reply.hex": reply(28, .dumpReply(DumpPage(vm: VMID(1), entries: .lpis([
            DumpLPI(intid: Wire.INTID(8192), priority: 0xA0, enabled: true, pending: true, vcpu: Wire.VCPU(0)),
            DumpLPI(intid: Wire.INTID(8193), priority: 0x80, enabled: true, pending: false, vcpu: Wire.VCPU(1)),
        ]), nextCursor: DumpPage.end))),
        "29-snapshot_vm.request.hex": request(29, .snapshotVM(VMID(1), offset: 0, maxBytes: 4096)),
        "29-snapshot_vm.reply.hex": reply(29, .snapshotReply(SnapshotChunk(vm: VMID(1), offset: 0, totalLength: 12,
                                                                            isLast: true, bytes: image[...]))),
        "30-restore_vm.request.hex": request(30, .restoreVM(SnapshotChunk(vm: VMID(2), offset: 0, totalLength: 12,
                                                                           isLast: true, bytes: image[...]))),
        "30-restore_vm.reply.hex": reply(30, .done(.restoreVM)),
        "36-authenticate.request.hex": request(36, .authenticate(secret: Array("s3cret-token".utf8))),
        "36-authenticate.reply.hex": reply(36, .done(.authenticate)),
        "37-wait_ack.request.hex": request(37, .waitAck(VMID(1), Wire.VCPU(0), priorityMask: 0xF0,
                                                        timeoutMicroseconds: 10000)),
        "37-wait_ack.reply.hex": reply(37, .waitAckReply(PendingLPI(intid: Wire.INTID(8192), priority: 0xA0,
                                                                    enabled: true), more: false)),
        "38-wake.request.hex": request(38, .wake(VMID(1), Wire.VCPU(0))),
        "38-wake.reply.hex": reply(38, .done(.wake)),
        "39-set_ack_slot.request.hex": request(39, .setAckSlot(VMID(1), Wire.VCPU(2), offset: 128)),
        "39-set_ack_slot.reply.hex": reply(39, .done(.setAckSlot)),
        "40-clear_ack_slot.request.hex": request(40, .clearAckSlot(VMID(1), Wire.VCPU(2))),
        "40-clear_ack_slot.reply.hex": reply(40, .done(.clearAckSlot)),
        "41-ack_more.request.hex": request(41, .ack(VMID(1), Wire.VCPU(0), priorityMask: 0xFF)),
        "41-ack_more.reply.hex": reply(41, .ackReply(PendingLPI(intid: Wire.INTID(8193), priority: 0x80, enabled: true),
                                                     more: true)),
        "31-event_vcpu_notify.event.hex": Frame(.vcpuNotify(VMID(1), Wire.VCPU(3)), id: MessageID(1)),
        "32-event_vm_gone.event.hex": Frame(.vmGone(VMID(2), reason: .graceExpired), id: MessageID(2)),
        "33-error_no_such_vm.request.hex": request(33, .destroyVM(VMID(7))),
        "33-error_no_such_vm.reply.hex": reply(33, .error(.destroyVM, ErrorReport(.noSuchVM, detail: 7, text: "no VM 7"))),
        "34-error_translation_blocked.request.hex": request(34, .inject(VMID(1), Wire.DeviceID(0x300),
                                                                      Wire.EventID(9)), noReply: true),
        "34-error_translation_blocked.reply.hex": reply(34, .error(.inject, ErrorReport(.translationBlocked))),
        "35-error_version_mismatch.request.hex": request(1, .hello(Hello(major: 2, minor: 0, capabilities: [],
            limits: Limits(maxFrameLength: 0, maxBatchEntries: 0, maxInFlight: 0, maxFDsPerMessage: 0)))),
        "35-error_version_mismatch.reply.hex": reply(1, .error(.hello, ErrorReport(.versionMismatch,
                                                                                  detail: 0x0001_0002))),
    ]
}

import CLibUV
import Histogram
import ITSModel
import ITSWire

/// The server's own counters (STATS for the whole server).
/// - Context: the loop thread.
struct ServerCounters {
    var connectionsAccepted: UInt64 = 0
    var requests: UInt64 = 0
    var errorReplies: UInt64 = 0
    /// Times a connection stopped being read at its limit of unanswered NO_REPLY lane work.
    var laneWorkHolds: UInt64 = 0
    /// The most NO_REPLY lane work any one connection had unanswered.
    var laneWorkPeak = 0
    /// Lane batches the loop thread ran itself because their lane was idle.
    var batchesRunOnLoop: UInt64 = 0
    /// WAIT_ACK and WAKE requests.
    var waitAcknowledges: UInt64 = 0
    var wakes: UInt64 = 0
    /// uv_hrtime when the server started.
    let startedAt = uv_hrtime()
}

/// STATS (Protocol/PROTOCOL.md, 6.17). Statistics of one vCPU or one device carry its number in
/// their name (`vcpu_3_...`, `device_17_...`); a client may present it as a label.
extension Server {
    func stats(_ id: VMID, includeSchema: Bool, session: Session, frame: Frame, fail: (WireStatus, UInt32, String) -> Void) {
        let key: VMKey? = id.rawValue == VMID.all.rawValue ? nil : VMKey(id.rawValue)
        if let key, registry.vms[key] == nil { return fail(.noSuchVM, id.rawValue, "") }
        let slot: UInt64? = frame.noReply ? nil : session.reserveSlot()
        let messageID = frame.messageID
        let connection = session.connection.id
        var outstanding = lanes.lanes.count
        var gathered: [Int: LaneStatistics] = [:]
        for (index, lane) in lanes.lanes.enumerated() {
            let ticket = ticket { [weak self] reply in
                outstanding -= 1
                if case .statistics(let statistics) = reply { gathered[index] = statistics }
                guard outstanding == 0, let self, let session = self.sessions[connection], let slot else { return }
                let report = self.statsReport(key, lanes: gathered, includeSchema: includeSchema)
                session.fill(slot, with: Frame(.statsReply(report), id: messageID))
            }
            lane.submit(.statistics(key, ticket: ticket))
        }
    }

    /// The report of one VM (`key`), or of the whole server, from what the lanes sent.
    func statsReport(_ key: VMKey?, lanes laneStatistics: [Int: LaneStatistics], includeSchema: Bool) -> StatsReport {
        var builder = StatsReportBuilder()
        let vms = key.map { registry.vms[$0].map { [$0] } ?? [] } ?? registry.vms.values.sorted { $0.key < $1.key }
        if key == nil { addServerStats(&builder, laneStatistics) }
        var vcpus = laneStatistics.values.flatMap(\.vcpus)
        vcpus.sort { ($0.vm, $0.vcpu) < ($1.vm, $1.vcpu) }
        var latency = StatsReportBuilder.makeLatencyHistogram()
        for lane in laneStatistics.values { latency.add(lane.latency) }
        Self.addVMStats(&builder, vms, vcpus, latency)
        if let vm = vms.first, key != nil {
            builder.gauge("vm_uptime_seconds", Int64(clamping: (uv_hrtime() &- vm.startedAt) / 1_000_000_000),
                          "Seconds since the VM was created (CREATE_VM) or last restored (RESTORE_VM)")
            Self.addVCPUStats(&builder, vcpus)
            let devices = vm.msis.devices { vm.its.devices.load(UInt64($0)) != nil }
            for (device, counters) in devices {
                builder.counter("device_\(device)_msis_injected_total", counters.injected, "MSIs of DeviceID \(device) translated into an LPI")
                builder.counter("device_\(device)_msis_blocked_total", counters.blocked, "MSIs of DeviceID \(device) that raised no LPI")
            }
        }
        return builder.report(includeSchema: includeSchema)
    }

    private func addServerStats(_ builder: inout StatsReportBuilder, _ laneStatistics: [Int: LaneStatistics]) {
        builder.gauge("uptime_ns", Int64(clamping: uv_hrtime() &- counters.startedAt), unit: .nanoseconds, "Time since itsd started")
        builder.counter("connections_accepted_total", counters.connectionsAccepted, "Client connections accepted")
        builder.gauge("connections", Int64(sessions.count), "Client connections open")
        builder.counter("requests_total", counters.requests, "Requests received")
        builder.counter("error_replies_total", counters.errorReplies, "Requests answered with an error")
        builder.gauge("connections_reading_paused", Int64(sessions.values.reduce(0) { $0 + ($1.connection.isReadingPaused ? 1 : 0) }),
                      "Connections not read until their client reads replies or their requests are answered")
        builder.gauge("send_buffered_bytes", Int64(sessions.values.reduce(0) { $0 + $1.connection.bufferedOutput }), unit: .bytes,
                      "Bytes the connections' send buffers hold")
        builder.gauge("no_reply_lane_work", Int64(sessions.values.reduce(0) { $0 + $1.laneWorkUnanswered }),
                      "Lane work items queued for NO_REPLY requests that the lanes have not reached")
        builder.gauge("no_reply_lane_work_peak", Int64(counters.laneWorkPeak),
                      "The most lane work one connection's NO_REPLY requests had queued and unanswered")
        builder.counter("no_reply_holds_total", counters.laneWorkHolds,
                        "Times a connection was not read until the lanes caught up with its NO_REPLY requests")
        builder.gauge("vms", Int64(registry.vms.count), "VMs, attached or in their grace period")
        builder.counter("wait_acks_total", counters.waitAcknowledges, "WAIT_ACK requests")
        builder.gauge("wait_acks_waiting", Int64(waits.count), "WAIT_ACKs waiting for an LPI, a WAKE or their timeout")
        builder.counter("wakes_total", counters.wakes, "WAKE requests")
        builder.counter("lane_batches_on_loop_total", counters.batchesRunOnLoop,
                        "Small batches of lane work the main loop thread ran itself because their lane was idle")
        builder.counter("loop_idle_ns_total", loop.idleTimeNanoseconds, unit: .nanoseconds,
                        "Nanoseconds the main loop thread (connections, ITS commands) spent blocked waiting for events since itsd started; "
                            + "its busy fraction over an interval is 1 - (increase of this counter) / (interval in ns)")
        for index in lanes.lanes.indices {
            builder.gauge("lane_\(index)_queue_depth", Int64(lanes.lanes[index].queue.depth), "Work items queued to vCPU lane \(index)")
            builder.counter("lane_\(index)_idle_ns_total", laneStatistics[index]?.idleNanoseconds ?? 0, unit: .nanoseconds,
                            "Time vCPU lane \(index) waited for work")
        }
    }

    private static func addVMStats(_ builder: inout StatsReportBuilder, _ vms: [ServerVM], _ vcpus: [VCPUStatistics],
                                   _ latency: Histogram<UInt64>)
    {
        func sum(_ value: (ServerVM) -> UInt64) -> UInt64 { vms.reduce(0) { $0 &+ value($1) } }
        func its(_ value: (ITS.Counters) -> UInt64) -> UInt64 { sum { value($0.its.counters) } }
        func lpis(_ value: (Redistributor.Counters) -> UInt64) -> UInt64 { vcpus.reduce(0) { $0 &+ value($1.counters) } }
        for source in MSISource.allCases {
            builder.counter("msis_\(source.statName)_total", sum { $0.msis.bySource[source.rawValue] },
                            "MSIs received through \(source.statName.uppercased())")
        }
        builder.counter("msis_injected_total", sum { $0.msis.injected }, "MSIs translated into an LPI made pending or merged")
        builder.counter("msis_blocked_total", sum { $0.msis.blocked }, "MSIs that raised no LPI (unmapped, or the ITS disabled)")
        builder.counter("its_commands_total", its { $0.commandsProcessed }, "ITS commands processed")
        for (number, name) in Self.commandNames {
            builder.counter("its_commands_\(name)_total", its { $0.commandsByNumber[number] }, "\(name.uppercased()) commands executed")
        }
        builder.counter("its_command_errors_total", its { $0.totalCommandErrors }, "ITS commands skipped with an E_ITS_* error")
        builder.counter("its_unknown_commands_total", its { $0.unknownCommands }, "ITS commands with an unknown number, skipped")
        builder.counter("its_virtual_commands_total", its { $0.virtualCommands }, "GICv4 ITS commands, skipped")
        builder.counter("its_queue_stalls_total", its { $0.stalls }, "Command queue stalls on a guest-memory fault")
        builder.counter("its_cwriter_ignored_total", its { $0.cwriterIgnored }, "GITS_CWRITER values beyond the queue, ignored")
        builder.counter("translation_cache_hits_total", its { $0.translationHits }, "Translations served from the cache")
        builder.counter("translation_cache_misses_total", its { $0.translationMisses }, "Translations that walked the mappings")
        builder.counter("translation_cache_invalidations_total", its { $0.cacheInvalidations }, "Translation cache invalidations")
        builder.counter("its_translations_blocked_total", its { $0.translationsBlocked }, "MSIs and INTs that found no mapping")
        builder.counter("its_mmio_ignored_total", its { $0.mmioIgnored }, "ITS register accesses ignored (RAZ/WI)")
        builder.counter("its_mapping_limit_reached_total", its { $0.mappingLimitReached }, "MAPD, MAPTI and MAPI skipped at the mapping limit")
        builder.gauge("devices_mapped", Int64(sum { UInt64($0.its.devices.count) }), "Devices mapped by MAPD")
        builder.gauge("events_mapped", Int64(sum { UInt64($0.its.events.count) }), "Events mapped by MAPTI or MAPI")
        builder.gauge("collections_mapped", Int64(sum { UInt64($0.its.collections.count) }), "Collections mapped by MAPC")
        builder.gauge("translation_cache_entries", Int64(sum { UInt64($0.its.translationCache.count) }), "Translations cached")
        builder.counter("lpis_delivered_total", lpis { $0.lpisMadePending }, "LPIs made pending at a redistributor")
        builder.counter("lpis_coalesced_total", lpis { $0.lpisCoalesced }, "Signals merged into an LPI already pending")
        builder.counter("lpis_acknowledged_total", lpis { $0.lpisAcknowledged }, "LPIs acknowledged by a vCPU")
        builder.counter("lpis_dropped_total", lpis { $0.lpisDroppedDisabled &+ $0.lpisDroppedOnDisable },
                        "LPIs dropped because GICR_CTLR.EnableLPIs was 0")
        builder.counter("lpis_not_mapped_total", lpis { $0.lpisNotMapped }, "Translations that raced an unmap")
        builder.counter("lpis_stale_moves_total", lpis { $0.staleMoves }, "Moved pending states whose mapping had changed, dropped")
        builder.counter("lpis_out_of_range_total", lpis { $0.intidsOutOfRange }, "INTIDs beyond GICR_PROPBASER.IDbits, ignored")
        builder.counter("lpi_limit_reached_total", lpis { $0.lpiLimitReached }, "LPIs refused at a redistributor's LPI limit")
        builder.counter("config_read_faults_total", lpis { $0.configReadFaults }, "LPI configuration bytes that could not be read")
        builder.counter("pending_table_faults_total", lpis { $0.pendingTableFaults }, "Pending table words that could not be accessed")
        builder.counter("redistributor_mmio_ignored_total", lpis { $0.mmioIgnored }, "Redistributor register accesses ignored")
        builder.gauge("lpis_pending", Int64(vcpus.reduce(0) { $0 + $1.pending }), "LPIs pending")
        builder.gauge("lpis_known", Int64(vcpus.reduce(0) { $0 + $1.lpis }), "LPIs mapped or pending at a redistributor")
        builder.gauge("ack_slots", Int64(vcpus.reduce(0) { $0 + ($1.hasAckSlot ? 1 : 0) }), "vCPUs with an acknowledge slot (SET_ACK_SLOT)")
        builder.counter("ack_slot_deliveries_total", vcpus.reduce(0) { $0 &+ $1.ackSlotDeliveries },
                        "LPIs acknowledged into an armed acknowledge slot")
        builder.counter("ack_slot_invalid_total", vcpus.reduce(0) { $0 &+ $1.ackSlotInvalidWords },
                        "Times an acknowledge slot held a word no side may write, left alone")
        builder.latency("inject_to_ack_latency_ns", latency, "From an MSI making an LPI pending to the vCPU acknowledging it")
    }

    /// The physical ITS commands by number (IHI 0069, 6.3).
    static let commandNames: [(Int, String)] = [
        (0x01, "movi"), (0x03, "int"), (0x04, "clear"), (0x05, "sync"), (0x08, "mapd"), (0x09, "mapc"),
        (0x0A, "mapti"), (0x0B, "mapi"), (0x0C, "inv"), (0x0D, "invall"), (0x0E, "movall"), (0x0F, "discard"),
    ]

    private static func addVCPUStats(_ builder: inout StatsReportBuilder, _ vcpus: [VCPUStatistics]) {
        for vcpu in vcpus {
            let n = vcpu.vcpu.rawValue
            builder.counter("vcpu_\(n)_lpis_delivered_total", vcpu.counters.lpisMadePending, "LPIs made pending at vCPU \(n)")
            builder.counter("vcpu_\(n)_lpis_coalesced_total", vcpu.counters.lpisCoalesced, "Signals merged at vCPU \(n)")
            builder.counter("vcpu_\(n)_lpis_acknowledged_total", vcpu.counters.lpisAcknowledged, "LPIs acknowledged by vCPU \(n)")
            builder.counter("vcpu_\(n)_lpis_dropped_total", vcpu.counters.lpisDroppedDisabled &+ vcpu.counters.lpisDroppedOnDisable,
                            "LPIs dropped at vCPU \(n) because EnableLPIs was 0")
            builder.gauge("vcpu_\(n)_lpis_pending", Int64(vcpu.pending), "LPIs pending at vCPU \(n)")
            builder.gauge("vcpu_\(n)_lpis_known", Int64(vcpu.lpis), "LPIs mapped or pending at vCPU \(n)")
        }
    }
}

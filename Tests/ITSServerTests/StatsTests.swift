import CITSSupport
import Glibc
import ITSModel
import ITSWire
import Testing
@testable import ITSServer

/// STATS over a real socket: the counters of a VM, its vCPUs and devices follow the traffic; the
/// whole server reports its own; the schema id names the set of statistics.
@Suite(.serialized) struct StatsTests {
    @Test func countersFollowTheTraffic() throws {
        let log = StatsLog()
        try runServer("stats") { path in
            guard let client = TestClient(path: path) else { return }
            let vm = ClientVM(client: client)
            guard let id = vm.helloAndProgrammedVM() else { return }
            log.before = vm.call(.stats(id, includeSchema: true))
            for event: UInt32 in [0, 1, 2, 0] {
                _ = vm.call(.inject(id, Wire.DeviceID(rawValue: 7), Wire.EventID(rawValue: event)))
            }
            _ = vm.call(.inject(id, Wire.DeviceID(rawValue: 9), Wire.EventID(rawValue: 0)))
            _ = vm.call(.injectBatch(InjectBatch(vm: id, entries: [InjectEntry(deviceID: Wire.DeviceID(rawValue: 7), eventID: Wire.EventID(rawValue: 3)),
                                                                    InjectEntry(deviceID: Wire.DeviceID(rawValue: 7), eventID: Wire.EventID(rawValue: 99))])))
            _ = vm.mmioWrite(.its, ITS.Offset.translater, 1, width: .word, device: 7)
            log.acked = vm.drain(1)
            log.after = vm.call(.stats(id, includeSchema: true))
            log.again = vm.call(.stats(id, includeSchema: false))
            log.server = vm.call(.stats(.all, includeSchema: true))
            log.unknown = vm.call(.stats(VMID(rawValue: 4242), includeSchema: false))
        }

        #expect(log.acked == [8192, 8193, 8194, 8195])
        let before = try #require(log.before.flatMap(StatsLog.values))
        let after = try #require(log.after.flatMap(StatsLog.values))
        #expect(before["its_commands_total"] == .counter(6), "MAPC, MAPD and four MAPTI")
        #expect(before["its_commands_mapc_total"] == .counter(1) && before["its_commands_mapd_total"] == .counter(1))
        #expect(before["its_commands_mapti_total"] == .counter(4) && before["its_commands_movi_total"] == .counter(0))
        #expect(before["msis_injected_total"] == .counter(0))
        #expect(before["device_7_msis_injected_total"] == nil, "a device appears with its first MSI")
        #expect(after["msis_inject_total"] == .counter(5))
        #expect(after["msis_inject_batch_total"] == .counter(2))
        #expect(after["msis_translater_total"] == .counter(1))
        #expect(after["msis_injected_total"] == .counter(6))
        #expect(after["msis_blocked_total"] == .counter(2))
        #expect(after["device_7_msis_injected_total"] == .counter(6))
        #expect(after["device_7_msis_blocked_total"] == .counter(1), "event 99 of device 7 is not mapped")
        #expect(after["device_9_msis_blocked_total"] == nil, "device 9 is not mapped: counted in the VM's totals only")
        #expect(after["vcpu_1_lpis_delivered_total"] == .counter(4))
        #expect(after["vcpu_1_lpis_coalesced_total"] == .counter(2), "event 0 twice and event 1 by TRANSLATER while pending")
        #expect(after["vcpu_1_lpis_acknowledged_total"] == .counter(4))
        #expect(after["vcpu_0_lpis_delivered_total"] == .counter(0))
        #expect(after["lpis_acknowledged_total"] == .counter(4))
        #expect(after["vcpu_1_lpis_known"] == .gauge(4))
        #expect(after["lpis_pending"] == .gauge(0))
        #expect(after["translation_cache_hits_total"] == .counter(2), "event 0 and event 1 again")
        #expect(after["translation_cache_misses_total"] == .counter(6), "events 0 to 3 once each, and the two that found no mapping")
        #expect(after["events_mapped"] == .gauge(4))
        if case let .histogram(count, _, buckets)? = after["inject_to_ack_latency_ns"] {
            #expect(count == 4, "one latency per acknowledged LPI")
            #expect(buckets.reduce(0, +) == count)
            #expect(buckets.count == StatsReportBuilder.latencyBounds.count + 1)
        } else {
            Issue.record("inject_to_ack_latency_ns missing")
        }
        // The schema id names the set of statistics: a new device changes it, a repeat does not.
        let beforeReport = try #require(StatsLog.report(log.before))
        let afterReport = try #require(StatsLog.report(log.after))
        let againReport = try #require(StatsLog.report(log.again))
        #expect(beforeReport.schemaID != afterReport.schemaID)
        #expect(againReport.schemaID == afterReport.schemaID && againReport.schema == nil)
        #expect(againReport.values.count == afterReport.values.count)
        // The whole server: its own statistics, and the VM statistics summed.
        #expect(after["vm_uptime_seconds"].map { if case .gauge(let seconds) = $0 { (0 ... 60).contains(seconds) } else { false } } == true,
                "\(String(describing: after["vm_uptime_seconds"]))")
        let whole = try #require(log.server.flatMap(StatsLog.values))
        #expect(whole["connections"] == .gauge(1))
        #expect(whole["vms"] == .gauge(1))
        #expect(whole["lane_1_queue_depth"] != nil && whole["lane_1_idle_ns_total"] != nil)
        #expect(whole["msis_injected_total"] == .counter(6))
        #expect(whole["vcpu_1_lpis_delivered_total"] == nil, "per-vCPU statistics only for one VM")
        #expect(whole["vm_uptime_seconds"] == nil, "an uptime is not summed over VMs")
        #expect(whole["requests_total"].map { if case .counter(let n) = $0 { n >= 15 } else { false } } == true)
        #expect(log.unknown?.status == .noSuchVM)
        // Every statistic is documented in docs/OPERATIONS.md, numbers written as N or D.
        let document = StatsLog.operationsDocument()
        for name in Set(after.keys).union(whole.keys) {
            let generic = StatsLog.generic(name)
            #expect(document.contains("`\(generic)`") || document.contains("`\(generic)`,"), "\(generic) is not in docs/OPERATIONS.md")
        }
    }
}

final class StatsLog: @unchecked Sendable {
    var before, after, again, server, unknown: Frame?
    var acked: [UInt32] = []

    /// `vcpu_3_x` -> `vcpu_N_x`, `lane_0_x` -> `lane_N_x`, `device_17_x` -> `device_D_x`.
    static func generic(_ name: String) -> String {
        var parts = name.split(separator: "_").map(String.init)
        if parts.count > 2, UInt32(parts[1]) != nil {
            parts[1] = parts[0] == "device" ? "D" : "N"
        }
        return parts.joined(separator: "_")
    }

    static func operationsDocument() -> String {
        readTextFile(#filePath.split(separator: "/", omittingEmptySubsequences: false).dropLast(3).joined(separator: "/") + "/docs/OPERATIONS.md")
    }

    static func report(_ frame: Frame?) -> StatsReport? {
        guard case .statsReply(let report)? = frame?.message else { return nil }
        return report
    }

    /// Values by name, from a reply that carries its schema.
    static func values(_ frame: Frame) -> [String: StatValue]? {
        guard let report = report(frame), let schema = report.schema else { return nil }
        return Dictionary(uniqueKeysWithValues: zip(schema.map(\.name), report.values))
    }
}

extension StatsTests {
    /// `vm_uptime_seconds` counts from CREATE_VM: of two VMs created 1.2 s apart, the older
    /// reports at least 1 and more than the newer, each in its own report.
    @Test func vmUptimeCountsFromCreation() throws {
        let (itsd, path) = try #require(startItsd("vm-uptime"), "the itsd executable next to the test bundle")
        defer { itsd.stop() }
        let old = try #require(ClientVM.hello(path))
        #expect(old.createVM())
        usleep(1_200_000)
        let new = try #require(ClientVM.hello(path))
        #expect(new.createVM())
        let newer: Int64 = if case .gauge(let seconds)? = new.statistics(new.vm)?["vm_uptime_seconds"] { seconds } else { -1 }
        let older: Int64 = if case .gauge(let seconds)? = old.statistics(old.vm)?["vm_uptime_seconds"] { seconds } else { -1 }
        #expect(older >= 1 && newer >= 0 && newer < older, "created 1.2 s apart: \(older) s and \(newer) s")
    }
}

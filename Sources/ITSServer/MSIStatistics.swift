import ITSModel

/// Where an MSI came from.
enum MSISource: Int, CaseIterable {
    case inject, injectBatch, irqfd, translater

    var statName: String {
        switch self {
        case .inject: "inject"
        case .injectBatch: "inject_batch"
        case .irqfd: "irqfd"
        case .translater: "translater"
        }
    }
}

/// A VM's MSI counters, kept by the loop thread as MSIs are translated: by source, by outcome, and
/// by DeviceID. A run of MSIs from one device (the common case: a queue's completions, a batch)
/// adds to a one-entry cache that is folded into the table when another device comes, so the hot
/// path touches a dictionary only when the device changes.
/// - Context: the loop thread.
struct MSIStatistics {
    struct DeviceCounters: Hashable {
        var injected: UInt64 = 0
        var blocked: UInt64 = 0
    }

    private(set) var bySource = [UInt64](repeating: 0, count: MSISource.allCases.count)
    private(set) var injected: UInt64 = 0
    private(set) var blocked: UInt64 = 0
    private var devices: [UInt32: DeviceCounters] = [:]
    private var current: UInt32?
    private var currentCounters = DeviceCounters()
    /// Devices kept at most; MSIs of devices beyond it count only in the VM's totals.
    static let maximumDevices = 65536
    /// MSIs whose device found no room in the table.
    private(set) var devicesNotTracked: UInt64 = 0

    /// Whether any MSI was counted.
    var any: Bool { injected != 0 || blocked != 0 }

    @inline(__always)
    mutating func count(_ device: DeviceID, injected wasInjected: Bool, from source: MSISource) {
        bySource[source.rawValue] &+= 1
        if device.rawValue != current { switchDevice(to: device.rawValue) }
        if wasInjected {
            injected &+= 1
            currentCounters.injected &+= 1
        } else {
            blocked &+= 1
            currentCounters.blocked &+= 1
        }
    }

    /// ``count(_:injected:from:)`` for a run of MSIs from one device: `injected` of them injected
    /// and `blocked` blocked, counted as that many calls would count them.
    @inline(__always)
    mutating func count(_ device: DeviceID, injected runInjected: UInt64, blocked runBlocked: UInt64, from source: MSISource) {
        bySource[source.rawValue] &+= runInjected &+ runBlocked
        if device.rawValue != current { switchDevice(to: device.rawValue) }
        injected &+= runInjected
        currentCounters.injected &+= runInjected
        blocked &+= runBlocked
        currentCounters.blocked &+= runBlocked
    }

    private mutating func switchDevice(to device: UInt32) {
        fold()
        current = device
        currentCounters = devices[device] ?? DeviceCounters()
    }

    private mutating func fold() {
        guard let current else { return }
        if devices[current] != nil || devices.count < Self.maximumDevices {
            devices[current] = currentCounters
        } else {
            devicesNotTracked &+= currentCounters.injected &+ currentCounters.blocked
        }
    }

    /// Counters by DeviceID in ascending order, for the devices `isMapped` keeps; the others are
    /// forgotten (a device unmapped since its last MSI).
    mutating func devices(keeping isMapped: (UInt32) -> Bool) -> [(device: UInt32, counters: DeviceCounters)] {
        fold()
        current = nil
        devices = devices.filter { isMapped($0.key) }
        return devices.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}

extension Result {
    var isSuccess: Bool {
        if case .success = self { true } else { false }
    }
}

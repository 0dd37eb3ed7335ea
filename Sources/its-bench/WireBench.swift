// `its-bench wire`: how fast ITSWire decodes the injection hot path. A buffer of back-to-back frames
// is decoded front to back, as a connection's read buffer would be, and every entry is handed, one at a
// time, to a consumer that stands in for the server's translation step (Protocol/PROTOCOL.md, 6.10 and
// 6.11). Each figure is the median of several timed runs.
import ITSWire

/// One measured configuration.
private struct WireFigure {
    var name: String
    var batchEntries: Int
    var entriesPerSecond: Double
    var framesPerSecond: Double
}

/// A buffer of `frames` INJECT_BATCH requests of `entries` pairs each (or INJECT requests when
/// `entries` is 0), with DeviceIDs and EventIDs that vary so the consumer's table depends on every entry.
private func makeStream(frames: Int, entries: Int) -> [UInt8] {
    var bytes: [UInt8] = []
    var seed: UInt32 = 1
    for index in 0..<frames {
        let id = MessageID(UInt32(truncatingIfNeeded: index))
        if entries == 0 {
            seed = seed &* 1_103_515_245 &+ 12345
            Frame(.inject(VMID(1), Wire.DeviceID(seed >> 16), Wire.EventID(seed & 0xFFFF)), id: id, noReply: true)
                .encode(into: &bytes)
        } else {
            let pairs = (0..<entries).map { _ -> InjectEntry in
                seed = seed &* 1_103_515_245 &+ 12345
                return InjectEntry(deviceID: Wire.DeviceID(seed >> 16), eventID: Wire.EventID(seed & 0xFFFF))
            }
            Frame(.injectBatch(InjectBatch(vm: VMID(1), entries: pairs)), id: id, noReply: true)
                .encode(into: &bytes)
        }
    }
    return bytes
}

/// What the server does with each decoded MSI, reduced to its memory traffic: the entry's DeviceID and
/// EventID pick a slot of a 16 KiB table (like a translation-cache lookup) and the slot is counted.
/// Every field of every entry is read and used, and the read-modify-write at a data-dependent index
/// keeps the compiler from vectorising the loop, so the figure is per entry, as a consumer sees it.
private struct EntryConsumer: ~Copyable {
    static let slots = 4096
    let table: UnsafeMutableBufferPointer<UInt32>

    init() {
        table = .allocate(capacity: Self.slots)
        table.initialize(repeating: 0)
    }

    deinit { table.deallocate() }

    @inline(__always)
    func consume(_ device: Wire.DeviceID, _ event: Wire.EventID) {
        let slot = Int(truncatingIfNeeded: (device.rawValue &* 0x9E37_79B1) ^ event.rawValue) & (Self.slots - 1)
        // SAFETY: `slot` is masked to 0 ..< slots, the table's capacity, and the table lives as long as self.
        table[slot] &+= 1
    }

    /// A digest of the table, so that the counting cannot be dropped as dead.
    var digest: UInt64 {
        var sum: UInt64 = 0
        for (index, count) in table.enumerated() { sum &+= UInt64(count) &* UInt64(index | 1) }
        return sum
    }
}

/// Decodes every frame of `stream` once and hands each entry to `consumer`; returns (entries, frames).
@inline(never)
private func decodeAll(_ stream: [UInt8], decoder: FrameDecoder, consumer: borrowing EntryConsumer) -> (Int, Int) {
    var offset = 0
    var entries = 0
    var frames = 0
    while offset < stream.count {
        guard case .frame(let frame, let consumed) = decoder.decode(stream[offset...], fdCount: 0) else {
            fatalError("the benchmark stream failed to decode at byte \(offset)")
        }
        switch frame.message {
        case .injectBatch(let batch):
            batch.forEach { entry in consumer.consume(entry.deviceID, entry.eventID) }
            entries &+= batch.count
        case .inject(_, let device, let event):
            consumer.consume(device, event)
            entries &+= 1
        default:
            fatalError("unexpected message in the benchmark stream")
        }
        frames &+= 1
        offset &+= consumed
    }
    return (entries, frames)
}

private func seconds(_ duration: Duration) -> Double {
    let parts = duration.components
    return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
}

/// Times `decodeAll` over `stream` for about `budget` seconds per run, `runs` times; medians.
private func measure(name: String, entries: Int, frames: Int, runs: Int, budget: Double,
                     checksum: inout UInt64) -> WireFigure {
    let stream = makeStream(frames: frames, entries: entries)
    var limits = Limits.serverMaximum
    limits.maxBatchEntries = UInt32(max(entries, 1))
    let decoder = FrameDecoder(role: .server, limits: limits)
    let consumer = EntryConsumer()
    let clock = ContinuousClock()
    var entryRates: [Double] = []
    var frameRates: [Double] = []
    for _ in 0..<runs {
        var decodedEntries = 0
        var decodedFrames = 0
        let start = clock.now
        var elapsed = 0.0
        repeat {
            let (e, f) = decodeAll(stream, decoder: decoder, consumer: consumer)
            decodedEntries += e
            decodedFrames += f
            elapsed = seconds(clock.now - start)
        } while elapsed < budget
        entryRates.append(Double(decodedEntries) / elapsed)
        frameRates.append(Double(decodedFrames) / elapsed)
    }
    checksum = checksum &+ consumer.digest
    func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2]
            : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
    return WireFigure(name: name, batchEntries: entries, entriesPerSecond: median(entryRates),
                      framesPerSecond: median(frameRates))
}

private func formatRate(_ value: Double) -> String {
    if value >= 1e9 { return "\(Double(Int(value / 1e7)) / 100) G/s" }
    if value >= 1e6 { return "\(Double(Int(value / 1e4)) / 100) M/s" }
    return "\(Int(value)) /s"
}

private func padded(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

/// Runs the wire benchmark and prints a table, or one JSON object with `--json`.
/// The headline `inject_batch_entries_per_s` is the 1024-entry batch (a quarter of the default limit).
func runWireBench(json: Bool) {
    let runs = 5
    var checksum: UInt64 = 0
    let figures = [
        measure(name: "INJECT", entries: 0, frames: 16384, runs: runs, budget: 0.2, checksum: &checksum),
        measure(name: "INJECT_BATCH", entries: 16, frames: 4096, runs: runs, budget: 0.2, checksum: &checksum),
        measure(name: "INJECT_BATCH", entries: 256, frames: 512, runs: runs, budget: 0.2, checksum: &checksum),
        measure(name: "INJECT_BATCH", entries: 1024, frames: 128, runs: runs, budget: 0.2, checksum: &checksum),
        measure(name: "INJECT_BATCH", entries: 4096, frames: 32, runs: runs, budget: 0.2, checksum: &checksum),
    ]
    let headline = figures.first { $0.batchEntries == 1024 }!
    if json {
        var fields = [
            "\"benchmark\":\"wire\"",
            "\"inject_batch_entries_per_s\":\(Int(headline.entriesPerSecond))",
            "\"inject_batch_entries\":1024",
            "\"inject_frames_per_s\":\(Int(figures[0].framesPerSecond))",
            "\"runs\":\(runs)",
            "\"statistic\":\"median\"",
        ]
        let sizes = figures.dropFirst().map { "\"\($0.batchEntries)\":\(Int($0.entriesPerSecond))" }
        fields.append("\"inject_batch_entries_per_s_by_batch\":{\(sizes.joined(separator: ","))}")
        fields.append("\"checksum\":\(checksum)")
        print("{" + fields.joined(separator: ",") + "}")
    } else {
        print("ITSWire decode throughput, every entry consumed one at a time (median of \(runs) runs, one thread)")
        print(padded("message", 14) + padded("entries/frame", 15) + padded("entries", 14) + "frames")
        for figure in figures {
            print(padded(figure.name, 14) + padded(String(max(figure.batchEntries, 1)), 15)
                  + padded(formatRate(figure.entriesPerSecond), 14) + formatRate(figure.framesPerSecond))
        }
        print("inject_batch_entries_per_s (1024 per frame): \(Int(headline.entriesPerSecond))   checksum \(checksum)")
    }
}

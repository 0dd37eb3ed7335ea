// The floors each mode is held against, measured by this program in the same run: what the machine
// does for the same bytes or wakeups with no itsd work at all.
// - rtt: a Unix-socket ping-pong of the same frame size through an epoll loop.
// - pipelined, batch, translater: the same bytes streamed through a Unix socket to an epoll loop
//   that reads and drops them.
// - irqfd: eventfd -> epoll relay thread -> eventfd -> epoll waiter, one outstanding, as itsd's
//   loop relays a bound eventfd to a vCPU's notify eventfd.
import CITSLoad
import Glibc
import Histogram
import Synchronization
import ToolSupport

struct FloorResult {
    var messagesPerSecond: Double
    /// The per-message latency floor (rtt, irqfd), nil for streaming.
    var latency: Histogram<UInt64>?
}

enum Floors {
    /// Ping-pong of `frameLength`-byte messages for `duration` ns.
    static func pingPong(frameLength: Int, duration: UInt64) throws -> FloorResult {
        let (client, server) = try unixSocketPair()
        let echo = startThread {
            let epoll = its_load_epoll_create()
            defer { close(epoll); close(server) }
            _ = its_load_epoll_add(epoll, server, 0)
            var token: UInt64 = 0
            var bytes = [UInt8](repeating: 0, count: 65536)
            while true {
                guard its_load_epoll_wait(epoll, &token, 1, -1) == 1 else { continue }
                let count = read(server, &bytes, bytes.count)
                if count <= 0 { return }
                bytes.withUnsafeBytes { try? writeAll(server, UnsafeRawBufferPointer(rebasing: $0[0 ..< count])) }
            }
        }
        var histogram = makeLatencyHistogram()
        var frame = [UInt8](repeating: 0x5A, count: frameLength)
        var messages = 0
        let start = monotonicNanoseconds()
        var end = start
        try frame.withUnsafeMutableBytes { (raw) throws in
            while end - start < duration {
                let sentAt = monotonicNanoseconds()
                try writeAll(client, UnsafeRawBufferPointer(raw))
                var received = 0
                while received < frameLength {
                    let count = read(client, raw.baseAddress! + received, frameLength - received)
                    guard count > 0 else { throw ToolError.system("floor read") }
                    received += count
                }
                end = monotonicNanoseconds()
                histogram.record(end - sentAt)
                messages += 1
            }
        }
        close(client)
        join(echo)
        return FloorResult(messagesPerSecond: Double(messages) / (Double(end - start) / 1e9), latency: histogram)
    }

    /// The bytes of `buffer` written back to back for `duration` ns to an epoll reader;
    /// `messagesPerByte` turns bytes into MSIs.
    static func stream(_ buffer: [UInt8], messagesPerByte: Double, duration: UInt64) throws -> FloorResult {
        let (writer, reader) = try unixSocketPair()
        let received = Atomic<Int>(0)
        let finished = Atomic<UInt64>(0)
        let sink = startThread {
            let epoll = its_load_epoll_create()
            defer { close(epoll); close(reader) }
            _ = its_load_epoll_add(epoll, reader, 0)
            var token: UInt64 = 0
            var bytes = [UInt8](repeating: 0, count: 65536)
            var total = 0
            while true {
                guard its_load_epoll_wait(epoll, &token, 1, -1) == 1 else { continue }
                let count = read(reader, &bytes, bytes.count)
                if count <= 0 { break }
                total += count
            }
            received.store(total, ordering: .relaxed)
            finished.store(monotonicNanoseconds(), ordering: .releasing)
        }
        let start = monotonicNanoseconds()
        try buffer.withUnsafeBytes { (raw) throws in
            while monotonicNanoseconds() - start < duration { try writeAll(writer, raw) }
        }
        close(writer)
        join(sink)
        let seconds = Double(finished.load(ordering: .acquiring) - start) / 1e9
        return FloorResult(messagesPerSecond: Double(received.load(ordering: .relaxed)) * messagesPerByte / seconds, latency: nil)
    }

    /// eventfd -> relay -> eventfd hops, one outstanding, for `duration` ns. The latency is from the
    /// write of the first eventfd to the wakeup of the waiter on the second.
    static func eventfdRelay(duration: UInt64) throws -> FloorResult {
        let input = try makeEventFD(nonblocking: true)
        let output = try makeEventFD(nonblocking: true)
        let done = try makeEventFD(nonblocking: false)
        defer { close(input); close(output); close(done) }
        let stop = Atomic<Bool>(false)
        let sentAt = Atomic<UInt64>(0)
        let relay = startThread {
            let epoll = its_load_epoll_create()
            defer { close(epoll) }
            _ = its_load_epoll_add(epoll, input, 0)
            var token: UInt64 = 0
            // `stop` is read after the input that follows it is consumed, never after a regular
            // message's output is signalled: by then the main thread may have stopped, and the final
            // input would go unrelayed.
            while true {
                guard its_load_epoll_wait(epoll, &token, 1, 200) == 1 else {
                    if stop.load(ordering: .acquiring) { return }
                    continue
                }
                _ = readEventFD(input)
                let stopping = stop.load(ordering: .acquiring)
                signalEventFD(output)
                if stopping { return }
            }
        }
        final class Latencies: @unchecked Sendable { var histogram = makeLatencyHistogram() }   // owned by `waiter` until joined
        let latencies = Latencies()
        let waiter = startThread {
            let epoll = its_load_epoll_create()
            defer { close(epoll) }
            _ = its_load_epoll_add(epoll, output, 0)
            var token: UInt64 = 0
            while true {
                guard its_load_epoll_wait(epoll, &token, 1, 200) == 1 else {
                    if stop.load(ordering: .acquiring) { return }
                    continue
                }
                let woke = monotonicNanoseconds()
                _ = readEventFD(output)
                if stop.load(ordering: .acquiring) { return }
                latencies.histogram.record(woke - sentAt.load(ordering: .acquiring))
                signalEventFD(done)
            }
        }
        var messages = 0
        let start = monotonicNanoseconds()
        var end = start
        while end - start < duration {
            sentAt.store(monotonicNanoseconds(), ordering: .releasing)
            signalEventFD(input)
            guard waitEventFD(done, timeoutMs: 2000) else { throw ToolError("the eventfd relay floor stalled") }
            messages += 1
            end = monotonicNanoseconds()
        }
        stop.store(true, ordering: .releasing)
        signalEventFD(input)
        join(relay)
        join(waiter)
        return FloorResult(messagesPerSecond: Double(messages) / (Double(end - start) / 1e9), latency: latencies.histogram)
    }
}

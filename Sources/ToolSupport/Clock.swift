// Time for the tools: the monotonic clock their deadlines and latencies are measured with, and a
// sleep that signals do not cut short.
import Glibc

/// CLOCK_MONOTONIC in nanoseconds (a vDSO call: no system call, no allocation). Inlinable, so the
/// load loops of its-load that call it per message pay no cross-module call.
/// - Context: any thread.
@inlinable @inline(__always)
public func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
}

/// Sleeps for `milliseconds`, resuming after signals.
/// - Context: any thread; blocks it.
public func sleepMilliseconds(_ milliseconds: Int) {
    var pause = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
    var left = timespec()
    while nanosleep(&pause, &left) != 0 && errno == EINTR { pause = left }
}

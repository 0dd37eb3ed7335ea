import Testing
import ToolSupport

/// The monotonic clock and the sleep measured with it.
struct ClockTests {
    @Test func sleepingMovesTheClockOnByAtLeastTheSleep() {
        let start = monotonicNanoseconds()
        sleepMilliseconds(20)
        let elapsed = monotonicNanoseconds() - start
        #expect(elapsed >= 20_000_000)
        #expect(elapsed < 5_000_000_000, "a 20 ms sleep took \(elapsed) ns")
    }
}

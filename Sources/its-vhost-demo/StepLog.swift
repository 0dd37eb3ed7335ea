/// With --verbose, one line on standard error per step of the flow, with the milliseconds since the
/// demo started: what a VMM does, in the order it does it.
import ToolSupport

struct StepLog {
    let enabled: Bool
    let start: UInt64

    init(enabled: Bool) {
        self.enabled = enabled
        start = monotonicNanoseconds()
    }

    /// Milliseconds since the demo started.
    var elapsedMilliseconds: Int { Int((monotonicNanoseconds() - start) / 1_000_000) }

    func callAsFunction(_ text: @autoclosure () -> String) {
        guard enabled else { return }
        FileHandleOutput.standardError("[\(elapsedMilliseconds) ms] \(text())\n")
    }
}

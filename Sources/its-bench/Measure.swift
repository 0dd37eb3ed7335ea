// Timing helpers shared by the benchmarks.

/// Nanoseconds per operation of `body`, which performs `operations` operations: the median of
/// `repeats` runs.
func medianNanoseconds(operations: Int, repeats: Int = 5, _ body: () -> Void) -> Double {
    var samples: [Double] = []
    let clock = ContinuousClock()
    for _ in 0 ..< repeats {
        let elapsed = clock.measure(body)
        let (seconds, attoseconds) = elapsed.components
        samples.append((Double(seconds) * 1e9 + Double(attoseconds) / 1e9) / Double(operations))
    }
    samples.sort()
    return samples[samples.count / 2]
}

/// A value the optimiser cannot see through: 0 at run time, unknown at compile time. Lookups add
/// `result & opaqueZero` to their next index so that each depends on the one before.
let opaqueZero: Int = CommandLine.arguments.count > 1_000_000 ? 1 : 0

/// Keeps a result alive so that the work producing it is not optimised away.
@inline(never) func blackHole<T>(_ value: T) {
    withExtendedLifetime(value) {}
}

import ITSModel
import Logging

/// Logs what a VM's guest did wrong at its ITS — commands skipped with an E_ITS_* error, unknown
/// and GICv4 commands, queue stalls, CWRITER values beyond the queue, mappings refused at a limit —
/// as warnings, at most `burst` messages per VM per window. The rest are counted and reported in
/// one message when the next window opens. Every one of them is also in the VM's STATS counters.
/// A guest can do these things millions of times a second; the log must not follow it there.
/// - Context: the loop thread.
struct GuestErrorLog {
    /// The counters last reported.
    private var seen = ITS.Counters.zero
    private var windowStart: UInt64 = 0
    private var sent = 0
    private var held = 0
    /// Window length in milliseconds.
    static let window: UInt64 = 10_000

    /// Reports what changed in `counters` since the last call.
    mutating func report(_ counters: ITS.Counters, vm: VMKey, now: UInt64, burst: Int, logger: Logger) {
        guard counters.totalCommandErrors != seen.totalCommandErrors || counters.unknownCommands != seen.unknownCommands
            || counters.virtualCommands != seen.virtualCommands || counters.stalls != seen.stalls
            || counters.cwriterIgnored != seen.cwriterIgnored || counters.mappingLimitReached != seen.mappingLimitReached
        else { return }
        var messages: [String] = []
        for (code, count) in counters.commandErrors.sorted(by: { $0.key < $1.key }) {
            let new = count - (seen.commandErrors[code] ?? 0)
            if new > 0 { messages.append("\(new) ITS command(s) skipped with E_ITS 0x\(String(code, radix: 16))") }
        }
        func add(_ new: UInt64, _ what: String) { if new > 0 { messages.append("\(new) \(what)") } }
        add(counters.unknownCommands - seen.unknownCommands, "ITS command(s) with an unknown number skipped")
        add(counters.virtualCommands - seen.virtualCommands, "GICv4 ITS command(s) skipped (GITS_TYPER.Virtual is 0)")
        add(counters.stalls - seen.stalls, "command queue stall(s) on a guest-memory fault (GITS_CREADR.Stalled)")
        add(counters.cwriterIgnored - seen.cwriterIgnored, "GITS_CWRITER value(s) beyond the queue ignored")
        add(counters.mappingLimitReached - seen.mappingLimitReached, "MAPD/MAPTI/MAPI skipped at the mapping limit")
        seen = counters
        if now >= windowStart + Self.window {
            if held > 0 { logger.warning("VM \(vm): \(held) more guest error report(s) held back in the last window") }
            windowStart = now
            sent = 0
            held = 0
        }
        for message in messages {
            guard sent < burst else {
                held += 1
                continue
            }
            sent += 1
            logger.warning("VM \(vm) guest: \(message)")
        }
    }
}

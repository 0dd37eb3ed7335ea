import Glibc

/// The write end of the pipe that signal handlers wake the `top` loop through (SIGWINCH, SIGTERM,
/// SIGHUP, SIGINT). Set once before the handlers are installed and never changed while they are.
nonisolated(unsafe) private var signalPipeWrite: Int32 = -1

/// Writes the signal number to the pipe: write(2) is async-signal-safe.
private func forwardSignal(_ number: Int32) {
    var byte = UInt8(truncatingIfNeeded: number)
    _ = write(signalPipeWrite, &byte, 1)
}

/// A terminal in full-screen mode for `itsctl top`, with ANSI escape sequences only: the alternate
/// screen, a hidden cursor and raw input (termios), all restored by `restore()`; signals arrive as bytes
/// on `signals` so the loop can poll them with the keyboard.
final class FullScreen {
    private var saved = termios()
    private var active = false
    /// The read end of the signal pipe: one byte per signal, its number.
    let signals: Int32

    init() throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SystemCallError(call: "pipe", code: errno) }
        signals = fds[0]
        signalPipeWrite = fds[1]
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        for number in [SIGWINCH, SIGTERM, SIGHUP, SIGINT] { signal(number, forwardSignal) }
        if tcgetattr(0, &saved) == 0 {
            var raw = saved
            cfmakeraw(&raw)
            // Keep output processing, so that "\n" still returns the carriage.
            raw.c_oflag |= tcflag_t(OPOST)
            if tcsetattr(0, TCSAFLUSH, &raw) == 0 { active = true }
        }
        Terminal.write("\u{1B}[?1049h\u{1B}[?25l\u{1B}[H\u{1B}[2J")
    }

    /// Leaves the alternate screen, shows the cursor and puts the terminal's modes back.
    func restore() {
        Terminal.write("\u{1B}[?25h\u{1B}[?1049l")
        if active { tcsetattr(0, TCSAFLUSH, &saved) }
        active = false
        for number in [SIGWINCH, SIGTERM, SIGHUP, SIGINT] { signal(number, SIG_DFL) }
    }

    deinit { restore() }

    /// Rows and columns of the terminal on standard output (24 x 80 if it cannot say).
    static func size() -> (rows: Int, columns: Int) {
        var size = winsize()
        guard ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0, size.ws_col > 0 else { return (24, 80) }
        return (Int(size.ws_row), Int(size.ws_col))
    }

    /// Draws `lines` from the top-left corner, clearing what each line and the screen below leave.
    func draw(_ lines: [String]) {
        var text = "\u{1B}[H"
        for line in lines { text += line + "\u{1B}[K\n" }
        text += "\u{1B}[J"
        Terminal.write(text)
    }

    /// What woke the loop.
    enum Input {
        case quit
        case resize
        case timeout
        case other
    }

    /// Waits up to `milliseconds` for a key or a signal.
    func wait(milliseconds: Int32) -> Input {
        var fds = [pollfd(fd: 0, events: Int16(POLLIN), revents: 0), pollfd(fd: signals, events: Int16(POLLIN), revents: 0)]
        let ready = poll(&fds, 2, milliseconds)
        if ready <= 0 { return ready == 0 ? .timeout : .other }
        if fds[1].revents & Int16(POLLIN) != 0 {
            var byte: UInt8 = 0
            var result = Input.other
            while read(signals, &byte, 1) == 1 {
                if Int32(byte) == SIGWINCH { result = .resize } else { return .quit }
            }
            return result
        }
        if fds[0].revents & Int16(POLLHUP | POLLERR) != 0 { return .quit }
        var keys = [UInt8](repeating: 0, count: 64)
        let count = read(0, &keys, keys.count)
        if count <= 0 { return .quit }
        // q, Q, Ctrl-C (raw mode turns it into a byte), Ctrl-D.
        return keys[0 ..< count].contains { $0 == UInt8(ascii: "q") || $0 == UInt8(ascii: "Q") || $0 == 3 || $0 == 4 }
            ? .quit : .other
    }
}

/// A failed system call, for the few that itsctl makes itself.
struct SystemCallError: Error, CustomStringConvertible {
    var call: String
    var code: Int32
    var description: String { "\(call): \(String(cString: strerror(code)))" }
}

import Glibc

/// Output to the terminal: colour only on a terminal and only when NO_COLOR is unset.
enum Terminal {
    /// Whether standard output is a terminal.
    static var outputIsTerminal: Bool { isatty(1) == 1 }

    /// Whether to colour what goes to `fd`.
    static func colour(_ fd: Int32) -> Bool {
        isatty(fd) == 1 && getenv("NO_COLOR") == nil
    }

    /// Writes `text` to `fd` unbuffered, whole.
    static func write(_ text: String, to fd: Int32 = 1) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let count = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if count < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += count
            }
        }
    }

    /// `itsctl: message` on standard error, "itsctl:" in bold red on a colour terminal.
    static func printError(_ message: String) {
        let prefix = colour(2) ? "\u{1B}[1;31mitsctl:\u{1B}[0m" : "itsctl:"
        write("\(prefix) \(message)\n", to: 2)
    }
}

import Glibc

/// The files server tests read: the itsd built next to the test bundle, and text files whole.

/// The itsd executable in the directory of the running test bundle (nil when /proc/self/exe cannot
/// be read); whether it exists is the caller's to check.
func itsdExecutablePath() -> String? {
    var executable = [CChar](repeating: 0, count: 4096)
    let length = readlink("/proc/self/exe", &executable, executable.count - 1)
    guard length > 0 else { return nil }
    let directory = String(decoding: executable[0 ..< length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        .split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    return directory + "/itsd"
}

/// The whole of the file at `path` as UTF-8 text; empty when it cannot be opened.
func readTextFile(_ path: String) -> String {
    guard let file = fopen(path, "r") else { return "" }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while case let count = fread(&buffer, 1, buffer.count, file), count > 0 { bytes += buffer[0 ..< count] }
    return String(decoding: bytes, as: UTF8.self)
}

// Where the running tool lives: both tools start the itsd of their own build directory.
import Glibc

/// The directory holding the running executable (the link /proc/self/exe, without its last
/// component).
public func executableDirectory() throws(ToolError) -> String {
    var path = [CChar](repeating: 0, count: 4096)
    let length = readlink("/proc/self/exe", &path, path.count - 1)
    guard length > 0 else { throw .system("readlink /proc/self/exe") }
    let executable = String(decoding: path[0 ..< length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard let slash = executable.lastIndex(of: "/") else { return "." }
    return String(executable[..<slash])
}

/// The path of `name` in the running executable's directory (the itsd built with the tool).
public func besideExecutable(_ name: String) throws(ToolError) -> String {
    try executableDirectory() + "/" + name
}

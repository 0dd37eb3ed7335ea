import Glibc
import ToolSupport

/// A private temporary directory for sockets, pid files, logs and the disk image, removed with its
/// files when the demo ends.
final class ScratchDirectory {
    let path: String

    init() throws(ToolError) {
        var template = Array("/tmp/its-vhost-demo.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw .system("mkdtemp") }
        path = String(cString: made)
    }

    deinit {
        if let directory = opendir(path) {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { unlink(path + "/" + name) }
            }
            closedir(directory)
        }
        rmdir(path)
    }

    func file(_ name: String) -> String { path + "/" + name }
}

/// Whether `path` exists.
func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

import Glibc
import Logging
import TOMLKit

/// The settings an itsd.toml may hold (deploy/itsd.toml is the commented sample). Every key is
/// optional; a flag given on the command line wins over the file. Unknown keys and values of the
/// wrong type are errors, so that a typo does not silently leave a default in force.
struct ConfigFile {
    var socket: String?
    var socketMode: String?
    var socketGroup: UInt32?
    var allowedUIDs: [UInt32]?
    var allowedGIDs: [UInt32]?
    var operatorUIDs: [UInt32]?
    var lanes: Int?
    var gracePeriod: Double?
    var shutdownTimeout: Double?
    var maxVMs: Int?
    var maxSnapshotBytes: Int?
    var logLevel: Logger.Level?
    var guestErrorLogBurst: Int?
    var tcpListen: String?
    var tcpSecretFile: String?

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static let keys: Set<String> = [
        "socket", "socket_mode", "socket_group", "allowed_uids", "allowed_gids", "operator_uids", "lanes", "grace_period", "shutdown_timeout", "max_vms",
        "max_snapshot_bytes", "log_level", "guest_error_log_burst", "tcp_listen", "tcp_secret_file",
    ]

    /// Reads and checks the file at `path`.
    init(path: String) throws(Failure) {
        try self.init(text: String(decoding: try Self.contents(of: path, limit: 1 << 20), as: UTF8.self), name: path)
    }

    /// The bytes of a file of at most `limit` bytes.
    static func contents(of path: String, limit: Int) throws(Failure) -> [UInt8] {
        guard let file = fopen(path, "r") else {
            throw Failure(description: "\(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes += buffer[0 ..< count]
            guard bytes.count <= limit else { throw Failure(description: "\(path): larger than \(limit) bytes") }
        }
        return bytes
    }

    /// The TCP listener's secret: the file's bytes without trailing line breaks, 1 to 256 of them,
    /// in a file that neither its group nor others may read or write.
    static func secret(at path: String) throws(Failure) -> [UInt8] {
        var status = stat()
        guard stat(path, &status) == 0 else { throw Failure(description: "\(path): \(String(cString: strerror(errno)))") }
        guard status.st_mode & 0o077 == 0 else {
            throw Failure(description: "\(path): the secret file must not be open to group or others (chmod 600)")
        }
        var bytes = try contents(of: path, limit: 4096)
        while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
        guard (1 ... 256).contains(bytes.count) else { throw Failure(description: "\(path): the secret must be 1 to 256 bytes") }
        return bytes
    }

    init(text: String, name: String) throws(Failure) {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw Failure(description: "\(name): \(error.source.begin.debugDescription): \(error.description)")
        } catch {
            throw Failure(description: "\(name): \(error)")
        }
        for key in table.keys where !Self.keys.contains(key) {
            throw Failure(description: "\(name): unknown key '\(key)' (known: \(Self.keys.sorted().joined(separator: ", ")))")
        }
        func fail(_ key: String, _ expected: String) -> Failure {
            Failure(description: "\(name): '\(key)' must be \(expected)")
        }
        func string(_ key: String) throws(Failure) -> String? {
            guard let value = table[key] else { return nil }
            guard let string = value.string else { throw fail(key, "a string") }
            return string
        }
        func integer(_ key: String, _ range: ClosedRange<Int>) throws(Failure) -> Int? {
            guard let value = table[key] else { return nil }
            guard let int = value.int, range.contains(int) else { throw fail(key, "an integer in \(range.lowerBound) ... \(range.upperBound)") }
            return int
        }
        func ids(_ key: String) throws(Failure) -> [UInt32]? {
            guard let value = table[key] else { return nil }
            guard let array = value.array else { throw fail(key, "an array of numeric ids") }
            var result: [UInt32] = []
            for element in array {
                guard let id = element.int, let id32 = UInt32(exactly: id) else { throw fail(key, "an array of numeric ids") }
                result.append(id32)
            }
            return result
        }
        socket = try string("socket")
        socketMode = try string("socket_mode")
        socketGroup = try integer("socket_group", 0 ... Int(UInt32.max)).map { UInt32($0) }
        allowedUIDs = try ids("allowed_uids")
        allowedGIDs = try ids("allowed_gids")
        operatorUIDs = try ids("operator_uids")
        lanes = try integer("lanes", 1 ... 256)
        if let value = table["grace_period"] {
            guard let seconds = value.double ?? value.int.map(Double.init), seconds >= 0 else { throw fail("grace_period", "a number of seconds >= 0") }
            gracePeriod = seconds
        }
        if let value = table["shutdown_timeout"] {
            guard let seconds = value.double ?? value.int.map(Double.init), seconds >= 0 else { throw fail("shutdown_timeout", "a number of seconds >= 0") }
            shutdownTimeout = seconds
        }
        maxVMs = try integer("max_vms", 1 ... 1 << 20)
        maxSnapshotBytes = try integer("max_snapshot_bytes", 4096 ... Int(UInt32.max))
        if let level = try string("log_level") {
            guard let parsed = Logger.Level(rawValue: level) else {
                throw fail("log_level", "one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            logLevel = parsed
        }
        guestErrorLogBurst = try integer("guest_error_log_burst", 0 ... 10000)
        tcpListen = try string("tcp_listen")
        tcpSecretFile = try string("tcp_secret_file")
    }
}

import ArgumentParser
import Glibc
import ITSClient
import ITSWire

/// The options every subcommand shares.
struct SocketOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "itsd's Unix socket (default: $ITSD_SOCKET, else /run/itsd/itsd.sock as root, else /tmp/itsd-UID.sock).",
        valueName: "path"))
    var socket: String = ITSConnection.defaultSocketPath

    /// Connects and says HELLO, or prints why not and exits with the matching code.
    func connect(capabilities: Capabilities = [.snapshot]) throws -> ITSConnection {
        try attempt { () throws(ITSClientError) in try ITSConnection(path: socket, capabilities: capabilities) }
    }

    /// Runs `body`; an ITSClientError is printed as a message a person can act on, and becomes the
    /// documented exit code.
    func attempt<T>(vm: VMID? = nil, _ body: () throws(ITSClientError) -> T) throws -> T {
        do {
            return try body()
        } catch {
            let failure = Failure(error, socket: socket, vm: vm)
            Terminal.printError(failure.message)
            throw ExitCode(failure.code)
        }
    }
}

/// sysexits(3) codes, as docs/ITSCTL.md lists them.
enum Exit {
    static let refused: Int32 = 1
    static let usage: Int32 = 64
    static let dataError: Int32 = 65
    static let noInput: Int32 = 66
    static let noSuchVM: Int32 = 67
    static let unavailable: Int32 = 69
    static let cannotCreate: Int32 = 73
    static let ioError: Int32 = 74
    static let protocolError: Int32 = 76
    static let noPermission: Int32 = 77
}

/// An ITSClientError as a message and an exit code.
struct Failure {
    var message: String
    var code: Int32

    init(message: String, code: Int32) {
        self.message = message
        self.code = code
    }

    init(_ error: ITSClientError, socket: String, vm: VMID?) {
        let start = "start itsd with `itsd --socket \(socket)` (or `make run` in the source tree, or "
            + "`systemctl start itsd.socket`), or point itsctl at a running one with --socket PATH or $ITSD_SOCKET"
        switch error {
        case .cannotConnect(let path, let code) where code == ENOENT:
            self.init(message: "no itsd socket at \(path): \(start)", code: Exit.unavailable)
        case .cannotConnect(let path, let code) where code == ECONNREFUSED:
            self.init(message: "nothing is listening on \(path) (a stale socket file: itsd is not running there); \(start)",
                      code: Exit.unavailable)
        case .cannotConnect(let path, let code) where code == EACCES || code == EPERM:
            self.init(message: "permission denied connecting to \(path) as uid \(getuid()): the socket's mode keeps this "
                + "user out; run itsctl as itsd's user or root, or start itsd with --socket-group GID --socket-mode 0660 "
                + "and join that group", code: Exit.noPermission)
        case .cannotConnect(let path, let code):
            self.init(message: "cannot connect to \(path): \(ITSClientError.text(code))", code: Exit.unavailable)
        case .notAdmitted(let path, let uid):
            self.init(message: "itsd at \(path) does not admit uid \(uid) (it closed the connection without answering "
                + "HELLO): run itsctl as itsd's user or root, or add the uid to allowed_uids in itsd's configuration",
                code: Exit.noPermission)
        case .server(let server):
            self.init(server, socket: socket, vm: vm)
        case .connectionClosed:
            self.init(message: "itsd at \(socket) closed the connection", code: Exit.unavailable)
        case .system:
            self.init(message: error.description, code: Exit.ioError)
        case .timedOut:
            self.init(message: "\(error.description) (itsd at \(socket))", code: Exit.unavailable)
        case .malformedFrame, .unexpectedReply, .protocolViolation, .versionNotAgreed:
            self.init(message: "\(error.description) (itsd at \(socket))", code: Exit.protocolError)
        }
    }

    private init(_ error: ServerError, socket: String, vm: VMID?) {
        let what = vm.map { "VM \($0)" } ?? "the request"
        switch error.status {
        case .noSuchVM:
            self.init(message: "no VM \(error.detail) on \(socket) (`itsctl vm list` shows the VMs)", code: Exit.noSuchVM)
        case .noSuchVCPU:
            self.init(message: "\(what) has no vCPU \(error.detail)", code: Exit.noSuchVM)
        case .badToken:
            self.init(message: "itsd refused to attach \(what): the token does not match. The all-zero operator token "
                + "works only for root and itsd's own uid; pass the VM's token with --token HEX", code: Exit.noPermission)
        case .notAttached:
            self.init(message: "this connection is not attached to \(what)", code: Exit.noPermission)
        case .permissionDenied:
            self.init(message: "itsd refused \(error.opcode) for uid \(getuid()): permission denied", code: Exit.noPermission)
        case .versionMismatch:
            self.init(message: "itsd at \(socket) speaks protocol \(error.detail >> 16).\(error.detail & 0xFFFF), "
                + "itsctl speaks \(Wire.majorVersion).\(Wire.minorVersion)", code: Exit.protocolError)
        case .badSnapshot:
            self.init(message: "itsd rejected the image at offset \(error.detail)"
                + (error.text.isEmpty ? "" : ": \(error.text)"), code: Exit.dataError)
        default:
            self.init(message: "itsd refused \(error.opcode) for \(what): \(error.status)"
                + (error.text.isEmpty ? "" : " (\(error.text))"), code: Exit.refused)
        }
    }
}

/// A VM id argument: a positive decimal number.
func parseVM(_ text: String) throws -> VMID {
    guard let raw = UInt32(text), raw != 0, raw != VMID.all.rawValue else {
        throw ValidationError("'\(text)' is not a VM id (a number from 1; `itsctl vm list` shows them)")
    }
    return VMID(raw)
}

/// A number in decimal or 0x hexadecimal.
func parseNumber(_ text: String) -> UInt32? {
    if text.hasPrefix("0x") || text.hasPrefix("0X") { return UInt32(text.dropFirst(2), radix: 16) }
    return UInt32(text)
}

/// How a subcommand attaches to a VM it did not create.
struct TokenOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The VM's token as 32 hex digits (default: the operator token, 16 zero bytes, which itsd accepts from root "
            + "and its own uid).", valueName: "hex"))
    var token: String?

    func validate() throws {
        if let token, VMToken(hex: token) == nil { throw ValidationError("--token takes 32 hex digits") }
    }

    var value: VMToken { token.flatMap { VMToken(hex: $0) } ?? .operatorToken }
}

import Glibc
import ITSWire

/// An error reply from itsd: the request's opcode, the protocol status, the status's detail word and
/// the server's text for people (Protocol/PROTOCOL.md, "Error replies" and section 7).
public struct ServerError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The opcode of the request that failed (0 when the server could not tell which frame it was).
    public var opcode: Opcode
    /// Never OK. A status this library does not name is kept as its number.
    public var status: WireStatus
    /// Meaning depends on the status: an offset, a limit, a count, an id (PROTOCOL.md, section 7).
    public var detail: UInt32
    public var text: String
    /// The message id of the failed request.
    public var messageID: MessageID

    public init(opcode: Opcode, status: WireStatus, detail: UInt32, text: String, messageID: MessageID) {
        self.opcode = opcode
        self.status = status
        self.detail = detail
        self.text = text
        self.messageID = messageID
    }

    public var description: String {
        "\(opcode) failed: \(status) (detail \(detail))" + (text.isEmpty ? "" : ": \(text)")
    }
}

/// Everything an ITSClient call can fail with. Every case says what was tried and why it failed.
public enum ITSClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The server answered the request with an error reply.
    case server(ServerError)
    /// `connect(2)` to the socket failed (`ENOENT` or `ECONNREFUSED`: no server there; `EACCES`: the
    /// socket's permissions keep this user out).
    case cannotConnect(path: String, errno: Int32)
    /// A system call failed.
    case system(call: String, errno: Int32)
    /// The server closed the connection (before the awaited reply, if one was awaited).
    case connectionClosed
    /// The server closed the connection without answering HELLO: its listener does not admit this
    /// peer's uid or gid (SO_PEERCRED; itsd's `allowed_uids`, `allowed_gids`, `--socket-group`).
    case notAdmitted(path: String, uid: UInt32)
    /// A frame from the server did not decode: the server or the connection is broken.
    case malformedFrame(WireError)
    /// The server answered with a reply of another kind than the request asks for.
    case unexpectedReply(request: Opcode, reply: Opcode)
    /// A reply sequence did not add up (snapshot chunk offsets or lengths, paging cursors).
    case protocolViolation(String)
    /// No reply came within the connection's reply timeout (for WAIT_ACK: its own timeout plus the
    /// reply timeout). The connection is closed, because the position in the reply stream is lost.
    case timedOut(after: Duration)
    /// The request was added in a later minor version than the one HELLO agreed with this server.
    case versionNotAgreed(request: Opcode, needs: UInt16, agreed: UInt16)

    /// The protocol status when the server refused the request, else nil.
    public var status: WireStatus? {
        if case .server(let error) = self { error.status } else { nil }
    }

    /// The server's error reply, if this is one.
    public var serverError: ServerError? {
        if case .server(let error) = self { error } else { nil }
    }

    public var description: String {
        switch self {
        case .server(let error): return error.description
        case .cannotConnect(let path, let code): return "cannot connect to \(path): \(Self.text(code))"
        case .system(let call, let code): return "\(call): \(Self.text(code))"
        case .connectionClosed: return "the server closed the connection"
        case .notAdmitted(let path, let uid):
            return "the server at \(path) closed the connection without answering HELLO: it does not admit uid \(uid)"
        case .malformedFrame(let error): return "malformed frame from the server: \(error.status) (detail \(error.detail))"
        case .unexpectedReply(let request, let reply): return "\(request) was answered by a \(reply) reply"
        case .protocolViolation(let why): return "the server broke the protocol: \(why)"
        case .timedOut(let after):
            return "no reply from itsd within \(after): it is stalled, overloaded or stopped; "
                + "check it with `itsctl ping` and its log, then open a new connection (this one is closed), "
                + "or raise the connection's reply timeout"
        case .versionNotAgreed(let request, let needs, let agreed):
            return "\(request) needs protocol 1.\(needs), but this server agreed 1.\(agreed): upgrade itsd"
        }
    }

    /// The C library's text for an errno value.
    public static func text(_ code: Int32) -> String {
        guard let message = strerror(code) else { return "errno \(code)" }
        return String(cString: message)
    }
}

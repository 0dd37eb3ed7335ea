import Glibc
import ITSWire

/// One connection to itsd over its Unix socket: HELLO on connect, then requests and their replies in
/// order (Protocol/PROTOCOL.md, "Ordering and pipelining").
///
/// Calls block. A connection belongs to one thread at a time: it is not `Sendable`, and a VMM that
/// injects from several threads opens a connection per thread. Replies come back in request order;
/// events that arrive in between are queued (`takeEvents()`), and error replies to requests sent
/// without a reply (with the `ERROR_REPORTS` capability) are kept in `deferredErrors`.
///
/// ```swift
/// let connection = try ITSConnection(path: "/tmp/itsd.sock")
/// let vm = try connection.createVM(VMConfig(vcpuCount: 2, deviceIDBits: 16, eventIDBits: 16, intidBits: 16))
/// ```
public final class ITSConnection {
    /// The socket path this connection was opened on.
    public let path: String
    /// What HELLO agreed: the version, the capabilities and the limits.
    public private(set) var agreed: Hello
    /// How long a call waits for its reply before it throws `.timedOut` and closes the connection;
    /// nil waits for ever. WAIT_ACK adds its own timeout to this (`ITSVCPU.waitAcknowledge`).
    public var replyTimeout: Duration?
    /// Error replies to requests sent with NO_REPLY (only with `ERROR_REPORTS`), oldest first.
    /// `sync()` returns and clears them.
    public private(set) var deferredErrors: [ServerError] = []

    let socket: UnixSocket
    private var decoder = FrameDecoder(role: .client, limits: .beforeHello)
    private var nextID: UInt32 = 1
    /// Received bytes not yet decoded: `storage[head ..< tail]`.
    private var storage: [UInt8]
    private var head = 0
    private var tail = 0
    private var events: [Message] = []
    /// Encoded frames not yet written: posted MSIs and the batch being filled.
    var outbox: [UInt8] = []
    /// Where the INJECT_BATCH being filled starts in `outbox`, its VM and its pair count.
    var openBatch: (start: Int, vm: VMID, count: Int)?
    /// The most pairs an INJECT_BATCH may hold on this connection.
    private(set) var batchCapacity = 0
    /// Writes the outbox once it holds this many bytes.
    var outboxFlushThreshold = 0
    private var encodeBuffer: [UInt8] = []
    /// STATS schemas by schema id.
    private var schemas: [UInt64: [StatDescriptor]] = [:]

    /// The socket itsd listens on when started without `--socket`: `$ITSD_SOCKET` when set, else
    /// `/run/itsd/itsd.sock` for root and `/tmp/itsd-UID.sock` for anyone else.
    public static var defaultSocketPath: String {
        if let path = getenv("ITSD_SOCKET").map({ String(cString: $0) }), !path.isEmpty { return path }
        return getuid() == 0 ? "/run/itsd/itsd.sock" : "/tmp/itsd-\(getuid()).sock"
    }

    /// Connects to itsd at `path` and says HELLO.
    ///
    /// - Parameters:
    ///   - capabilities: what to ask for. `ERROR_REPORTS` makes failed fire-and-forget requests come
    ///     back as `deferredErrors`; ask for it only if you call `sync()` now and then, or the
    ///     reports pile up in the socket. `EVENTS` allows `subscribe`. `SNAPSHOT` allows snapshots.
    ///   - limits: proposals; 0 takes the server's default.
    ///   - replyTimeout: how long any call, HELLO included, waits for its reply (`replyTimeout`).
    /// - Throws: `.cannotConnect` when nothing listens at `path` or the socket's permissions refuse
    ///   this user; `.server` with VERSION_MISMATCH or PERMISSION_DENIED when HELLO is refused;
    ///   `.timedOut` when HELLO is not answered in time.
    /// - Context: the calling thread, which then owns the connection; blocks until HELLO is answered.
    public init(path: String = ITSConnection.defaultSocketPath, capabilities: Capabilities = [.snapshot],
                limits: Limits = Limits(maxFrameLength: 0, maxBatchEntries: 0, maxInFlight: 0, maxFDsPerMessage: 0),
                replyTimeout: Duration? = ITSConnection.defaultReplyTimeout)
        throws(ITSClientError)
    {
        self.path = path
        self.replyTimeout = replyTimeout
        socket = try UnixSocket(path: path)
        storage = [UInt8](repeating: 0, count: Int(Limits.beforeHello.maxFrameLength) * 2)
        agreed = Hello(capabilities: [], limits: .beforeHello)
        let reply: Message
        do throws(ITSClientError) {
            reply = try call(.hello(Hello(capabilities: capabilities, limits: limits)))
        } catch .connectionClosed {
            throw .notAdmitted(path: path, uid: getuid())
        }
        guard case .helloReply(let hello) = reply else { throw .unexpectedReply(request: .hello, reply: reply.opcode) }
        agreed = hello
        decoder.limits = hello.limits
        storage = [UInt8](repeating: 0, count: Int(hello.limits.maxFrameLength) * 2)
        batchCapacity = InjectEncoding.maxBatchEntries(hello.limits)
        outboxFlushThreshold = Int(hello.limits.maxFrameLength)
        // A batch may begin just below the threshold and grow to a whole frame.
        outbox.reserveCapacity(2 * outboxFlushThreshold + InjectEncoding.injectFrameLength)
    }

    // MARK: Requests and replies

    /// The next message id; ids wrap and need not be unique (PROTOCOL.md, "Ordering and pipelining").
    func takeID() -> MessageID {
        defer { nextID = nextID &+ 1 }
        return MessageID(nextID)
    }

    /// Sends one request and returns its reply. An error reply throws `.server`.
    /// - Parameter fds: descriptors for ADD_MEM_REGION, BIND_IRQFD and SET_VCPU_NOTIFY (one each);
    ///   the server gets its own copies, and the caller keeps and closes its own.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func call(_ message: Message, fds: [Int32] = []) throws(ITSClientError) -> Message {
        let id = try send(message, fds: fds)
        return try awaitReply(id)
    }

    /// Sends a request without waiting: its reply comes back through `awaitReply` in request order.
    /// With `noReply` (INJECT, INJECT_BATCH, MMIO_WRITE only) nothing comes back unless it fails and
    /// `ERROR_REPORTS` was agreed. Posted MSIs still waiting in the outbox are written first.
    /// - Context: the thread that owns the connection; writes to the socket at most, never waits for a reply.
    @discardableResult
    public func send(_ message: Message, fds: [Int32] = [], noReply: Bool = false) throws(ITSClientError) -> MessageID {
        try flush()
        let id = takeID()
        encodeBuffer.removeAll(keepingCapacity: true)
        Frame(message, id: id, noReply: noReply).encode(into: &encodeBuffer)
        let result: Result<Void, ITSClientError> = encodeBuffer.withUnsafeBytes { bytes in
            Result { () throws(ITSClientError) in try socket.send(bytes, fds: fds) }
        }
        try result.get()
        return id
    }

    /// Reads frames until the reply with `id`; events are queued and error replies to other ids (NO_REPLY
    /// requests that failed) go to `deferredErrors`.
    /// - Throws: `.timedOut` when the reply takes longer than `replyTimeout`; the connection is then closed.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func awaitReply(_ id: MessageID) throws(ITSClientError) -> Message {
        try awaitReply(id, within: replyTimeout)
    }

    /// `awaitReply` with a timeout of its own (nil: none) in place of `replyTimeout`.
    func awaitReply(_ id: MessageID, within timeout: Duration?) throws(ITSClientError) -> Message {
        let deadline = timeout.map { ReplyDeadline(timeout: $0) }
        while true {
            let frame = try readFrame(wait: true, deadline: deadline)!
            if case .error(let opcode, let report) = frame.message {
                let error = ServerError(opcode: opcode, status: report.status, detail: report.detail,
                                        text: report.text, messageID: frame.messageID)
                // A frame-level error with id 0 (the server lost the framing) ends the connection.
                if frame.messageID == id || (frame.messageID.rawValue == 0 && opcode.rawValue == 0) {
                    throw .server(error)
                }
                deferredErrors.append(error)
                continue
            }
            if frame.message.kind == .event {
                events.append(frame.message)
                continue
            }
            if frame.messageID == id { return frame.message }
        }
    }

    /// Sends `messages` pipelined, at most `max_in_flight` ahead of the replies, and returns each
    /// one's reply or error in order. A batch of MASK, UNMASK or BIND requests costs one round trip
    /// per window rather than one per request.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func pipeline(_ messages: [Message]) throws(ITSClientError) -> [Result<Message, ServerError>] {
        var results: [Result<Message, ServerError>] = []
        results.reserveCapacity(messages.count)
        let window = Swift.max(1, Int(agreed.limits.maxInFlight))
        var ids: [MessageID] = []
        var sent = 0
        while results.count < messages.count {
            while sent < messages.count, ids.count - results.count < window {
                ids.append(try send(messages[sent]))
                sent += 1
            }
            do throws(ITSClientError) {
                results.append(.success(try awaitReply(ids[results.count])))
            } catch {
                guard case .server(let server) = error else { throw error }
                results.append(.failure(server))
            }
        }
        return results
    }

    /// Writes everything posted, then PINGs and waits for the answer: when it returns, the server has
    /// handled every request sent before. Returns the deferred errors collected so far and clears them.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    @discardableResult
    public func sync() throws(ITSClientError) -> [ServerError] {
        _ = try ping(nonce: UInt64(nextID))
        defer { deferredErrors.removeAll() }
        return deferredErrors
    }

    /// Events received so far (EVENT_VCPU_NOTIFY, EVENT_VM_GONE), oldest first, and clears the queue.
    /// Reads whatever has arrived without blocking.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func takeEvents() throws(ITSClientError) -> [Message] {
        while let frame = try readFrame(wait: false, deadline: nil) {
            if case .error(let opcode, let report) = frame.message {
                deferredErrors.append(ServerError(opcode: opcode, status: report.status, detail: report.detail,
                                                  text: report.text, messageID: frame.messageID))
            } else if frame.message.kind == .event {
                events.append(frame.message)
            }
        }
        defer { events.removeAll() }
        return events
    }

    /// The next whole frame from the server: from the bytes already received, else from the socket.
    /// Returns nil only when `wait` is false and no whole frame is there. Past `deadline` it closes the
    /// connection and throws `.timedOut`.
    private func readFrame(wait: Bool, deadline: ReplyDeadline?) throws(ITSClientError) -> Frame? {
        while true {
            if tail > head {
                switch decoder.decode(storage[head ..< tail], fdCount: 0) {
                case .frame(let frame, let consumed):
                    head += consumed
                    if head == tail { head = 0; tail = 0 }
                    return frame
                case .failure(let error):
                    throw .malformedFrame(error)
                case .needMoreData:
                    break
                }
            }
            if head > 0, tail == storage.count || head >= storage.count / 2 {
                storage.withUnsafeMutableBytes { raw in
                    // SAFETY: head < tail <= raw.count; memmove handles the overlap.
                    _ = memmove(raw.baseAddress!, raw.baseAddress! + head, tail - head)
                }
                tail -= head
                head = 0
            }
            if wait, let deadline, !(try socket.waitReadable(until: deadline.instant)) {
                socket.shutdownBoth()
                throw .timedOut(after: deadline.timeout)
            }
            let start = tail
            let received: Result<Int?, ITSClientError> = storage.withUnsafeMutableBytes { raw in
                // SAFETY: start <= raw.count; the rebased buffer is the free tail of `storage`, which
                // nothing else touches during the call. The decoder checks that a frame fits in
                // max_frame_length, and `storage` holds twice that, so the free part is never empty here.
                Result { () throws(ITSClientError) in
                    try socket.receive(into: UnsafeMutableRawBufferPointer(rebasing: raw[start...]), wait: wait)
                }
            }
            guard let count = try received.get() else { return nil }
            if count == 0 { throw .connectionClosed }
            tail += count
        }
    }

    // MARK: Server-wide requests

    /// PING: checks that the connection and the server's loop are alive; returns the echoed nonce.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func ping(nonce: UInt64 = 0) throws(ITSClientError) -> UInt64 {
        let reply = try call(.ping(nonce: nonce))
        guard case .pingReply(let echoed) = reply else { throw .unexpectedReply(request: .ping, reply: reply.opcode) }
        return echoed
    }

    /// CREATE_VM: a new VM, attached to this connection. Keep `token` secret: it attaches the VM.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func createVM(_ config: VMConfig) throws(ITSClientError) -> ITSVM {
        let reply = try call(.createVM(config))
        guard case .createVMReply(let id, let token) = reply else {
            throw .unexpectedReply(request: .createVM, reply: reply.opcode)
        }
        return ITSVM(connection: self, id: id, config: config, token: token)
    }

    /// ATTACH_VM: attaches this connection to an existing VM with its token. An operator (a peer
    /// whose uid the server lists as an operator) may pass `VMToken.operatorToken`, 16 zero bytes.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func attachVM(_ id: VMID, token: VMToken) throws(ITSClientError) -> ITSVM {
        let reply = try call(.attachVM(id, token: token))
        guard case .attachVMReply(let vm, let config) = reply else {
            throw .unexpectedReply(request: .attachVM, reply: reply.opcode)
        }
        return ITSVM(connection: self, id: vm, config: config, token: token)
    }

    /// LIST_VMS: the VMs this peer may see, lowest id first.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func listVMs() throws(ITSClientError) -> [VMInfo] {
        let reply = try call(.listVMs)
        guard case .listVMsReply(let list) = reply else { throw .unexpectedReply(request: .listVMs, reply: reply.opcode) }
        return list
    }

    /// STATS for one VM, or for the whole server with `VMID.all`. The schema is fetched once per
    /// schema id and cached; the values are read on every call.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func stats(_ vm: VMID = .all) throws(ITSClientError) -> StatsSample {
        var reply = try call(.stats(vm, includeSchema: false))
        guard case .statsReply(var report) = reply else { throw .unexpectedReply(request: .stats, reply: reply.opcode) }
        if schemas[report.schemaID] == nil {
            reply = try call(.stats(vm, includeSchema: true))
            guard case .statsReply(let full) = reply, let schema = full.schema else {
                throw .unexpectedReply(request: .stats, reply: reply.opcode)
            }
            if schemas.count >= 64 { schemas.removeAll() }
            schemas[full.schemaID] = schema
            report = full
        }
        return StatsSample(vm: vm, schema: schemas[report.schemaID]!, values: report.values,
                           time: Self.monotonicNanoseconds())
    }

    /// DUMP: every page of one section of a VM's ITS and LPI state, `pageSize` entries a page (0: as
    /// many as fit in a frame). Any admitted peer may dump any VM it can see, attached or not.
    /// - Context: the thread that owns the connection; blocks until the server answers.
    public func dump(_ vm: VMID, _ section: DumpSection, pageSize: UInt32 = 0) throws(ITSClientError) -> DumpEntries {
        var devices: [DumpDevice] = []
        var itt: [DumpITTEntry] = []
        var collections: [DumpCollection] = []
        var lpis: [DumpLPI] = []
        var cursor: UInt64 = 0
        repeat {
            let reply = try call(.dump(vm, section, cursor: cursor, maxEntries: pageSize))
            guard case .dumpReply(let page) = reply, page.entries.section == section else {
                throw .unexpectedReply(request: .dump, reply: reply.opcode)
            }
            switch page.entries {
            case .devices(let list): devices += list
            case .itt(let list): itt += list
            case .collections(let list): collections += list
            case .lpis(let list): lpis += list
            }
            cursor = page.nextCursor
        } while cursor != DumpPage.end
        switch section {
        case .devices: return .devices(devices)
        case .itt: return .itt(itt)
        case .collections: return .collections(collections)
        case .lpis: return .lpis(lpis)
        }
    }

    /// CLOCK_MONOTONIC in nanoseconds, the time base of `StatsSample.time`.
    /// - Context: any thread.
    public static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}

import CITSSupport
import CLibUV
import Glibc
import ITSWire

/// The peer at the other end of a Unix socket, from SO_PEERCRED.
public struct PeerCredentials: Hashable, Sendable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32
}

/// One client connection: its socket, the bytes and descriptors received but not yet framed, the
/// frame decoder, and the bytes waiting to be sent.
///
/// Reading uses recvmsg with MSG_CMSG_CLOEXEC; the descriptors one recvmsg returns belong to the
/// frame holding the last byte it returned (Protocol/PROTOCOL.md, section 4). A frame the decoder
/// rejects gets its error reply and, when the stream can still be framed, the connection goes on;
/// otherwise it closes after the reply is sent.
///
/// What a client can make the connection hold is bounded:
/// - input: one frame of the agreed length (plus ``initialInputCapacity``);
/// - descriptors: the agreed `max_fds_per_message` on one recvmsg, and as many on a frame still
///   arriving. More is LIMIT_EXCEEDED and the connection closes (section 4, "Too many");
/// - output: when more than ``outputHighWater`` bytes wait to be sent, the connection stops
///   reading until they drain, and bytes already sent are dropped from the buffer as it goes, so a
///   client that reads slowly or not at all cannot make the server's memory grow.
///
/// One readiness callback reads at most ``readBudget`` bytes: the socket stays readable (libuv's
/// polling is level-triggered), so the rest is read on the next loop turn, after every other ready
/// connection has had its turn. A client that writes faster than the server decodes cannot keep
/// the loop to itself.
/// - Context: the loop thread.
public final class Connection {
    public let id: UInt64
    public let fd: Int32
    public let peer: PeerCredentials
    public var decoder: FrameDecoder
    /// Called with each decoded frame and the descriptors that came with it (now the handler's).
    public var onFrame: (Connection, Frame, [Int32]) -> Void = { _, _, fds in fds.forEach { _ = Glibc.close($0) } }
    /// Called with a NO_REPLY INJECT frame recognised by its length, opcode and flags and read
    /// straight from the receive buffer, before the general decoder: returns false to leave the
    /// frame to the decoder and ``onFrame`` (which then answers any error it finds).
    public var onInject: ((Connection, InjectRequest) -> Bool)?
    /// Called once when the connection has closed.
    public var onClose: (Connection) -> Void = { _ in }
    /// Called after a read's frames have all been handed on: the owner sends what they queued.
    public var onFramesHandled: (Connection) -> Void = { _ in }

    public static let outputHighWater = 1 << 20
    /// Bytes one readiness callback reads at most before the loop serves other connections.
    public static let readBudget = 65536
    /// A read below this many bytes that leaves room in the buffer ends the readiness callback.
    static let smallRead = 4096
    /// The receive buffer starts at this size and grows, up to the agreed frame length plus this
    /// much, only for a frame that needs it.
    public static let initialInputCapacity = 65536

    private var poll: PollHandle?
    private var input: [UInt8]
    private var inputStart = 0
    private var inputEnd = 0
    /// Stream offset of input[inputStart].
    private var streamOffset = 0
    /// Descriptors received, each with the stream offset just past the last byte of its recvmsg.
    private var arrivedFDs: [(end: Int, fds: [Int32])] = []
    private var output: [UInt8] = []
    private var outputStart = 0
    private var closeWhenFlushed = false
    public private(set) var isClosed = false
    private var readingPaused = false
    /// Set while ``processFrames()`` runs: a handler that pauses and resumes reading (a reply sent
    /// at once under `max_in_flight` 1) lets the running loop go on instead of nesting another,
    /// which would recurse once per frame in the buffer and overflow the stack.
    private var processing = false
    /// Set by the owner to stop reading new frames (too many requests awaiting replies).
    public var holdsReading = false {
        didSet { if oldValue != holdsReading { updateInterest() } }
    }

    public init(id: UInt64, fd: Int32, peer: PeerCredentials, loop: EventLoop, decoder: FrameDecoder) throws(UVError) {
        self.id = id
        self.fd = fd
        self.peer = peer
        self.decoder = decoder
        input = [UInt8](repeating: 0, count: Self.initialInputCapacity)
        poll = try PollHandle(loop: loop, fd: fd) { [unowned self] status, events in
            self.ready(status: status, events: events)
        }
        poll?.watch(Int32(UV_READABLE.rawValue))
    }

    deinit { close() }

    /// Bytes waiting to be sent.
    public var pendingOutput: Int { output.count - outputStart }
    /// Whether the connection is not reading: its replies wait to be read, its owner holds it, or
    /// it closes once what it owes is sent.
    public var isReadingPaused: Bool { readingPaused }
    /// Bytes the send buffer holds: those waiting and those sent but not yet dropped.
    var bufferedOutput: Int { output.count }
    /// Descriptors the agreed limits let one message carry.
    private var maxFDsPerMessage: Int { Int(decoder.limits.maxFDsPerMessage) }

    // MARK: - Sending

    /// Where sends are coalesced until the loop next polls; nil sends at once.
    public var coalescer: SendCoalescer?
    /// Whether the connection is in its coalescer's list.
    private var isSendScheduled = false

    /// Queues `frame` and sends what the socket takes now, or, with a coalescer, before the loop
    /// next polls.
    public func send(_ frame: Frame) {
        guard !isClosed else { return }
        frame.encode(into: &output)
        guard let coalescer else { return flush() }
        if !isSendScheduled {
            isSendScheduled = true
            coalescer.schedule(self)
        }
    }

    /// The coalescer's turn: sends what was queued.
    func sendScheduledOutput() {
        isSendScheduled = false
        guard !isClosed else { return }
        flush()
    }

    /// Sends `frame` and then closes the connection.
    public func sendAndClose(_ frame: Frame) {
        send(frame)
        closeWhenFlushed = true
        flush()
    }

    private func flush() {
        while outputStart < output.count {
            let sent = output.withUnsafeBytes { bytes in
                Glibc.send(fd, bytes.baseAddress! + outputStart, bytes.count - outputStart, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            if sent > 0 {
                outputStart += sent
                continue
            }
            let error = its_errno()
            if sent < 0, error == EINTR { continue }
            if sent < 0, error == EAGAIN || error == EWOULDBLOCK { break }
            close()
            return
        }
        if outputStart == output.count {
            output.removeAll(keepingCapacity: output.capacity <= 4 * Self.outputHighWater)
            outputStart = 0
            if closeWhenFlushed {
                close()
                return
            }
        } else if outputStart >= pendingOutput {
            // A reader that never catches up never lets the buffer empty: drop what was sent once it
            // outweighs what waits. Each byte is moved at most once, and the buffer stays within
            // about twice the high-water mark.
            output.removeSubrange(0 ..< outputStart)
            outputStart = 0
        }
        updateInterest()
    }

    private func updateInterest() {
        guard !isClosed else { return }
        let wasPaused = readingPaused
        readingPaused = pendingOutput > Self.outputHighWater || closeWhenFlushed || holdsReading
        var events: Int32 = 0
        if !readingPaused { events |= Int32(UV_READABLE.rawValue) }
        if pendingOutput > 0 { events |= Int32(UV_WRITABLE.rawValue) }
        poll?.watch(events)
        if wasPaused, !readingPaused { processFrames() }
    }

    // MARK: - Receiving

    private func ready(status: Int32, events: Int32) {
        if status < 0 {
            close()
            return
        }
        if events & Int32(UV_WRITABLE.rawValue) != 0 { flush() }
        if events & Int32(UV_READABLE.rawValue) != 0, !readingPaused { receive() }
    }

    private func receive() {
        var budget = Self.readBudget
        while !isClosed, !readingPaused, budget > 0 {
            if inputEnd == input.count { compact() }
            if inputEnd == input.count { growInput() }
            guard inputEnd < input.count else { return }
            let room = min(input.count - inputEnd, budget)
            // Empty until a control message arrives: a recvmsg without descriptors, the common
            // case on the MSI path, allocates nothing. Checked with valgrind's heap totals for a
            // debug itsd sent 1,000 more NO_REPLY INJECT frames, each in a recvmsg of its own:
            // 2.97 allocations a frame when this array was made for every recvmsg (the read and the
            // EAGAIN after it), 1.02 after (the one left is the loop turn's, not the read's).
            var fds: [Int32] = []
            var dropped = 0
            var truncated = false
            let received: Int = input.withUnsafeMutableBytes { buffer in
                // SAFETY: inputEnd + room <= buffer.count, so recvmsg writes inside the buffer.
                var iov = iovec(iov_base: buffer.baseAddress! + inputEnd, iov_len: room)
                let controlSize = its_cmsg_space_fds(maxFDsPerMessage)
                return withUnsafeTemporaryAllocation(byteCount: controlSize, alignment: 8) { control in
                    var message = msghdr()
                    return withUnsafeMutablePointer(to: &iov) { iovPointer in
                        message.msg_iov = iovPointer
                        message.msg_iovlen = 1
                        message.msg_control = control.baseAddress
                        message.msg_controllen = controlSize
                        let n = recvmsg(fd, &message, Int32(MSG_CMSG_CLOEXEC) | Int32(MSG_DONTWAIT))
                        if n >= 0 {
                            truncated = its_msg_ctrunc(&message) != 0
                            if message.msg_controllen > 0 { fds = Self.takeDescriptors(&message, limit: maxFDsPerMessage, dropped: &dropped) }
                        }
                        return n
                    }
                }
            }
            if received == 0 {
                close()
                return
            }
            if received < 0 {
                let error = its_errno()
                if error == EINTR { continue }
                if error != EAGAIN && error != EWOULDBLOCK { close() }
                return
            }
            inputEnd += received
            budget -= received
            if !fds.isEmpty { arrivedFDs.append((streamOffset + (inputEnd - inputStart), fds)) }
            if truncated || dropped > 0 || fds.count > maxFDsPerMessage {
                return refuseDescriptors("more descriptors on one message than the \(maxFDsPerMessage) agreed")
            }
            processFrames()
            // Every whole frame has taken its descriptors, so what is left came with the frame still
            // arriving: a client sending it a byte at a time, each with descriptors, must not make
            // the server hold thousands.
            if !isClosed, !readingPaused, arrivedFDs.reduce(0, { $0 + $1.fds.count }) > maxFDsPerMessage {
                return refuseDescriptors("more descriptors on one frame than the \(maxFDsPerMessage) agreed")
            }
            // A small read that did not fill its room found the socket empty: a request or two from
            // a client waiting for their replies. Another recvmsg would only say EAGAIN; the poll is
            // level-triggered, so later bytes wake the loop again. A client streaming requests
            // leaves larger reads, and those go on until EAGAIN, as each loop turn costs more.
            if received < room, received < Self.smallRead { return }
        }
    }

    /// The SCM_RIGHTS descriptors of a received `message` that carries control data, up to one
    /// beyond `limit` (so that going over it shows even when the control buffer's alignment would
    /// round it up to hold the excess); any further ones are closed and counted in `dropped`.
    private static func takeDescriptors(_ message: inout msghdr, limit: Int, dropped: inout Int) -> [Int32] {
        [Int32](unsafeUninitializedCapacity: limit + 1) { out, count in
            // SAFETY: its_cmsg_take_fds writes at most out.count descriptors, from the start, and
            // returns how many it wrote: exactly the first `count` elements are initialised.
            count = its_cmsg_take_fds(&message, out.baseAddress, out.count, &dropped)
        }
    }

    /// LIMIT_EXCEEDED with message id 0 and the agreed limit as detail, then the connection closes
    /// (Protocol/PROTOCOL.md, section 4, "Too many"); closing closes the descriptors held.
    private func refuseDescriptors(_ text: String) {
        sendAndClose(Frame(.error(Opcode(0), ErrorReport(.limitExceeded, detail: UInt32(maxFDsPerMessage), text: text)),
                           id: MessageID(0)))
    }

    /// Makes room for the frame being received when it is larger than the buffer, never beyond the
    /// agreed frame length (the decoder rejects longer frames before they arrive whole).
    private func growInput() {
        let limit = Int(decoder.limits.maxFrameLength) + Self.initialInputCapacity
        guard input.count < limit else { return }
        input += [UInt8](repeating: 0, count: min(input.count, limit - input.count))
    }

    /// Moves the unread bytes to the front of the buffer.
    private func compact() {
        guard inputStart > 0 else { return }
        let count = inputEnd - inputStart
        _ = input.withUnsafeMutableBytes { buffer in
            // SAFETY: both ranges lie inside the buffer; memmove handles the overlap.
            memmove(buffer.baseAddress!, buffer.baseAddress! + inputStart, count)
        }
        inputStart = 0
        inputEnd = count
    }

    /// Decodes and hands on every whole frame in the buffer, until reading pauses.
    private func processFrames() {
        guard !processing else { return }
        processing = true
        defer {
            processing = false
            if !isClosed { onFramesHandled(self) }
        }
        while !isClosed, !readingPaused, inputEnd > inputStart {
            let available = inputEnd - inputStart
            var frameEnd = streamOffset + available
            if available >= 4 {
                let length = input.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: inputStart, as: UInt32.self)) }
                frameEnd = streamOffset + Int(length)
            }
            if let onInject, available >= InjectRequest.frameLength, frameEnd - streamOffset == InjectRequest.frameLength,
               arrivedFDs.isEmpty, let request = InjectRequest(input, at: inputStart), onInject(self, request)
            {
                advance(InjectRequest.frameLength)
                continue
            }
            let fdCount = arrivedFDs.prefix { $0.end <= frameEnd }.reduce(0) { $0 + $1.fds.count }
            switch decoder.decode(input[inputStart ..< inputEnd], fdCount: fdCount) {
            case .needMoreData:
                return
            case .frame(let frame, let consumed):
                let fds = takeFDs(upTo: streamOffset + consumed)
                advance(consumed)
                onFrame(self, frame, fds)
            case .failure(let error):
                if let skip = error.resumeAfter, skip <= available {
                    for fd in takeFDs(upTo: streamOffset + skip) { Glibc.close(fd) }
                    advance(skip)
                    send(error.errorReply())
                } else if let skip = error.resumeAfter {
                    // The frame is well delimited but not all here yet: wait for the rest to skip it.
                    guard skip <= Int(decoder.limits.maxFrameLength) + Self.initialInputCapacity else {
                        sendAndClose(error.errorReply())
                        return
                    }
                    if inputStart + skip > input.count { compact() }
                    while skip > input.count { growInput() }
                    return
                } else {
                    sendAndClose(error.errorReply())
                    return
                }
            }
        }
        if inputStart == inputEnd {
            inputStart = 0
            inputEnd = 0
        }
    }

    private func advance(_ count: Int) {
        inputStart += count
        streamOffset += count
    }

    /// Removes and returns the descriptors of every recvmsg that ended at or before `end`.
    private func takeFDs(upTo end: Int) -> [Int32] {
        var taken: [Int32] = []
        while let first = arrivedFDs.first, first.end <= end {
            taken += first.fds
            arrivedFDs.removeFirst()
        }
        return taken
    }

    /// Closes the socket and every descriptor not yet handed on.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        poll?.close()
        poll = nil
        for entry in arrivedFDs { entry.fds.forEach { _ = Glibc.close($0) } }
        arrivedFDs.removeAll()
        Glibc.close(fd)
        onClose(self)
    }
}

/// A NO_REPLY INJECT frame (Protocol/PROTOCOL.md, 6.10) as the loop's fast path reads it from a
/// receive buffer: the header says INJECT with NO_REPLY and nothing else, status and the reserved
/// word are zero. Anything else is not one, and goes through the general decoder.
public struct InjectRequest: Hashable, Sendable {
    public static let frameLength = InjectEncoding.injectFrameLength
    public var messageID: MessageID
    public var vm: VMID
    public var device: Wire.DeviceID
    public var event: Wire.EventID

    /// Reads the frame at `offset` of `bytes` if it is one.
    /// - Precondition: `offset + frameLength <= bytes.count`.
    @inline(__always)
    init?(_ bytes: [UInt8], at offset: Int) {
        precondition(offset >= 0 && offset + Self.frameLength <= bytes.count)
        let fields = bytes.withUnsafeBytes { raw in
            // SAFETY: the precondition puts the 32 bytes at `offset` inside `raw`; loadUnaligned
            // needs no alignment.
            func word(_ at: Int) -> UInt32 { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + at, as: UInt32.self)) }
            return (word(0), word(4), word(8), word(12), word(16), word(20), word(24), word(28))
        }
        let (length, opcodeAndFlags, id, status, vm, device, event, reserved) = fields
        let expected = UInt32(Opcode.inject.rawValue) | UInt32(FrameFlags.noReply.rawValue) << 16
        guard length == UInt32(Self.frameLength), opcodeAndFlags == expected, status == 0, reserved == 0 else { return nil }
        messageID = MessageID(id)
        self.vm = VMID(rawValue: vm)
        self.device = Wire.DeviceID(rawValue: device)
        self.event = Wire.EventID(rawValue: event)
    }
}

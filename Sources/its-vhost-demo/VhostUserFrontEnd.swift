/// The front-end side of one vhost-user connection to a virtio-blk back-end: feature negotiation,
/// ownership, the memory table and one virtqueue (QEMU docs/interop/vhost-user.rst).
///
/// Every SET is sent with NEED_REPLY once REPLY_ACK is agreed, so a back-end that refuses a request
/// says so instead of closing the connection later.
import ToolSupport

final class VhostUserFrontEnd {
    private let socket: UnixStream
    /// The disk's capacity in 512-byte sectors (virtio-blk config space offset 0).
    private(set) var capacitySectors: UInt64 = 0

    /// The features the demo acknowledges: virtio 1.x and protocol features, nothing else (no
    /// EVENT_IDX, so the back-end signals after every used-ring update unless told not to).
    static let features = VirtioFeature.version1 | VirtioFeature.protocolFeatures
    static let protocolFeatures = VhostUserProtocolFeature.replyAck | VhostUserProtocolFeature.config

    /// Connects to the back-end's socket; a back-end silent for `timeoutSeconds` fails the request.
    init(path: String, timeoutSeconds: Int) throws(ToolError) {
        socket = try UnixStream(path: path, timeoutSeconds: timeoutSeconds)
    }

    /// Negotiates features, takes ownership, shares guest RAM and sets up virtqueue 0 on `ring`, with
    /// `kick` for the front-end's notifications and `call` for the back-end's. Starting the ring is
    /// left to `enable()`.
    func setUp(ram: GuestRAM, ring: SplitVirtqueue, kick: EventFD, call: EventFD) throws(ToolError) {
        let offeredFeatures = try u64Reply(.getFeatures)
        guard offeredFeatures & Self.features == Self.features else {
            throw ToolError("the back-end offers features 0x\(String(offeredFeatures, radix: 16)), "
                + "without VERSION_1 and PROTOCOL_FEATURES")
        }
        let offeredProtocolFeatures = try u64Reply(.getProtocolFeatures)
        guard offeredProtocolFeatures & Self.protocolFeatures == Self.protocolFeatures else {
            throw ToolError("the back-end offers protocol features 0x\(String(offeredProtocolFeatures, radix: 16)), "
                + "without REPLY_ACK and CONFIG")
        }
        try send(.u64(.setProtocolFeatures, Self.protocolFeatures))
        try send(VhostUserMessage(.setOwner, needReply: true))
        let config = try reply(to: .getConfig(offset: 0, size: 8))
        guard config.count == 20 else { throw ToolError("GET_CONFIG answered \(config.count) bytes, not 20") }
        capacitySectors = loadLittleEndian(config, at: 12, as: UInt64.self)
        try send(.u64(.setFeatures, Self.features))
        try send(.memTable(guestAddress: 0, size: ram.size, userAddress: ram.userAddress(of: 0)), fds: [ram.fd])
        try send(.vringState(.setVringNum, index: 0, value: UInt32(ring.size)))
        try send(.vringState(.setVringBase, index: 0, value: UInt32(ring.nextAvailableIndex)))
        try send(.vringAddress(index: 0, descriptors: ram.userAddress(of: ring.layout.descriptors),
                               used: ram.userAddress(of: ring.layout.used),
                               available: ram.userAddress(of: ring.layout.available)))
        try send(.u64(.setVringKick, 0), fds: [kick.fd])
        try send(.u64(.setVringCall, 0), fds: [call.fd])
    }

    /// SET_VRING_ENABLE(0, 1): with PROTOCOL_FEATURES agreed the ring starts disabled.
    func enable() throws(ToolError) {
        try send(.vringState(.setVringEnable, index: 0, value: 1))
    }

    /// Sends a SET and, when NEED_REPLY is set, checks the back-end's u64 answer is 0.
    private func send(_ message: VhostUserMessage, fds: [Int32] = []) throws(ToolError) {
        try socket.send(message.encoded, fds: fds)
        guard message.flags & VhostUserFlags.needReply != 0 else { return }
        let answer = try receiveReply(for: message.request)
        guard answer.count == 8 else {
            throw ToolError("\(message.request) was acknowledged with \(answer.count) bytes, not 8")
        }
        let status = loadLittleEndian(answer, at: 0, as: UInt64.self)
        guard status == 0 else { throw ToolError("the back-end refused \(message.request) (status \(status))") }
    }

    private func u64Reply(_ request: VhostUserRequest) throws(ToolError) -> UInt64 {
        let payload = try reply(to: VhostUserMessage(request))
        guard payload.count == 8 else { throw ToolError("\(request) answered \(payload.count) bytes, not 8") }
        return loadLittleEndian(payload, at: 0, as: UInt64.self)
    }

    private func reply(to message: VhostUserMessage) throws(ToolError) -> [UInt8] {
        precondition(message.request.repliesNatively, "\(message.request) has no reply")
        try socket.send(message.encoded)
        return try receiveReply(for: message.request)
    }

    /// Reads one reply header and its payload; it must answer `request` and carry REPLY.
    private func receiveReply(for request: VhostUserRequest) throws(ToolError) -> [UInt8] {
        let header = try socket.receive(exactly: VhostUserMessage.headerLength)
        let code = loadLittleEndian(header, at: 0, as: UInt32.self)
        let flags = loadLittleEndian(header, at: 4, as: UInt32.self)
        let size = loadLittleEndian(header, at: 8, as: UInt32.self)
        guard code == request.rawValue else {
            throw ToolError("the back-end answered request \(code) while \(request) (\(request.rawValue)) waited")
        }
        guard flags & VhostUserFlags.reply != 0, flags & 0x3 == VhostUserFlags.version else {
            throw ToolError("the back-end's answer to \(request) has flags 0x\(String(flags, radix: 16))")
        }
        guard size <= 4096 else { throw ToolError("the back-end's answer to \(request) claims \(size) bytes") }
        return size == 0 ? [] : try socket.receive(exactly: Int(size))
    }
}

/// The vhost-user messages the front-end sends (QEMU docs/interop/vhost-user.rst, "Front-end message
/// types"). Integers on this protocol are in the host's byte order; the demo runs on little-endian
/// hosts (x86-64, arm64) and writes them little-endian.
enum VhostUserRequest: UInt32 {
    case getFeatures = 1
    case setFeatures = 2
    case setOwner = 3
    case setMemTable = 5
    case setVringNum = 8
    case setVringAddr = 9
    case setVringBase = 10
    case setVringKick = 12
    case setVringCall = 13
    case getProtocolFeatures = 15
    case setProtocolFeatures = 16
    case setVringEnable = 18
    case getConfig = 24

    /// Whether the back-end answers this request without being asked to (NEED_REPLY).
    var repliesNatively: Bool {
        switch self {
        case .getFeatures, .getProtocolFeatures, .getConfig: true
        default: false
        }
    }
}

/// Header flag bits: version 1 in bits 0-1, REPLY (bit 2, set by the back-end), NEED_REPLY (bit 3).
enum VhostUserFlags {
    static let version: UInt32 = 0x1
    static let reply: UInt32 = 1 << 2
    static let needReply: UInt32 = 1 << 3
}

/// Virtio and vhost-user feature bits the demo negotiates.
enum VirtioFeature {
    /// VHOST_USER_F_PROTOCOL_FEATURES: protocol features exist; rings start disabled.
    static let protocolFeatures: UInt64 = 1 << 30
    /// VIRTIO_F_VERSION_1: little-endian rings, virtio 1.x layouts.
    static let version1: UInt64 = 1 << 32
}

/// Protocol feature bits (VHOST_USER_PROTOCOL_F_*).
enum VhostUserProtocolFeature {
    /// Every SET with NEED_REPLY is answered by a u64, 0 meaning success.
    static let replyAck: UInt64 = 1 << 3
    /// GET_CONFIG and SET_CONFIG.
    static let config: UInt64 = 1 << 9
}

/// A header and payload, encoded for the socket.
struct VhostUserMessage {
    static let headerLength = 12

    var request: VhostUserRequest
    var flags: UInt32
    var payload: [UInt8]

    init(_ request: VhostUserRequest, needReply: Bool = false, payload: [UInt8] = []) {
        self.request = request
        self.flags = VhostUserFlags.version | (needReply ? VhostUserFlags.needReply : 0)
        self.payload = payload
    }

    var encoded: [UInt8] {
        var w = LittleEndianWriter()
        w.u32(request.rawValue)
        w.u32(flags)
        w.u32(UInt32(payload.count))
        return w.bytes + payload
    }

    /// A u64 payload (features, a ring's index and fd flags).
    static func u64(_ request: VhostUserRequest, _ value: UInt64, needReply: Bool = true) -> VhostUserMessage {
        var w = LittleEndianWriter()
        w.u64(value)
        return VhostUserMessage(request, needReply: needReply, payload: w.bytes)
    }

    /// A vring state payload `{u32 index, u32 num}` (SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ENABLE).
    static func vringState(_ request: VhostUserRequest, index: UInt32, value: UInt32) -> VhostUserMessage {
        var w = LittleEndianWriter()
        w.u32(index)
        w.u32(value)
        return VhostUserMessage(request, needReply: true, payload: w.bytes)
    }

    /// SET_VRING_ADDR: `{u32 index, u32 flags, u64 desc, u64 used, u64 avail, u64 log}` in the
    /// front-end's user addresses. The used ring comes before the avail ring.
    static func vringAddress(index: UInt32, descriptors: UInt64, used: UInt64, available: UInt64) -> VhostUserMessage {
        var w = LittleEndianWriter()
        w.u32(index)
        w.u32(0)
        w.u64(descriptors)
        w.u64(used)
        w.u64(available)
        w.u64(0)
        return VhostUserMessage(.setVringAddr, needReply: true, payload: w.bytes)
    }

    /// SET_MEM_TABLE with one region `{gpa, size, user address, mmap offset}`; its fd travels with it.
    static func memTable(guestAddress: UInt64, size: UInt64, userAddress: UInt64) -> VhostUserMessage {
        var w = LittleEndianWriter()
        w.u32(1)
        w.u32(0)
        w.u64(guestAddress)
        w.u64(size)
        w.u64(userAddress)
        w.u64(0)
        return VhostUserMessage(.setMemTable, needReply: true, payload: w.bytes)
    }

    /// GET_CONFIG `{u32 offset, u32 size, u32 flags, u8 payload[size]}`.
    static func getConfig(offset: UInt32, size: UInt32) -> VhostUserMessage {
        var w = LittleEndianWriter()
        w.u32(offset)
        w.u32(size)
        w.u32(0)
        return VhostUserMessage(.getConfig, payload: w.bytes + [UInt8](repeating: 0, count: Int(size)))
    }
}

/// The 64-bit word of an acknowledge slot (Protocol/PROTOCOL.md, section 6.16b): memory a VMM shares
/// with the server, in which the server acknowledges an LPI for an armed vCPU and leaves it to be
/// taken, so that the vCPU's notify eventfd wakeup needs no ACK round trip. Both sides change the
/// word only by atomic compare-and-swap. Layout, little-endian:
///
///     bits  0-31  intid      the LPI acknowledged (DELIVERED), else 0
///     bits 32-39  priority   ARMED: the priority mask (as ICC_PMR_EL1); DELIVERED: the LPI's priority
///     bits 40-55  reserved   0
///     bits 56-59  state      0 IDLE, 1 ARMED, 2 DELIVERED
///     bits 60-62  reserved   0
///     bit  63     more       the server found LPIs deliverable that the slot did not take
public struct AckSlotWord: RawRepresentable, Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }

    public enum State: UInt8, Sendable {
        /// Nothing delivered, and the server may not deliver.
        case idle = 0
        /// The server may acknowledge an LPI above the mask and deliver it here.
        case armed = 1
        /// The server acknowledged `intid`; it waits here to be taken.
        case delivered = 2
    }

    public static let moreBit: UInt64 = 1 << 63
    @usableFromInline static let stateShift: UInt64 = 56
    /// The bits no valid word sets: reserved, or a state value above 2 (checked by `state`).
    @usableFromInline static let reservedBits: UInt64 = 0xFFFF << 40 | 0x7 << 60

    public static let idle = AckSlotWord(rawValue: 0)

    /// ARMED with `priorityMask`: the server may deliver an LPI whose priority is numerically lower.
    @inlinable public static func armed(priorityMask: UInt8) -> AckSlotWord {
        AckSlotWord(rawValue: UInt64(State.armed.rawValue) << stateShift | UInt64(priorityMask) << 32)
    }

    /// DELIVERED: the server acknowledged `intid`, whose priority is `priority`.
    @inlinable public static func delivered(intid: UInt32, priority: UInt8) -> AckSlotWord {
        AckSlotWord(rawValue: UInt64(State.delivered.rawValue) << stateShift | UInt64(priority) << 32 | UInt64(intid))
    }

    /// The state, or nil for a word no side may write (reserved bits, a state above 2, an IDLE or
    /// ARMED word with an INTID, an IDLE word with a priority).
    @inlinable public var state: State? {
        guard rawValue & Self.reservedBits == 0, let state = State(rawValue: UInt8(truncatingIfNeeded: rawValue >> Self.stateShift) & 0xF)
        else { return nil }
        switch state {
        case .idle: return rawValue & 0xFF_FFFF_FFFF == 0 ? state : nil
        case .armed: return intid == 0 ? state : nil
        case .delivered: return state
        }
    }

    @inlinable public var intid: UInt32 { UInt32(truncatingIfNeeded: rawValue) }
    /// ARMED: the priority mask; DELIVERED: the LPI's priority.
    @inlinable public var priority: UInt8 { UInt8(truncatingIfNeeded: rawValue >> 32) }
    @inlinable public var more: Bool { rawValue & Self.moreBit != 0 }
    /// The same word with `more` set.
    @inlinable public var withMore: AckSlotWord { AckSlotWord(rawValue: rawValue | Self.moreBit) }

    public var description: String {
        let flag = more ? "+more" : ""
        switch state {
        case .idle: return "idle" + flag
        case .armed: return "armed(mask \(priority))" + flag
        case .delivered: return "delivered(\(intid), priority \(priority))" + flag
        case nil: return "invalid(0x" + String(rawValue, radix: 16) + ")"
        }
    }
}

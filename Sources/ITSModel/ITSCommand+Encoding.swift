/// The guest side of the command queue: a command's four doublewords, as a driver writes them
/// (IHI 0069, 5.3). `ITSCommand(dw0, dw1, dw2, dw3)` decodes exactly what this encodes; load
/// generators, example front-ends and tests program the ITS with it through guest memory.
extension ITSCommand {
    public var encoded: (UInt64, UInt64, UInt64, UInt64) {
        func deviceWord(_ device: DeviceID) -> UInt64 { UInt64(device.rawValue) << 32 | UInt64(opcode) }
        switch self {
        case let .mapd(device, itt, bits, valid):
            return (deviceWord(device), UInt64(max(1, min(32, bits)) - 1),
                    (valid ? 1 << 63 : 0) | (itt.rawValue & 0x000F_FFFF_FFFF_FF00), 0)
        case let .mapc(collection, rdbase, valid):
            return (UInt64(opcode), 0, (valid ? 1 << 63 : 0) | (rdbase & 0xF_FFFF_FFFF) << 16 | UInt64(collection.rawValue), 0)
        case let .mapti(device, event, intid, collection):
            return (deviceWord(device), UInt64(intid.rawValue) << 32 | UInt64(event.rawValue), UInt64(collection.rawValue), 0)
        case let .mapi(device, event, collection), let .movi(device, event, collection):
            return (deviceWord(device), UInt64(event.rawValue), UInt64(collection.rawValue), 0)
        case let .discard(device, event), let .inv(device, event), let .int(device, event), let .clear(device, event):
            return (deviceWord(device), UInt64(event.rawValue), 0, 0)
        case .invall(let collection):
            return (UInt64(opcode), 0, UInt64(collection.rawValue), 0)
        case .sync(let rdbase):
            return (UInt64(opcode), 0, (rdbase & 0xF_FFFF_FFFF) << 16, 0)
        case let .movall(from, to):
            return (UInt64(opcode), 0, (from & 0xF_FFFF_FFFF) << 16, (to & 0xF_FFFF_FFFF) << 16)
        case .virtual(let opcode), .unknown(let opcode):
            return (UInt64(opcode), 0, 0, 0)
        }
    }
}

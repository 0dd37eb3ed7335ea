import Testing
@testable import ITSModel

/// Encoding a command and decoding its doublewords gives the command back, for every kind.
@Test func commandsRoundTripThroughTheirDoublewords() {
    let commands: [ITSCommand] = [
        .mapd(DeviceID(0xFFFF_FFFF), ittAddress: GuestAddress(0x000F_FFFF_FFFF_FF00), eventIDBits: 32, valid: true),
        .mapd(DeviceID(3), ittAddress: GuestAddress(0x1000), eventIDBits: 1, valid: false),
        .mapc(CollectionID(0xFFFF), rdbase: 0xF_FFFF_FFFF, valid: true),
        .mapti(DeviceID(7), EventID(0xFFFF_FFFF), INTID(0xFFFF_FFFF), CollectionID(9)),
        .mapi(DeviceID(7), EventID(8200), CollectionID(1)),
        .movi(DeviceID(1), EventID(2), CollectionID(3)),
        .discard(DeviceID(1), EventID(2)), .inv(DeviceID(1), EventID(2)), .int(DeviceID(1), EventID(2)),
        .clear(DeviceID(1), EventID(2)), .invall(CollectionID(5)), .sync(rdbase: 63),
        .movall(from: 1, to: 0xF_FFFF_FFFF), .virtual(opcode: 0x2A), .unknown(opcode: 0x77),
    ]
    for command in commands {
        let words = command.encoded
        #expect(ITSCommand(words.0, words.1, words.2, words.3) == command, "\(command)")
    }
}

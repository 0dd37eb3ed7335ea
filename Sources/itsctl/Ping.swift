import ArgumentParser
import ITSClient
import ITSWire

/// `itsctl ping`: HELLO and PING round trips.
struct Ping: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that itsd answers: HELLO, then PING round trips.",
        discussion: "Prints the protocol version, the capabilities and limits HELLO agreed, and each round trip's time.")

    @OptionGroup var options: SocketOptions

    @Option(name: [.customShort("c"), .long], help: "Round trips to make.")
    var count: Int = 1

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        let start = ITSConnection.monotonicNanoseconds()
        let connection = try options.connect(capabilities: .defined)
        let connected = ITSConnection.monotonicNanoseconds()
        let hello = connection.agreed
        Terminal.write("itsd at \(options.socket): protocol \(hello.major).\(hello.minor), capabilities "
            + "\(Self.names(hello.capabilities)), max frame \(hello.limits.maxFrameLength) B, batch "
            + "\(hello.limits.maxBatchEntries), in flight \(hello.limits.maxInFlight); connect+HELLO "
            + "\(Format.duration(Double(connected - start)))\n")
        for sequence in 1 ... count {
            let sent = ITSConnection.monotonicNanoseconds()
            let nonce = UInt64(sequence) &* 0x9E37_79B9_7F4A_7C15
            let echoed = try options.attempt { () throws(ITSClientError) in try connection.ping(nonce: nonce) }
            let elapsed = ITSConnection.monotonicNanoseconds() - sent
            guard echoed == nonce else {
                Terminal.printError("PING \(sequence): itsd echoed another nonce")
                throw ExitCode(Exit.protocolError)
            }
            Terminal.write("ping \(sequence): \(Format.duration(Double(elapsed)))\n")
        }
    }

    static func names(_ capabilities: Capabilities) -> String {
        let named: [(Capabilities, String)] = [(.errorReports, "ERROR_REPORTS"), (.events, "EVENTS"), (.snapshot, "SNAPSHOT")]
        let list = named.filter { capabilities.contains($0.0) }.map(\.1)
        return list.isEmpty ? "none" : list.joined(separator: "|")
    }
}

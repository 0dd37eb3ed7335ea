import ArgumentParser

/// itsctl: the operator's tool for itsd. Each subcommand connects to itsd's Unix socket, says HELLO
/// and does one thing (docs/ITSCTL.md).
@main
struct Itsctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "itsctl",
        abstract: "Inspect and operate itsd, the GICv3 ITS and LPI emulation server.",
        discussion: """
        Every subcommand takes --socket PATH (default: $ITSD_SOCKET, else /run/itsd/itsd.sock as root, \
        else /tmp/itsd-UID.sock, as itsd itself). Colour appears only on a terminal and only when NO_COLOR \
        is unset. Shell completions: itsctl --generate-completion-script bash|zsh|fish.

        Exit codes: 0 success; 1 the server refused the request; 64 bad usage; 65 a snapshot file that \
        is not a valid image; 66 an input file that cannot be read; 67 no such VM or vCPU; 69 no server \
        at the socket; 73 an output file that cannot be created; 74 an I/O error; 76 a protocol error; \
        77 permission denied.
        """,
        subcommands: [Stats.self, Top.self, VMCommand.self, Dump.self, Inject.self, Snapshot.self, Restore.self, Ping.self,
                      Demo.self]
    )
}

// its-bench: benchmark programs of itsd's model and codec. Each subcommand prints a readable table,
// or with --json a single JSON object.
#if canImport(Glibc)
import Glibc
#endif

let arguments = Array(CommandLine.arguments.dropFirst())
let usage = """
    usage: its-bench SUBCOMMAND [--json]
      wire      INJECT_BATCH and INJECT frames decoded per second by ITSWire
    """

switch arguments.first {
case "wire":
    runWireBench(json: arguments.contains("--json"))
default:
    print(usage)
    exit(2)
}

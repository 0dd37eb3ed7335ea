// its-bench: benchmark programs of itsd's model and codec. Each subcommand prints a readable table,
// or with --json a single JSON object.
#if canImport(Glibc)
import Glibc
#endif

let arguments = Array(CommandLine.arguments.dropFirst())
let usage = """
    usage: its-bench SUBCOMMAND [--json]
      lpi-map   the sparse LPI index against Dictionary, a linked list and a memory-access floor
    """

switch arguments.first {
case "lpi-map":
    print("")
default:
    print(usage)
    exit(2)
}

// its-bench: benchmark programs of itsd's model and codec. Each subcommand prints a readable table,
// or with --json a single JSON object.
#if canImport(Glibc)
import Glibc
#endif

enum ITSBench {
    static let usage = """
        usage: its-bench SUBCOMMAND [--json]
          lpi-map   the sparse LPI index against Dictionary, a linked list and a memory-access floor
          wire      INJECT_BATCH and INJECT frames decoded per second by ITSWire
          translate MSIs translated and made pending per second, with and without the translation cache
                    (--profile: only the cached batched run, warm, for callgrind; see TranslateBench.swift)
          cmdq      MAPTI commands processed per second, and INVALL over 65536 LPIs in milliseconds
        """

    static func json(_ value: Double) -> String {
        let scaled = (value * 100).rounded() / 100
        return scaled == scaled.rounded() ? String(Int(scaled)) : String(scaled)
    }

    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let asJSON = arguments.contains("--json")
        let asProfile = arguments.first == "translate" && arguments.contains("--profile")
        let unknown = arguments.dropFirst().filter { $0 != "--json" && !(asProfile && $0 == "--profile") }
        guard unknown.isEmpty else {
            print("its-bench: unknown option \(unknown[0])\n\(usage)")
            exit(2)
        }
        switch arguments.first {
        case "lpi-map":
            LPIMapBench.run(json: asJSON)
        case "wire":
            runWireBench(json: asJSON)
        case "translate":
            TranslateBench.run(json: asJSON, profile: asProfile)
        case "cmdq":
            CommandQueueBench.run(json: asJSON)
        default:
            print(usage)
            exit(arguments.first == nil || arguments.first == "--help" ? 0 : 2)
        }
    }
}

ITSBench.main()

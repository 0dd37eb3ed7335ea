// Just enough JSON for the tools' reports (RFC 8259): objects keep their keys in the order given,
// numbers are formatted the way each report has always printed them.

/// A JSON value to render: the reports build one object and print it.
public indirect enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case int(Int)
    /// Up to three decimals, without a point when integral ("12", "0.25"), null when not finite:
    /// its-load's figures.
    case number(Double)
    /// Exactly `places` decimals ("12.3" for one): its-vhost-demo's latencies.
    case decimal(Double, places: Int)
    case string(String)
    /// Members in this order; the caller keeps the keys unique.
    case object([(String, JSONValue)])

    /// Where the renderer puts spaces: after ": " and ", " (its-load) or nowhere (its-vhost-demo).
    public enum Layout: Sendable {
        case spaced
        case compact
    }
}

extension JSONValue {
    /// The JSON text of this value.
    public func rendered(_ layout: Layout) -> String {
        switch self {
        case .null: "null"
        case .bool(let value): value ? "true" : "false"
        case .int(let value): String(value)
        case .number(let value): Self.format(value)
        case .decimal(let value, let places): value.isFinite ? Self.format(value, places: places) : "null"
        case .string(let value): Self.quoted(value)
        case .object(let members):
            "{" + members.map { key, value in
                Self.quoted(key) + (layout == .spaced ? ": " : ":") + value.rendered(layout)
            }.joined(separator: layout == .spaced ? ", " : ",") + "}"
        }
    }

    /// `value` as `.number` renders it: integral values without a point (below 1e15), others
    /// rounded to three decimals; "null" when not finite.
    public static func format(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
        let scaled = (value * 1000).rounded() / 1000
        return String(scaled)
    }

    /// `value` (finite) rounded to exactly `places` decimals, as `.decimal` renders it and the
    /// demo's summary prints it ("0.5" for 0.46 and one place).
    public static func format(_ value: Double, places: Int) -> String {
        precondition(value.isFinite && (0 ... 9).contains(places), "a finite value and 0 to 9 places")
        var scale = 1
        for _ in 0 ..< places { scale *= 10 }
        let units = Int((value * Double(scale)).rounded())
        let sign = units < 0 ? "-" : ""
        let whole = String(units.magnitude / UInt(scale))
        guard places > 0 else { return sign + whole }
        let fraction = String(units.magnitude % UInt(scale))
        return sign + whole + "." + String(repeating: "0", count: places - fraction.count) + fraction
    }

    /// `text` as a JSON string: quotes, backslashes and control characters escaped (RFC 8259,
    /// section 7), everything else as it is.
    public static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

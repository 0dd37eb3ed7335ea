import ToolSupport

/// Number and text formatting shared by the subcommands.
enum Format {
    /// A duration in nanoseconds as "850 ns", "12.3 µs", "4.56 ms" or "1.20 s".
    static func duration(_ nanoseconds: Double) -> String {
        if nanoseconds.isInfinite { return "inf" }
        if nanoseconds < 1_000 { return "\(Int(nanoseconds)) ns" }
        if nanoseconds < 1_000_000 { return fixed(nanoseconds / 1_000, 1) + " µs" }
        if nanoseconds < 1_000_000_000 { return fixed(nanoseconds / 1_000_000, 2) + " ms" }
        return fixed(nanoseconds / 1_000_000_000, 2) + " s"
    }

    /// `value` with `digits` digits after the point, without Foundation.
    static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return value.isNaN ? "nan" : (value > 0 ? "inf" : "-inf") }
        var scale = 1.0
        for _ in 0 ..< digits { scale *= 10 }
        let negative = value < 0
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9e18 else { return String(value) }
        let whole = UInt64(scaled)
        let integer = whole / UInt64(scale)
        var text = String(integer)
        if digits > 0 {
            let fraction = String(whole % UInt64(scale))
            text += "." + String(repeating: "0", count: digits - fraction.count) + fraction
        }
        return negative && scaled != 0 ? "-" + text : text
    }

    /// A rate or count in at most 6 characters: 999, 12.3k, 4.56M, 1.20G.
    static func compact(_ value: Double) -> String {
        let magnitude = abs(value)
        if magnitude < 1_000 { return magnitude < 10 && value != value.rounded() ? fixed(value, 1) : String(Int(value.rounded())) }
        if magnitude < 1_000_000 { return fixed(value / 1_000, magnitude < 100_000 ? 1 : 0) + "k" }
        if magnitude < 1_000_000_000 { return fixed(value / 1_000_000, magnitude < 100_000_000 ? 1 : 0) + "M" }
        return fixed(value / 1_000_000_000, 1) + "G"
    }

    /// A number for machine output: an integer when it is one, otherwise 3 decimals.
    static func plain(_ value: Double) -> String {
        if value.isFinite, value == value.rounded(), abs(value) < 9e15 { return String(Int64(value)) }
        return fixed(value, 3)
    }
}

/// Columns of text, left-aligned first column, right-aligned numbers.
struct TextTable {
    var header: [String]
    var rows: [[String]] = []

    init(_ header: [String]) { self.header = header }

    mutating func add(_ row: [String]) { rows.append(row) }

    /// The widths of the columns over the header and every row.
    var widths: [Int] {
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
        }
        return widths
    }

    static func line(_ cells: [String], widths: [Int]) -> String {
        var text = ""
        for (index, cell) in cells.enumerated() {
            let width = index < widths.count ? widths[index] : cell.count
            let pad = String(repeating: " ", count: max(0, width - cell.count))
            text += index == 0 ? cell + pad : "  " + pad + cell
        }
        return text
    }

    var text: String {
        let widths = widths
        var text = Self.line(header, widths: widths) + "\n"
        for row in rows { text += Self.line(row, widths: widths) + "\n" }
        return text
    }
}

/// A JSON object written in insertion order, without Foundation.
struct JSONObject {
    private var members: [String] = []

    mutating func add(_ key: String, _ value: some BinaryInteger) { members.append("\(Self.quote(key)):\(value)") }
    mutating func add(_ key: String, _ value: Double) {
        members.append("\(Self.quote(key)):" + (value.isFinite ? Format.plain(value) : "null"))
    }
    mutating func add(_ key: String, _ value: String) { members.append("\(Self.quote(key)):\(Self.quote(value))") }
    mutating func add(_ key: String, _ value: Bool) { members.append("\(Self.quote(key)):\(value)") }
    mutating func addNull(_ key: String) { members.append("\(Self.quote(key)):null") }
    /// `value` is JSON text already (an object or an array).
    mutating func add(_ key: String, raw value: String) { members.append("\(Self.quote(key)):\(value)") }

    var text: String { "{" + members.joined(separator: ",") + "}" }

    static func array(_ elements: [String]) -> String { "[" + elements.joined(separator: ",") + "]" }

    /// A JSON string literal (ToolSupport's, shared with its-load and its-vhost-demo).
    static func quote(_ text: String) -> String { JSONValue.quoted(text) }
}

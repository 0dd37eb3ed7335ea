import Foundation

/// Parsed JSON for checking itsctl's output, by Foundation's parser (an independent one).
struct JSONValue {
    let raw: Any

    static func parse(_ text: String) -> JSONValue? {
        guard let raw = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else { return nil }
        return JSONValue(raw: raw)
    }

    subscript(key: String) -> JSONValue? {
        (raw as? [String: Any])?[key].map(JSONValue.init)
    }

    subscript(index: Int) -> JSONValue? {
        guard let array = raw as? [Any], array.indices.contains(index) else { return nil }
        return JSONValue(raw: array[index])
    }

    var number: Double? { (raw as? NSNumber)?.doubleValue }
    var string: String? { raw as? String }
    var bool: Bool? { raw as? Bool }
    var array: [JSONValue]? { (raw as? [Any])?.map(JSONValue.init) }
    var keys: [String]? { (raw as? [String: Any]).map { Array($0.keys) } }
    var isNull: Bool { raw is NSNull }
}

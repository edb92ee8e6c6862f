import Foundation

/// Writes a `JSONValue` as block-style YAML that reads like a hand-written manifest: numbers in
/// their shortest form (`0.0001`, not `1e-04`), strings quoted only when YAML would otherwise
/// read them as something else, lists of scalars inline.
enum YAMLWriter {
    static func write(_ value: JSONValue) -> String {
        var out = ""
        if case let .object(pairs) = value { writeMap(pairs, indent: 0, into: &out) } else { out = scalar(value) + "\n" }
        return out
    }

    static func writeMap(_ pairs: [(String, JSONValue)], indent: Int, into out: inout String) {
        let pad = String(repeating: "  ", count: indent)
        for (k, v) in pairs {
            switch v {
            case let .object(inner) where inner.count == 1 && isScalar(inner[0].1):
                // One-entry mappings (input sources) read best inline: `dataset: {dataset: fm}`.
                out += "\(pad)\(key(k)): {\(key(inner[0].0)): \(scalar(inner[0].1))}\n"
            case let .object(inner) where !inner.isEmpty:
                out += "\(pad)\(key(k)):\n"
                writeMap(inner, indent: indent + 1, into: &out)
            case let .array(items) where items.contains(where: { if case .object = $0 { true } else if case .array = $0 { true } else { false } }):
                out += "\(pad)\(key(k)):\n"
                for item in items { out += "\(pad)  - \(item.compact)\n" }
            default:
                out += "\(pad)\(key(k)): \(scalar(v))\n"
            }
        }
    }

    static func isScalar(_ v: JSONValue) -> Bool {
        switch v {
        case .object, .array: false
        default: true
        }
    }

    static func key(_ k: String) -> String { plainSafe(k) ? k : JSONValue.quote(k) }

    static func scalar(_ v: JSONValue) -> String {
        switch v {
        case .null: "null"
        case let .bool(b): b ? "true" : "false"
        case let .int(i): String(i)
        case let .double(d): number(d)
        case let .string(s): plainSafe(s) ? s : JSONValue.quote(s)
        case let .array(items): "[" + items.map(scalar).joined(separator: ", ") + "]"
        case .object: "{}"
        }
    }

    /// Shortest decimal that reads back as the same Double, always recognizably a float.
    static func number(_ d: Double) -> String {
        guard d.isFinite else { return d.isNaN ? ".nan" : (d > 0 ? ".inf" : "-.inf") }
        if d == d.rounded() && abs(d) < 1e15 { return String(format: "%.1f", d) }
        let s = "\(d)"  // Swift prints the shortest round-tripping form, e.g. 0.0001, 1e-08
        return s
    }

    /// A string YAML reads back as the same string without quotes.
    static func plainSafe(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first else { return false }
        if "-?:,[]{}#&*!|>'\"%@` ".unicodeScalars.contains(first) { return false }
        if s.hasSuffix(" ") || s.contains(": ") || s.contains(" #") || s.contains("\n") || s.contains("\t") { return false }
        let lower = s.lowercased()
        if ["y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"].contains(lower) { return false }
        if Double(s) != nil || Int(s) != nil || s.first!.isNumber { return false }
        return s.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F }
    }
}

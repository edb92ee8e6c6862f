/// Reads typed fields out of a `ConfigNode` tree, collecting every problem (with its field path,
/// line and fix) instead of stopping at the first, and filling defaults for absent fields.
struct ConfigReader {
    var problems: [Problem] = []

    /// The fields of one mapping, with the path used in messages.
    struct Fields {
        var path: String
        var line: Int?
        var values: [String: ConfigNode]

        func has(_ key: String) -> Bool { values[key] != nil && !isNull(values[key]) }
        func path(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
        func isNull(_ n: ConfigNode?) -> Bool { if case .null = n?.kind { true } else { false } }
    }

    mutating func add(_ field: String, _ message: String, fix: String, line: Int?) {
        problems.append(Problem(field: field, message: message, fix: fix, line: line))
    }

    /// The fields of a mapping node at `path`; unknown keys are problems (with a "did you mean").
    /// An absent or null node is an empty mapping, so every field takes its default.
    mutating func fields(_ node: ConfigNode?, at path: String, known: [String]) -> Fields {
        guard let node else { return Fields(path: path, line: nil, values: [:]) }
        switch node.kind {
        case .null: return Fields(path: path, line: node.line, values: [:])
        case let .map(pairs):
            var values: [String: ConfigNode] = [:]
            for (key, value) in pairs {
                if known.contains(key) {
                    values[key] = value
                } else {
                    let field = path.isEmpty ? key : "\(path).\(key)"
                    let hint = ConfigReader.closest(key, in: known).map { "did you mean `\($0)`? " } ?? ""
                    add(field, "unknown field `\(key)`",
                        fix: "\(hint)remove it; the fields allowed \(path.isEmpty ? "at the top level" : "under `\(path)`") are: \(known.joined(separator: ", "))",
                        line: value.line)
                }
            }
            return Fields(path: path, line: node.line, values: values)
        default:
            add(path, "must be a mapping of fields, got \(node.typeName)",
                fix: "write `\(path):` followed by indented `field: value` lines (or remove it to use the defaults)", line: node.line)
            return Fields(path: path, line: node.line, values: [:])
        }
    }

    /// A whole number within `range`.
    mutating func int(_ f: Fields, _ key: String, default def: Int, range: ClosedRange<Int>, fix: String) -> Int {
        guard let node = f.values[key], !f.isNull(node) else { return def }
        let field = f.path(key)
        let value: Int
        switch node.kind {
        case let .int(i): value = i
        case let .double(d) where d == d.rounded() && abs(d) < 9e15: value = Int(d)
        default:
            add(field, "must be a whole number, got \(describe(node))", fix: "write a number such as `\(key): \(def)`; \(fix)", line: node.line)
            return def
        }
        guard range.contains(value) else {
            add(field, "\(value) is out of range \(range.lowerBound)…\(range.upperBound)", fix: fix, line: node.line)
            return def
        }
        return value
    }

    /// A finite number within `range`.
    mutating func double(_ f: Fields, _ key: String, default def: Double, range: ClosedRange<Double>, openLower: Bool = false, fix: String) -> Double {
        guard let node = f.values[key], !f.isNull(node) else { return def }
        let field = f.path(key)
        let value: Double
        switch node.kind {
        case let .int(i): value = Double(i)
        case let .double(d): value = d
        default:
            add(field, "must be a number, got \(describe(node))", fix: "write a number such as `\(key): \(def)`; \(fix)", line: node.line)
            return def
        }
        guard value.isFinite, range.contains(value), !(openLower && value == range.lowerBound) else {
            let lo = openLower ? "(\(range.lowerBound)" : "[\(range.lowerBound)"
            add(field, "\(value) is out of range \(lo), \(range.upperBound)]", fix: fix, line: node.line)
            return def
        }
        return value
    }

    mutating func bool(_ f: Fields, _ key: String, default def: Bool) -> Bool {
        guard let node = f.values[key], !f.isNull(node) else { return def }
        if case let .bool(b) = node.kind { return b }
        add(f.path(key), "must be true or false, got \(describe(node))", fix: "write `\(key): true` or `\(key): false`", line: node.line)
        return def
    }

    /// A string (nil when absent and no default).
    mutating func string(_ f: Fields, _ key: String, default def: String?) -> String? {
        guard let node = f.values[key], !f.isNull(node) else { return def }
        if case let .string(s) = node.kind { return s }
        add(f.path(key), "must be text, got \(describe(node))",
            fix: "write it in quotes, e.g. `\(key): \"\(scalarText(node) ?? "…")\"`", line: node.line)
        return def
    }

    /// One of a fixed set of words.
    mutating func choice(_ f: Fields, _ key: String, default def: String, choices: [String]) -> String {
        guard let node = f.values[key], !f.isNull(node) else { return def }
        guard let s = string(f, key, default: nil) else { return def }
        guard choices.contains(s) else {
            let hint = ConfigReader.closest(s, in: choices).map { "did you mean `\($0)`? " } ?? ""
            add(f.path(key), "`\(s)` is not one of \(choices.joined(separator: ", "))", fix: "\(hint)use one of: \(choices.joined(separator: ", "))", line: node.line)
            return def
        }
        return s
    }

    /// A list of whole numbers, each within `range`.
    mutating func ints(_ f: Fields, _ key: String, default def: [Int], range: ClosedRange<Int>, fix: String) -> [Int] {
        guard let node = f.values[key], !f.isNull(node) else { return def }
        guard case let .list(items) = node.kind else {
            add(f.path(key), "must be a list, got \(describe(node))", fix: "write `\(key): [2, 4]`; \(fix)", line: node.line)
            return def
        }
        var out: [Int] = []
        for (i, item) in items.enumerated() {
            let one = Fields(path: f.path(key), line: item.line, values: ["\(i)": item])
            var sub = ConfigReader()
            let v = sub.int(one, "\(i)", default: Int.min, range: range, fix: fix)
            for p in sub.problems { problems.append(Problem(field: "\(f.path(key))[\(i)]", message: p.message, fix: p.fix, line: p.line)) }
            if v != Int.min { out.append(v) }
        }
        return out
    }

    /// A list of strings.
    mutating func strings(_ f: Fields, _ key: String, default def: [String]) -> [String] {
        guard let node = f.values[key], !f.isNull(node) else { return def }
        guard case let .list(items) = node.kind else {
            add(f.path(key), "must be a list, got \(describe(node))", fix: "write `\(key): [a, b]` or `\(key): []`", line: node.line)
            return def
        }
        var out: [String] = []
        for (i, item) in items.enumerated() {
            if case let .string(s) = item.kind { out.append(s) } else {
                add("\(f.path(key))[\(i)]", "must be text, got \(describe(item))", fix: "write the names as text", line: item.line)
            }
        }
        return out
    }

    func describe(_ node: ConfigNode) -> String {
        if let t = scalarText(node) { return "\(node.typeName) (\(t))" }
        return node.typeName
    }

    func scalarText(_ node: ConfigNode) -> String? {
        switch node.kind {
        case let .string(s): s.count > 40 ? String(s.prefix(40)) + "…" : s
        case let .int(i): String(i)
        case let .double(d): String(d)
        case let .bool(b): String(b)
        default: nil
        }
    }

    /// The known word closest to `word` by edit distance, if close enough to be a typo.
    static func closest(_ word: String, in words: [String]) -> String? {
        let scored = words.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
        guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
        return best.1 <= max(1, min(3, best.0.count / 3)) ? best.0 : nil
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count), cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
}

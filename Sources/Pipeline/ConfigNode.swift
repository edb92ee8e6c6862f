import Foundation
import Yams

/// A parsed manifest before typing: YAML or JSON reduced to one tree whose nodes remember
/// their line, so every problem can say where it is. Parsing is bounded (size, depth, node
/// count) because manifests come from users and must not be able to take the daemon down
/// (a YAML "billion laughs" alias bomb expands to ~10⁹ nodes).
public struct ConfigNode: Sendable {
    public indirect enum Kind: Sendable {
        case null
        case bool(Bool)
        case int(Int)
        case double(Double)
        case string(String)
        case list([ConfigNode])
        case map([(key: String, value: ConfigNode)])
    }

    public var kind: Kind
    /// 1-based source line, when known.
    public var line: Int?

    public init(_ kind: Kind, line: Int? = nil) {
        self.kind = kind
        self.line = line
    }

    /// A name for the node's type in messages ("a number", "a list", ...).
    public var typeName: String {
        switch kind {
        case .null: "null"
        case .bool: "true/false"
        case .int: "an integer"
        case .double: "a number"
        case .string: "a string"
        case .list: "a list"
        case .map: "a mapping"
        }
    }

    /// The value as JSON (maps keep their order).
    public var json: JSONValue {
        switch kind {
        case .null: .null
        case let .bool(b): .bool(b)
        case let .int(i): .int(i)
        case let .double(d): .double(d)
        case let .string(s): .string(s)
        case let .list(items): .array(items.map(\.json))
        case let .map(pairs): .object(pairs.map { ($0.key, $0.value.json) })
        }
    }

    /// Limits on what a manifest may be.
    public struct Limits: Sendable {
        public var maxBytes = 1 << 20
        public var maxDepth = 32
        public var maxNodes = 20_000
        public init() {}
    }

    /// Why a file is not a parsable manifest.
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public var message: String
        public var line: Int?
        public var description: String { line.map { "line \($0): \(message)" } ?? message }
    }

    public enum Syntax: String, Sendable { case yaml, json }

    /// The syntax implied by a file name (`.json` is JSON; `.yaml`/`.yml` YAML).
    public static func syntax(forFileName name: String) -> Syntax? {
        switch (name as NSString).pathExtension.lowercased() {
        case "json": .json
        case "yaml", "yml": .yaml
        default: nil
        }
    }

    /// Parses manifest text. The top level must be a mapping.
    public static func parse(_ bytes: [UInt8], syntax: Syntax, limits: Limits = Limits()) throws -> ConfigNode {
        guard bytes.count <= limits.maxBytes else {
            throw ParseError(message: "the file is \(bytes.count) bytes; manifests are small text files (limit \(limits.maxBytes) bytes)")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ParseError(message: "the file is not UTF-8 text")
        }
        let node: ConfigNode
        switch syntax {
        case .json: node = try JSONParser.parse(bytes, limits: limits)
        case .yaml: node = try parseYAML(text, limits: limits)
        }
        guard case .map = node.kind else {
            throw ParseError(message: "the top level is \(node.typeName), not a mapping of fields (e.g. `stage: pretrain`)", line: node.line)
        }
        return node
    }

    static func parseYAML(_ text: String, limits: Limits) throws -> ConfigNode {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ParseError(message: "not valid YAML: \(yamlMessage(error))")
        } catch {
            throw ParseError(message: "not valid YAML: \(error)")
        }
        guard let root else { throw ParseError(message: "the file is empty") }
        var budget = limits.maxNodes
        return try convert(root, depth: 0, limits: limits, budget: &budget)
    }

    static func yamlMessage(_ error: YamlError) -> String {
        // YamlError's description embeds the whole document; keep the first line with the position.
        String(describing: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
    }

    static func convert(_ node: Node, depth: Int, limits: Limits, budget: inout Int) throws -> ConfigNode {
        let line = node.mark?.line
        budget -= 1
        guard budget >= 0 else {
            throw ParseError(message: "more than \(limits.maxNodes) values (YAML aliases expanding?); manifests are small", line: line)
        }
        guard depth <= limits.maxDepth else { throw ParseError(message: "nested deeper than \(limits.maxDepth) levels", line: line) }
        switch node {
        case let .scalar(scalar):
            let tag = Tag.Name(rawValue: node.tag.description)
            if tag == .null { return ConfigNode(.null, line: line) }
            if tag == .bool, let b = node.bool { return ConfigNode(.bool(b), line: line) }
            if tag == .int {
                guard let i = node.int else { throw ParseError(message: "integer \(scalar.string) is out of range", line: line) }
                return ConfigNode(.int(i), line: line)
            }
            if tag == .float, let d = node.float { return ConfigNode(.double(d), line: line) }
            return ConfigNode(.string(scalar.string), line: line)
        case let .sequence(seq):
            var items: [ConfigNode] = []
            for item in seq { items.append(try convert(item, depth: depth + 1, limits: limits, budget: &budget)) }
            return ConfigNode(.list(items), line: line)
        case let .mapping(map):
            var pairs: [(key: String, value: ConfigNode)] = []
            var seen = Set<String>()
            for (k, v) in map {
                guard case let .scalar(ks) = k else {
                    throw ParseError(message: "a mapping key is not a plain name", line: k.mark?.line ?? line)
                }
                guard seen.insert(ks.string).inserted else {
                    throw ParseError(message: "field `\(ks.string)` appears twice; keep one", line: k.mark?.line ?? line)
                }
                pairs.append((ks.string, try convert(v, depth: depth + 1, limits: limits, budget: &budget)))
            }
            return ConfigNode(.map(pairs), line: line)
        case .alias:
            throw ParseError(message: "unresolved YAML alias", line: line)
        }
    }
}

/// A small strict JSON parser (RFC 8259) that keeps key order and line numbers, and refuses
/// duplicate keys, which Foundation's parser silently merges.
enum JSONParser {
    static func parse(_ bytes: [UInt8], limits: ConfigNode.Limits = ConfigNode.Limits()) throws -> ConfigNode {
        var p = State(bytes: bytes, limits: limits)
        p.skipSpace()
        let node = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == bytes.count else { throw p.fail("unexpected text after the JSON value") }
        return node
    }

    struct State {
        let bytes: [UInt8]
        let limits: ConfigNode.Limits
        var i = 0
        var line = 1
        var nodes = 0

        init(bytes: [UInt8], limits: ConfigNode.Limits) {
            self.bytes = bytes
            self.limits = limits
        }

        func fail(_ message: String) -> ConfigNode.ParseError {
            ConfigNode.ParseError(message: "not valid JSON: \(message)", line: line)
        }

        mutating func skipSpace() {
            while i < bytes.count {
                switch bytes[i] {
                case 0x20, 0x09, 0x0D: i += 1
                case 0x0A: i += 1; line += 1
                default: return
                }
            }
        }

        mutating func expect(_ literal: String) throws {
            let l = Array(literal.utf8)
            guard i + l.count <= bytes.count, Array(bytes[i..<(i + l.count)]) == l else { throw fail("expected `\(literal)`") }
            i += l.count
        }

        mutating func value(depth: Int) throws -> ConfigNode {
            nodes += 1
            guard nodes <= limits.maxNodes else { throw fail("more than \(limits.maxNodes) values") }
            guard depth <= limits.maxDepth else { throw fail("nested deeper than \(limits.maxDepth) levels") }
            guard i < bytes.count else { throw fail("unexpected end of file") }
            let at = line
            switch bytes[i] {
            case UInt8(ascii: "{"):
                i += 1
                var pairs: [(key: String, value: ConfigNode)] = []
                var seen = Set<String>()
                skipSpace()
                if i < bytes.count && bytes[i] == UInt8(ascii: "}") { i += 1; return ConfigNode(.map(pairs), line: at) }
                while true {
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a quoted key") }
                    let key = try string()
                    guard seen.insert(key).inserted else { throw fail("key \"\(key)\" appears twice; keep one") }
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected `:` after key \"\(key)\"") }
                    i += 1
                    skipSpace()
                    pairs.append((key, try value(depth: depth + 1)))
                    skipSpace()
                    guard i < bytes.count else { throw fail("unexpected end of file inside an object") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "}") { i += 1; return ConfigNode(.map(pairs), line: at) }
                    throw fail("expected `,` or `}`")
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [ConfigNode] = []
                skipSpace()
                if i < bytes.count && bytes[i] == UInt8(ascii: "]") { i += 1; return ConfigNode(.list(items), line: at) }
                while true {
                    skipSpace()
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    guard i < bytes.count else { throw fail("unexpected end of file inside a list") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "]") { i += 1; return ConfigNode(.list(items), line: at) }
                    throw fail("expected `,` or `]`")
                }
            case UInt8(ascii: "\""): return ConfigNode(.string(try string()), line: at)
            case UInt8(ascii: "t"): try expect("true"); return ConfigNode(.bool(true), line: at)
            case UInt8(ascii: "f"): try expect("false"); return ConfigNode(.bool(false), line: at)
            case UInt8(ascii: "n"): try expect("null"); return ConfigNode(.null, line: at)
            default: return try number()
            }
        }

        mutating func number() throws -> ConfigNode {
            let start = i
            var isInteger = true
            if i < bytes.count && bytes[i] == UInt8(ascii: "-") { i += 1 }
            while i < bytes.count {
                let c = bytes[i]
                if c >= 0x30 && c <= 0x39 { i += 1; continue }
                if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
                    isInteger = false; i += 1; continue
                }
                break
            }
            let text = String(decoding: bytes[start..<i], as: UTF8.self)
            guard !text.isEmpty, text != "-" else { throw fail("unexpected character") }
            if isInteger {
                guard let v = Int(text) else { throw fail("integer \(text) is out of range") }
                return ConfigNode(.int(v), line: line)
            }
            guard let d = Double(text), d.isFinite else { throw fail("bad number \(text)") }
            return ConfigNode(.double(d), line: line)
        }

        mutating func string() throws -> String {
            i += 1  // opening quote
            var out: [UInt8] = []
            while i < bytes.count {
                let c = bytes[i]
                if c == UInt8(ascii: "\"") { i += 1; return String(decoding: out, as: UTF8.self) }
                if c < 0x20 { throw fail("control character inside a string (escape it)") }
                if c == UInt8(ascii: "\\") {
                    guard i + 1 < bytes.count else { break }
                    let e = bytes[i + 1]
                    i += 2
                    switch e {
                    case UInt8(ascii: "\""): out.append(0x22)
                    case UInt8(ascii: "\\"): out.append(0x5C)
                    case UInt8(ascii: "/"): out.append(0x2F)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var code = try hex4()
                        if (0xD800..<0xDC00).contains(code), i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                            i += 2
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw fail("bad surrogate pair") }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let scalar = Unicode.Scalar(code) else { throw fail("bad \\u escape") }
                        out += Array(String(Character(scalar)).utf8)
                    default: throw fail("bad escape \\\(Character(Unicode.Scalar(e)))")
                    }
                    continue
                }
                out.append(c)
                i += 1
            }
            throw fail("unterminated string")
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16) else {
                throw fail("bad \\u escape")
            }
            i += 4
            return v
        }
    }
}

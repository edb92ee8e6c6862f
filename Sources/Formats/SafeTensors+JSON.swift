/// A strict, small JSON reader for safetensors headers.
///
/// Why not Foundation's `JSONSerialization`: it silently keeps one of two duplicate keys
/// (the format forbids duplicates), turns `true` into the number 1 and `1.5` into a number
/// that `int64Value` truncates (a hostile shape or offset would slip through), loses integers
/// above 2^53, and recurses without a depth limit (a header of 100 MB of `[` would overflow
/// the stack). This reader keeps numbers as their text, keeps object members in order,
/// reports duplicates, and stops at a fixed nesting depth.
enum HeaderJSON {
    indirect enum Value {
        case object([(key: String, value: Value)])
        case array([Value])
        case string(String)
        case number(String)
        case bool(Bool)
        case null

        var kind: String {
            switch self {
            case .object: "an object"
            case .array: "an array"
            case .string: "a string"
            case .number: "a number"
            case .bool: "a boolean"
            case .null: "null"
            }
        }

        /// The value as a non-negative integer: digits only (no sign, fraction or exponent,
        /// as Rust's serde reads a `u64`), at most `limit`.
        func nonNegativeInt(limit: Int) -> Int? {
            guard case .number(let text) = self, !text.isEmpty, text.utf8.count <= 19,
                  text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let v = Int(text), v <= limit else { return nil }
            return v
        }
    }

    struct ParseError: Error {
        var offset: Int
        var message: String
    }

    static let maxDepth = 32

    /// Parses one JSON value that fills `bytes` except for surrounding whitespace.
    static func parse(_ bytes: ArraySlice<UInt8>) throws(ParseError) -> Value {
        var p = Parser(bytes: bytes, i: bytes.startIndex)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == bytes.endIndex else { throw p.error("unexpected \(p.describeHere()) after the end of the JSON object") }
        return v
    }

    struct Parser {
        let bytes: ArraySlice<UInt8>
        var i: Int

        func error(_ message: String) -> ParseError { ParseError(offset: i - bytes.startIndex, message: message) }

        func describeHere() -> String {
            guard i < bytes.endIndex else { return "end of header" }
            let b = bytes[i]
            return (b >= 0x20 && b < 0x7F) ? "'\(Character(Unicode.Scalar(b)))'" : "byte 0x\(Gzip.hex2(b))"
        }

        mutating func skipSpace() {
            while i < bytes.endIndex, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        }

        mutating func expect(_ c: UInt8) throws(ParseError) {
            guard i < bytes.endIndex, bytes[i] == c else {
                throw error("expected '\(Character(Unicode.Scalar(c)))' but found \(describeHere())")
            }
            i += 1
        }

        mutating func value(depth: Int) throws(ParseError) -> Value {
            guard depth <= HeaderJSON.maxDepth else { throw error("nested deeper than \(HeaderJSON.maxDepth) levels") }
            guard i < bytes.endIndex else { throw error("unexpected end of header") }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                i += 1
                var members: [(key: String, value: Value)] = []
                var seen = Set<String>()
                skipSpace()
                if i < bytes.endIndex, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                while true {
                    skipSpace()
                    let keyOffset = i
                    guard i < bytes.endIndex, bytes[i] == UInt8(ascii: "\"") else { throw error("expected a quoted key but found \(describeHere())") }
                    let key = try string()
                    guard seen.insert(key).inserted else {
                        throw ParseError(offset: keyOffset - bytes.startIndex, message: "duplicate key \"\(key)\"")
                    }
                    skipSpace()
                    try expect(UInt8(ascii: ":"))
                    skipSpace()
                    members.append((key, try value(depth: depth + 1)))
                    skipSpace()
                    if i < bytes.endIndex, bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    try expect(UInt8(ascii: "}"))
                    return .object(members)
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [Value] = []
                skipSpace()
                if i < bytes.endIndex, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    skipSpace()
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    if i < bytes.endIndex, bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    try expect(UInt8(ascii: "]"))
                    return .array(items)
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"):
                try literal("true"); return .bool(true)
            case UInt8(ascii: "f"):
                try literal("false"); return .bool(false)
            case UInt8(ascii: "n"):
                try literal("null"); return .null
            case UInt8(ascii: "-"), 0x30...0x39:
                return .number(try number())
            default:
                throw error("unexpected \(describeHere())")
            }
        }

        mutating func literal(_ word: String) throws(ParseError) {
            for c in word.utf8 {
                guard i < bytes.endIndex, bytes[i] == c else { throw error("unexpected \(describeHere()) (expected \(word))") }
                i += 1
            }
        }

        /// The JSON number grammar, kept as text.
        mutating func number() throws(ParseError) -> String {
            let start = i
            func digits(_ p: inout Parser) -> Int {
                let s = p.i
                while p.i < p.bytes.endIndex, p.bytes[p.i] >= 0x30, p.bytes[p.i] <= 0x39 { p.i += 1 }
                return p.i - s
            }
            if bytes[i] == UInt8(ascii: "-") { i += 1 }
            let intStart = i
            let n = digits(&self)
            guard n > 0 else { throw error("a number needs digits") }
            guard !(n > 1 && bytes[intStart] == 0x30) else { throw ParseError(offset: intStart - bytes.startIndex, message: "a number may not have leading zeros") }
            if i < bytes.endIndex, bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard digits(&self) > 0 else { throw error("a number needs digits after '.'") }
            }
            if i < bytes.endIndex, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1
                if i < bytes.endIndex, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                guard digits(&self) > 0 else { throw error("a number needs digits in its exponent") }
            }
            return String(decoding: bytes[start..<i], as: UTF8.self)
        }

        /// A string: escapes decoded, raw control characters refused, UTF-8 checked.
        mutating func string() throws(ParseError) -> String {
            let start = i
            i += 1  // opening quote
            var out: [UInt8] = []
            while true {
                guard i < bytes.endIndex else { throw ParseError(offset: start - bytes.startIndex, message: "string never closed") }
                let b = bytes[i]
                if b == UInt8(ascii: "\"") { i += 1; break }
                if b < 0x20 { throw error("raw control character 0x\(Gzip.hex2(b)) in a string (must be escaped)") }
                if b != UInt8(ascii: "\\") { out.append(b); i += 1; continue }
                i += 1
                guard i < bytes.endIndex else { throw error("unfinished escape") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800 && scalar < 0xDC00 {  // high surrogate: a low one must follow
                        guard i + 1 < bytes.endIndex, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                            throw error("lone UTF-16 surrogate in \\u escape")
                        }
                        i += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw error("invalid UTF-16 surrogate pair in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00 && scalar < 0xE000 {
                        throw error("lone UTF-16 surrogate in \\u escape")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default:
                    throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))'")
                }
            }
            let s = String(decoding: out, as: UTF8.self)
            // Invalid UTF-8 decodes to U+FFFD, which re-encodes differently: catch it that way.
            guard s.utf8.elementsEqual(out) else { throw ParseError(offset: start - bytes.startIndex, message: "string is not valid UTF-8") }
            return s
        }

        mutating func hex4() throws(ParseError) -> UInt32 {
            guard i + 4 <= bytes.endIndex else { throw error("unfinished \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: throw error("invalid hex digit in \\u escape")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }
    }
}

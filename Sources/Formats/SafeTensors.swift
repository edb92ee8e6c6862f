import Foundation
import Tensors

/// The safetensors format (huggingface/safetensors): 8-byte little-endian header length N,
/// N bytes of JSON (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}`),
/// then one contiguous little-endian byte buffer that the offsets index without holes.
///
/// Reading is strict, because these files come from outside (DiT checkpoints converted
/// from PyTorch, files dropped into the inbox): every way a file can be malformed or
/// hostile is an error that names the file and the place, never a crash or a silent guess.
/// Writing copies the reference writer byte for byte in layout (see `serialize`), so the
/// Python `safetensors` package, PyTorch and diffusers load what we write.
public enum SafeTensors {
    /// Element types of the format. Reading passes any of them through as bytes; `floats()`,
    /// `doubles()` and `ints()` convert every one of them.
    public enum DType: String, Sendable, Codable, CaseIterable {
        case bool = "BOOL", u8 = "U8", i8 = "I8", f8e5m2 = "F8_E5M2", f8e4m3 = "F8_E4M3"
        case i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
        case i32 = "I32", u32 = "U32", f32 = "F32"
        case f64 = "F64", i64 = "I64", u64 = "U64"

        /// Bytes per element.
        public var size: Int {
            switch self {
            case .f64, .i64, .u64: 8
            case .f32, .i32, .u32: 4
            case .f16, .bf16, .i16, .u16: 2
            case .u8, .i8, .bool, .f8e5m2, .f8e4m3: 1
            }
        }

        /// Position in the reference implementation's `Dtype` enum (safetensors/src/tensor.rs),
        /// whose descending order its writer lays tensors out in; copying it makes our data
        /// buffer byte-identical to Python's for the same tensors.
        var referenceOrder: Int {
            switch self {
            case .bool: 0
            case .u8: 4
            case .i8: 5
            case .f8e5m2: 6
            case .f8e4m3: 7
            case .i16: 9
            case .u16: 10
            case .f16: 11
            case .bf16: 12
            case .i32: 13
            case .u32: 14
            case .f32: 15
            case .f64: 17
            case .i64: 18
            case .u64: 19
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

        /// Number of elements (product of the shape; 1 for a scalar `[]`).
        public var count: Int { shape.reduce(1, *) }

        /// Elements actually present: `count`, unless the entry was built by hand with too few
        /// bytes, in which case the converters stop at the bytes there are instead of reading
        /// past them (entries from `parse` always have exactly `count`).
        var available: Int { min(count, bytes.count / dtype.size) }

        /// The values converted to Float (every dtype; F64 and 64-bit integers are rounded).
        public func floats() -> [Float] {
            let n = available
            return [Float](unsafeUninitializedCapacity: n) { buf, initialized in
                if let base = buf.baseAddress, n > 0 { decode(into: base, count: n) }
                initialized = n
            }
        }

        /// The values as a `Tensor` of this entry's shape, converted to Float32.
        public func tensor() -> Tensor {
            let t = Tensor(shape: shape)
            decode(into: t.data, count: available)
            return t
        }

        /// Writes the first `count` values, converted to Float, to `out`.
        func decode(into out: UnsafeMutablePointer<Float>, count n: Int) {
            guard n > 0 else { return }
            bytes.withUnsafeBytes { raw in
                switch dtype {
                case .f32:
                    #if _endian(little)
                    UnsafeMutableRawPointer(out).copyMemory(from: raw.baseAddress!, byteCount: n * 4)
                    #else
                    for i in 0..<n { out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
                    #endif
                case .f64: for i in 0..<n { out[i] = Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))) }
                case .f16: for i in 0..<n { out[i] = SafeTensors.halfToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
                case .bf16: for i in 0..<n { out[i] = Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) << 16) }
                case .f8e5m2: for i in 0..<n { out[i] = SafeTensors.halfToFloat(UInt16(raw[i]) << 8) }  // E5M2 is the top byte of an F16
                case .f8e4m3: for i in 0..<n { out[i] = SafeTensors.e4m3ToFloat(raw[i]) }
                case .i64: for i in 0..<n { out[i] = Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))) }
                case .u64: for i in 0..<n { out[i] = Float(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))) }
                case .i32: for i in 0..<n { out[i] = Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))) }
                case .u32: for i in 0..<n { out[i] = Float(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
                case .i16: for i in 0..<n { out[i] = Float(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))) }
                case .u16: for i in 0..<n { out[i] = Float(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
                case .i8: for i in 0..<n { out[i] = Float(Int8(bitPattern: raw[i])) }
                case .u8: for i in 0..<n { out[i] = Float(raw[i]) }
                case .bool: for i in 0..<n { out[i] = raw[i] != 0 ? 1 : 0 }
                }
            }
        }

        /// The values as Double (exact for F64 and every type narrower than 53 bits).
        public func doubles() -> [Double] {
            let n = available
            return bytes.withUnsafeBytes { raw -> [Double] in
                switch dtype {
                case .f64: return (0..<n).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
                case .i64: return (0..<n).map { Double(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self))) }
                case .u64: return (0..<n).map { Double(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
                default: return floats().map(Double.init)
                }
            }
        }

        /// The values as Int: exact for the integer types and BOOL; floating-point values are
        /// truncated toward zero, with NaN read as 0 and ±inf or out-of-range values clamped
        /// (a hostile file must not be able to trap the conversion).
        public func ints() -> [Int] {
            let n = available
            return bytes.withUnsafeBytes { raw -> [Int] in
                switch dtype {
                case .i64: return (0..<n).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self))) }
                case .u64: return (0..<n).map { Int(clamping: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
                case .i32: return (0..<n).map { Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))) }
                case .u32: return (0..<n).map { Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
                case .i16: return (0..<n).map { Int(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self))) }
                case .u16: return (0..<n).map { Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
                case .i8: return (0..<n).map { Int(Int8(bitPattern: raw[$0])) }
                case .u8: return (0..<n).map { Int(raw[$0]) }
                case .bool: return (0..<n).map { raw[$0] != 0 ? 1 : 0 }
                case .f64, .f32, .f16, .bf16, .f8e5m2, .f8e4m3:
                    return doubles().map { d in
                        if d.isNaN { return 0 }
                        if d >= 9.223372036854775807e18 { return Int.max }
                        if d <= -9.223372036854775808e18 { return Int.min }
                        return Int(d)
                    }
                }
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

        /// A Float16 entry (IEEE half), rounding each value to nearest, ties to even.
        public static func f16(_ values: [Float], shape: [Int]) -> Entry {
            var bytes = [UInt8](repeating: 0, count: values.count * 2)
            bytes.withUnsafeMutableBytes { raw in
                for (i, v) in values.enumerated() { raw.storeBytes(of: SafeTensors.floatToHalf(v).littleEndian, toByteOffset: i * 2, as: UInt16.self) }
            }
            return Entry(dtype: .f16, shape: shape, bytes: bytes)
        }

        /// A bfloat16 entry (the top 16 bits of a Float32), rounding to nearest, ties to even.
        public static func bf16(_ values: [Float], shape: [Int]) -> Entry {
            var bytes = [UInt8](repeating: 0, count: values.count * 2)
            bytes.withUnsafeMutableBytes { raw in
                for (i, v) in values.enumerated() { raw.storeBytes(of: SafeTensors.floatToBF16(v).littleEndian, toByteOffset: i * 2, as: UInt16.self) }
            }
            return Entry(dtype: .bf16, shape: shape, bytes: bytes)
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

    /// Why a file could not be read or written.
    public struct FormatError: Error, CustomStringConvertible, Sendable, Equatable {
        public var file: String
        public var reason: String
        public var description: String { "safetensors file \(file): \(reason)" }
    }

    /// The reference loader's `MAX_HEADER_SIZE`.
    static let maxHeaderBytes = 100_000_000
    /// The JSON schema's cap on shape entries and offsets.
    static let maxDimension = (1 << 48) - 1

    /// The largest file `read` loads by default: half the machine's memory. The whole file is
    /// held in memory, so a larger one (a stray or hostile file) would end in the OOM killer
    /// instead of an error.
    public static var defaultMaxFileBytes: Int { Int(clamping: ProcessInfo.processInfo.physicalMemory / 2) }

    /// Reads and validates a file (see `parse`), refusing one over `maxBytes` before reading.
    public static func read(contentsOf path: String, maxBytes: Int = defaultMaxFileBytes) throws -> File {
        let bytes: [UInt8]
        do { bytes = try DataFile.bytes(atPath: path, maxBytes: maxBytes) } catch let e as DataFileError {
            throw FormatError(file: path, reason: e.reason + (e.hint.map { " (\($0))" } ?? ""))
        }
        return try parse(bytes, name: path)
    }

    /// Parses a file's bytes, refusing anything malformed: a header length past the end, a
    /// header that is not a JSON object (or is invalid UTF-8, or nests absurdly deep),
    /// duplicate keys, unknown dtypes, dimensions that are not non-negative integers, shapes
    /// whose element count overflows, offsets out of range, overlapping or leaving holes, a
    /// byte count that does not match the shape, and `__metadata__` that is not strings.
    /// Errors give the byte offset in the file where the header's problem is.
    public static func parse(_ bytes: [UInt8], name: String) throws -> File {
        func fail(_ reason: String) -> FormatError { FormatError(file: name, reason: reason) }
        guard bytes.count >= 8 else {
            throw fail("only \(bytes.count) bytes; a safetensors file starts with an 8-byte header length (empty or truncated file)")
        }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard n <= UInt64(maxHeaderBytes) else {
            throw fail("header length \(n) (bytes 0-7) exceeds the format's 100,000,000-byte limit; this is not a safetensors file or it is damaged")
        }
        guard n <= UInt64(bytes.count - 8) else {
            throw fail("header length \(n) (bytes 0-7) runs past the end of the \(bytes.count)-byte file; the file is truncated or not safetensors")
        }
        let headerEnd = 8 + Int(n)
        guard n >= 2, bytes[8] == UInt8(ascii: "{") else { throw fail("the header (byte 8) does not start with '{'; this is not a safetensors file") }

        let header: [(key: String, value: HeaderJSON.Value)]
        do {
            guard case .object(let members) = try HeaderJSON.parse(bytes[8..<headerEnd]) else {
                throw fail("the header is not a JSON object")
            }
            header = members
        } catch let e as HeaderJSON.ParseError {
            throw fail("header JSON, byte \(8 + e.offset) of the file: \(e.message)")
        }

        let bufferLength = bytes.count - headerEnd
        var file = File()
        var spans: [(begin: Int, end: Int, name: String)] = []
        for (key, value) in header {
            if key == "__metadata__" {
                guard case .object(let meta) = value else { throw fail("__metadata__ is \(value.kind); it must be an object of strings") }
                for (mk, mv) in meta {
                    guard case .string(let s) = mv else {
                        throw fail("__metadata__[\"\(mk)\"] is \(mv.kind); metadata values must be strings (the format allows no other JSON)")
                    }
                    file.metadata[mk] = s
                }
                continue
            }
            guard case .object(let fields) = value else { throw fail("entry \"\(key)\" is \(value.kind), not an object") }
            func field(_ f: String) -> HeaderJSON.Value? { fields.first { $0.key == f }?.value }
            guard case .string(let dtypeName)? = field("dtype") else { throw fail("entry \"\(key)\" has no dtype string") }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw fail("entry \"\(key)\" has unsupported dtype \"\(dtypeName)\" (supported: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard case .array(let dims)? = field("shape") else { throw fail("entry \"\(key)\" has no shape list") }
            var shape: [Int] = []
            var elements = 1
            for d in dims {
                guard let dim = d.nonNegativeInt(limit: maxDimension) else {
                    throw fail("entry \"\(key)\": shape entry \(describe(d)) is not an integer in 0...\(maxDimension)")
                }
                let (p, overflow) = elements.multipliedReportingOverflow(by: dim)
                guard !overflow, p <= maxDimension else { throw fail("entry \"\(key)\": shape \(shape + [dim]) has too many elements") }
                elements = p
                shape.append(dim)
            }
            guard case .array(let offs)? = field("data_offsets"), offs.count == 2,
                  let b = offs[0].nonNegativeInt(limit: maxDimension), let e = offs[1].nonNegativeInt(limit: maxDimension) else {
                throw fail("entry \"\(key)\" needs data_offsets [begin, end] of two non-negative integers")
            }
            guard b <= e, e <= bufferLength else {
                throw fail("entry \"\(key)\" has data_offsets [\(b), \(e)] outside the \(bufferLength)-byte data buffer (truncated file?)")
            }
            let (byteCount, overflow) = elements.multipliedReportingOverflow(by: dtype.size)
            guard !overflow, byteCount == e - b else {
                throw fail("entry \"\(key)\": data_offsets [\(b), \(e)] span \(e - b) bytes, but shape \(shape) of \(dtype.rawValue) needs \(byteCount)")
            }
            spans.append((b, e, key))
            file.tensors[key] = Entry(dtype: dtype, shape: shape, bytes: Array(bytes[(headerEnd + b)..<(headerEnd + e)]))
        }
        spans.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        var previous = ""
        for s in spans {
            guard s.begin == cursor else {
                throw fail(s.begin < cursor
                    ? "entry \"\(s.name)\" (bytes \(s.begin)..<\(s.end)) overlaps entry \"\(previous)\" (ending at \(cursor))"
                    : "bytes \(cursor)..<\(s.begin) of the data buffer, before entry \"\(s.name)\", belong to no tensor (the format allows no holes)")
            }
            cursor = s.end
            previous = s.name
        }
        guard cursor == bufferLength else {
            throw fail("the last \(bufferLength - cursor) bytes of the data buffer belong to no tensor (the format allows no holes)")
        }
        return file
    }

    static func describe(_ v: HeaderJSON.Value) -> String {
        switch v {
        case .number(let t): t
        case .string(let s): "\"\(s)\""
        case .bool(let b): "\(b)"
        default: v.kind
        }
    }

    /// Checks that `file` can be written: every entry's byte count matches its shape and
    /// dtype, shapes are non-negative and fit the format, and no tensor is named
    /// `__metadata__`.
    public static func validate(_ file: File) throws(FormatError) {
        for (name, e) in file.tensors.sorted(by: { $0.key < $1.key }) {
            guard name != "__metadata__" else {
                throw FormatError(file: "(being written)", reason: "a tensor may not be named __metadata__ (the key is reserved for metadata)")
            }
            var elements = 1
            for d in e.shape {
                let (p, overflow) = elements.multipliedReportingOverflow(by: d)
                guard d >= 0, d <= maxDimension, !overflow, p <= maxDimension else {
                    throw FormatError(file: "(being written)", reason: "tensor \"\(name)\" has an invalid shape \(e.shape)")
                }
                elements = p
            }
            guard elements * e.dtype.size == e.bytes.count else {
                throw FormatError(file: "(being written)",
                                  reason: "tensor \"\(name)\" has \(e.bytes.count) bytes, but shape \(e.shape) of \(e.dtype.rawValue) needs \(elements * e.dtype.size)")
            }
        }
    }

    /// Serializes a file as the reference writer does: tensors sorted by dtype (descending in
    /// the reference's enum order, which puts the 8-byte types first, so every tensor is
    /// aligned to its element size) then by name, laid out contiguously, header padded with
    /// spaces to a multiple of 8 (so the data starts 8-byte aligned). `format: pt` is added to the metadata
    /// (transformers' loaders require it) unless present.
    ///
    /// The file must pass `validate` (a mismatched entry is a programming error and stops the
    /// program); `write` validates first and throws instead.
    public static func serialize(_ file: File) -> [UInt8] {
        do throws(FormatError) { try validate(file) } catch { fatalError("SafeTensors.serialize: \(error.reason)") }
        let names = file.tensors.keys.sorted { a, b in
            let ra = file.tensors[a]!.dtype.referenceOrder, rb = file.tensors[b]!.dtype.referenceOrder
            return ra != rb ? ra > rb : a.utf8.lexicographicallyPrecedes(b.utf8)  // bytewise, as Rust compares
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
        do throws(FormatError) { try validate(file) } catch { throw FormatError(file: path, reason: error.reason) }
        try AtomicFile.write(serialize(file), to: path)
    }

    /// `s` as a JSON string literal (quotes, escapes, control characters as \u00xx).
    /// Shared by every JSON writer in the project.
    public static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    out += "\\u00" + Gzip.hex2(UInt8(u.value))
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    // MARK: - 16- and 8-bit floats by bit manipulation (Float16 is missing on macOS x86_64,
    // BFloat16 everywhere; see swift-ground.md §6).

    /// IEEE half bits to Float (exact).
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = UInt32((h >> 10) & 0x1F)
        let mant = UInt32(h & 0x3FF)
        if exp == 0 {
            let v = Float(mant) * 0x1p-24  // zero or subnormal
            return sign != 0 ? -v : v
        }
        if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
        return Float(bitPattern: sign | ((exp + 112) << 23) | (mant << 13))
    }

    /// Float to IEEE half bits, round to nearest, ties to even; overflow gives ±inf, NaN stays NaN.
    static func floatToHalf(_ f: Float) -> UInt16 {
        let x = f.bitPattern
        let sign = UInt16((x >> 16) & 0x8000)
        let exp = Int((x >> 23) & 0xFF)
        let mant = x & 0x7F_FFFF
        if exp == 0xFF { return sign | 0x7C00 | (mant != 0 ? 0x200 | UInt16(mant >> 13) : 0) }
        let e = exp - 127 + 15
        if e >= 0x1F { return sign | 0x7C00 }
        if e <= 0 {
            if e < -10 { return sign }
            let m = mant | 0x80_0000
            let shift = UInt32(14 - e)
            var h = m >> shift
            let rem = m & ((1 << shift) - 1), half = UInt32(1) << (shift - 1)
            if rem > half || (rem == half && (h & 1) == 1) { h += 1 }
            return sign | UInt16(h)
        }
        var h = UInt32(e) << 10 | (mant >> 13)
        let rem = mant & 0x1FFF
        if rem > 0x1000 || (rem == 0x1000 && (h & 1) == 1) { h += 1 }  // a carry may round up to inf, as it should
        return sign | UInt16(h)
    }

    /// Float to bfloat16 bits, round to nearest, ties to even; NaN stays a (quiet) NaN.
    static func floatToBF16(_ f: Float) -> UInt16 {
        let x = f.bitPattern
        if f.isNaN { return UInt16(x >> 16) | 0x40 }
        return UInt16((x + 0x7FFF + ((x >> 16) & 1)) >> 16)
    }

    /// F8_E4M3 (the "fn" variant PyTorch and safetensors use: bias 7, no infinities,
    /// S.1111.111 is NaN) to Float.
    static func e4m3ToFloat(_ b: UInt8) -> Float {
        let negative = b & 0x80 != 0
        let exp = Int((b >> 3) & 0xF)
        let mant = Float(b & 0x7)
        let v: Float
        if exp == 15 && b & 0x7 == 7 { v = .nan }
        else if exp == 0 { v = mant / 8 * 0x1p-6 }
        else { v = (1 + mant / 8) * Float(sign: .plus, exponent: exp - 7, significand: 1) }
        return negative ? -v : v
    }
}

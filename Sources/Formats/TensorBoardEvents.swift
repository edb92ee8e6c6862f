import Foundation

/// TensorBoard event files (`events.out.tfevents.<time>.<host>`), written by hand.
///
/// The file is a sequence of TFRecords: `uint64 length`, `uint32 masked_crc32c(length)`,
/// the bytes, `uint32 masked_crc32c(bytes)`, little-endian. Each record is a serialized
/// `tensorflow.Event` protobuf. We write the few fields TensorBoard reads, by hand, rather
/// than generate swift-protobuf code for two messages: the encoder below is 40 lines, and the
/// field numbers are those of tensorboard/compat/proto/{event,summary,tensor}.proto:
///
///     Event        { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
///     Summary      { repeated Value value = 1; }
///     Value        { string tag = 1; float simple_value = 2; Image image = 4; TensorProto tensor = 8;
///                    SummaryMetadata metadata = 9; }
///     Image        { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4; }
///     TensorProto  { DataType dtype = 1 (DT_STRING = 7); TensorShapeProto tensor_shape = 2; repeated bytes string_val = 8; }
///     SummaryMetadata { PluginData plugin_data = 1; }   PluginData { string plugin_name = 1; }
///
/// Text goes in as the text plugin expects it: a scalar DT_STRING tensor with plugin "text".
/// `Tools/read_tfevents.py` reads our files back with the `tensorboard` package's own reader.
public struct TensorBoardEventWriter {
    public let path: String
    private let handle: FileHandle

    /// Creates `directory` (and parents) and a new event file in it, starting with the
    /// `brain.Event:2` version record TensorBoard looks for.
    /// `suffix` (e.g. the process id) keeps two files started in one second apart.
    public init(directory: String, wallTime: Double = Date().timeIntervalSince1970, host: String = ProcessInfo.processInfo.hostName,
                suffix: String? = nil) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = (directory as NSString).appendingPathComponent("events.out.tfevents.\(Int(wallTime)).\(host)" + (suffix.map { "." + $0 } ?? ""))
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw DataFileError(file: path, reason: "cannot create the TensorBoard event file", hint: "check that the folder is writable")
        }
        handle = h
        var event = ProtoWriter()
        event.double(1, wallTime)
        event.string(3, "brain.Event:2")
        write(event.bytes)
    }

    /// A scalar (loss, learning rate, a metric) at `step`.
    public func scalar(_ tag: String, _ value: Double, step: Int, wallTime: Double = Date().timeIntervalSince1970) {
        var v = ProtoWriter()
        v.string(1, tag)
        v.float(2, Float(value))
        summary(v, step: step, wallTime: wallTime)
    }

    /// An image, already encoded as PNG (TensorBoard's images tab shows it).
    public func image(_ tag: String, png: [UInt8], width: Int, height: Int, channels: Int, step: Int,
                      wallTime: Double = Date().timeIntervalSince1970) {
        var img = ProtoWriter()
        img.varint(1, UInt64(height))
        img.varint(2, UInt64(width))
        img.varint(3, UInt64(channels))
        img.bytes(4, png)
        var v = ProtoWriter()
        v.string(1, tag)
        v.message(4, img)
        summary(v, step: step, wallTime: wallTime)
    }

    /// Text (the text tab renders it as markdown; wrap code in a fenced block).
    public func text(_ tag: String, _ text: String, step: Int, wallTime: Double = Date().timeIntervalSince1970) {
        var tensor = ProtoWriter()
        tensor.varint(1, 7)  // DT_STRING
        tensor.message(2, ProtoWriter())  // a scalar: a shape with no dims
        tensor.bytes(8, Array(text.utf8))
        var plugin = ProtoWriter()
        plugin.string(1, "text")
        var metadata = ProtoWriter()
        metadata.message(1, plugin)
        var v = ProtoWriter()
        v.string(1, tag)
        v.message(8, tensor)
        v.message(9, metadata)
        summary(v, step: step, wallTime: wallTime)
    }

    /// Makes what was written visible to a reader (TensorBoard polls the file).
    public func flush() { try? handle.synchronize() }

    public func close() { try? handle.close() }

    private func summary(_ value: ProtoWriter, step: Int, wallTime: Double) {
        var s = ProtoWriter()
        s.message(1, value)
        var event = ProtoWriter()
        event.double(1, wallTime)
        event.varint(2, UInt64(bitPattern: Int64(step)))
        event.message(5, s)
        write(event.bytes)
    }

    private func write(_ record: [UInt8]) {
        handle.write(Data(TFRecord.frame(record)))
    }
}

/// TFRecord framing: length, its masked CRC-32C, the data, its masked CRC-32C.
public enum TFRecord {
    public static func frame(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 16)
        let length = UInt64(data.count)
        let lengthBytes = (0..<8).map { UInt8(truncatingIfNeeded: length >> (8 * $0)) }
        out += lengthBytes
        out += littleEndian(CRC32C.masked(lengthBytes))
        out += data
        out += littleEndian(CRC32C.masked(data))
        return out
    }

    /// The records of a file, each checked against both CRCs.
    public static func records(_ bytes: [UInt8], path: String = "<bytes>") throws -> [[UInt8]] {
        var out: [[UInt8]] = [], i = 0
        while i < bytes.count {
            guard i + 12 <= bytes.count else { throw corrupt(path, i, "a record header is cut short") }
            let lengthBytes = Array(bytes[i..<(i + 8)])
            let length = lengthBytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
            guard readLE32(bytes, i + 8) == CRC32C.masked(lengthBytes) else { throw corrupt(path, i, "the length's CRC does not match") }
            guard length <= UInt64(bytes.count - i - 16) else { throw corrupt(path, i, "the record runs past the end of the file") }
            let start = i + 12, end = start + Int(length)
            let data = Array(bytes[start..<end])
            guard readLE32(bytes, end) == CRC32C.masked(data) else { throw corrupt(path, i, "the data's CRC does not match") }
            out.append(data)
            i = end + 4
        }
        return out
    }

    static func corrupt(_ path: String, _ offset: Int, _ what: String) -> DataFileError {
        DataFileError(file: path, location: "byte \(offset)", reason: "not a valid TFRecord: \(what)",
                      hint: "the file is truncated or not a TensorBoard event file")
    }

    static func littleEndian(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

    static func readLE32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord uses it.
public enum CRC32C {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// TFRecord's mask: rotate right by 15, add 0xa282ead8.
    public static func masked(_ bytes: [UInt8]) -> UInt32 {
        let c = checksum(bytes)
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }
}

/// The protobuf wire format, for the fields above: varints (wire type 0), 64-bit (1),
/// length-delimited (2) and 32-bit (5).
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func rawVarint(_ v: UInt64) {
        var v = v
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }
    mutating func key(_ field: Int, _ wire: UInt64) { rawVarint(UInt64(field) << 3 | wire) }
    mutating func varint(_ field: Int, _ v: UInt64) { key(field, 0); rawVarint(v) }
    mutating func double(_ field: Int, _ v: Double) {
        key(field, 1)
        let b = v.bitPattern
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: b >> (8 * UInt64(i)))) }
    }
    mutating func float(_ field: Int, _ v: Float) {
        key(field, 5)
        let b = v.bitPattern
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: b >> (8 * UInt32(i)))) }
    }
    mutating func bytes(_ field: Int, _ v: [UInt8]) { key(field, 2); rawVarint(UInt64(v.count)); bytes += v }
    mutating func string(_ field: Int, _ s: String) { bytes(field, Array(s.utf8)) }
    mutating func message(_ field: Int, _ m: ProtoWriter) { bytes(field, m.bytes) }
}

/// A protobuf message decoded into its fields (number → values), for reading our files back.
public struct ProtoMessage {
    public enum Value { case varint(UInt64), fixed64(UInt64), bytes([UInt8]), fixed32(UInt32) }
    public var fields: [Int: [Value]] = [:]

    public init(_ b: [UInt8]) throws {
        var i = 0
        func varint() throws -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard i < b.count, shift < 64 else { throw DataFileError(file: "<protobuf>", reason: "a varint is cut short") }
                let byte = b[i]; i += 1
                v |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { return v }
                shift += 7
            }
        }
        func fixed(_ n: Int) throws -> UInt64 {
            guard i + n <= b.count else { throw DataFileError(file: "<protobuf>", reason: "a fixed field is cut short") }
            var v: UInt64 = 0
            for k in 0..<n { v |= UInt64(b[i + k]) << (8 * UInt64(k)) }
            i += n
            return v
        }
        while i < b.count {
            let key = try varint()
            let field = Int(key >> 3)
            let value: Value
            switch key & 7 {
            case 0: value = .varint(try varint())
            case 1: value = .fixed64(try fixed(8))
            case 2:
                let n = Int(try varint())
                guard n >= 0, i + n <= b.count else { throw DataFileError(file: "<protobuf>", reason: "a length runs past the end") }
                value = .bytes(Array(b[i..<(i + n)])); i += n
            case 5: value = .fixed32(UInt32(try fixed(4)))
            default: throw DataFileError(file: "<protobuf>", reason: "wire type \(key & 7) is not supported")
            }
            fields[field, default: []].append(value)
        }
    }

    public func bytes(_ f: Int) -> [UInt8]? { if case .bytes(let b)? = fields[f]?.first { return b }; return nil }
    public func string(_ f: Int) -> String? { bytes(f).map { String(decoding: $0, as: UTF8.self) } }
    public func varint(_ f: Int) -> UInt64? { if case .varint(let v)? = fields[f]?.first { return v }; return nil }
    public func double(_ f: Int) -> Double? { if case .fixed64(let v)? = fields[f]?.first { return Double(bitPattern: v) }; return nil }
    public func float(_ f: Int) -> Float? { if case .fixed32(let v)? = fields[f]?.first { return Float(bitPattern: v) }; return nil }
    public func messages(_ f: Int) throws -> [ProtoMessage] {
        try (fields[f] ?? []).compactMap { if case .bytes(let b) = $0 { return try ProtoMessage(b) }; return nil }
    }
}

import Formats
import Foundation
import Metrics

/// Reading `.npz` files (`numpy.savez` and `savez_compressed`: a zip of `.npy` entries,
/// stored or deflated), for reference statistics made elsewhere (clean-fid's and
/// pytorch-fid's `mu`/`sigma` layout). Only what statistics need: C-order arrays of
/// little-endian float64/float32/int64 or uint8, `.npy` format 1.0–3.0. Every length is
/// checked against the file, and an entry inflates into at most its declared size.
extension NumpyArchive {
    /// One array read back: its dtype string, shape and the values widened to Double.
    public struct ReadArray: Sendable {
        public var descr: String
        public var shape: [Int]
        public var values: [Double]
    }

    /// The arrays of the `.npz` at `path`, by name (without `.npy`).
    public static func read(contentsOf path: String, maxBytes: Int = 1 << 31) throws(DataFileError) -> [String: ReadArray] {
        let bytes: [UInt8]
        do { bytes = try DataFile.bytes(atPath: path, maxBytes: maxBytes) } catch let e as DataFileError { throw e } catch {
            throw DataFileError(file: path, reason: "cannot be read: \(error)")
        }
        return try parse(bytes, name: path)
    }

    public static func parse(_ bytes: [UInt8], name: String) throws(DataFileError) -> [String: ReadArray] {
        try bytes.withUnsafeBytes { raw in Result { () throws(DataFileError) in try parse(raw, name: name) } }.get()
    }

    static func parse(_ raw: UnsafeRawBufferPointer, name: String) throws(DataFileError) -> [String: ReadArray] {
        func fail(_ at: Int?, _ reason: String, _ hint: String? = "write it with numpy.savez(path, mu=..., sigma=...)") -> DataFileError {
            DataFileError(file: name, location: at.map { "byte \($0)" }, reason: reason, hint: hint)
        }
        func u16(_ p: Int) -> Int { Int(raw[p]) | Int(raw[p + 1]) << 8 }
        func u32(_ p: Int) -> Int { u16(p) | u16(p + 2) << 16 }
        guard raw.count >= 22, u32(0) == 0x0403_4B50 else { throw fail(0, "is not a zip archive, so not an .npz file") }
        var eocd = -1
        var p = raw.count - 22
        while p >= max(0, raw.count - 22 - 65535) { if u32(p) == 0x0605_4B50 { eocd = p; break }; p -= 1 }
        guard eocd >= 0 else { throw fail(nil, "has no end-of-central-directory record (truncated file)") }
        let count = u16(eocd + 10), cdSize = u32(eocd + 12), cdOffset = u32(eocd + 16)
        guard count != 0xFFFF, cdSize != 0xFFFF_FFFF, cdOffset != 0xFFFF_FFFF else { throw fail(eocd, "is a ZIP64 archive (over 4 GiB), larger than any statistics file") }
        guard cdOffset <= raw.count, cdSize <= raw.count - cdOffset, count <= cdSize / 46 else { throw fail(eocd, "its central directory lies outside the file (damaged or truncated)") }
        var out: [String: ReadArray] = [:]
        p = cdOffset
        for _ in 0..<count {
            guard p + 46 <= cdOffset + cdSize, u32(p) == 0x0201_4B50 else { throw fail(p, "a central directory entry is missing or damaged") }
            let flags = u16(p + 8), method = u16(p + 10), csize = u32(p + 20), usize = u32(p + 24)
            let nameLen = u16(p + 28), extraLen = u16(p + 30), commentLen = u16(p + 32), local = u32(p + 42)
            guard p + 46 + nameLen <= raw.count else { throw fail(p, "an entry name runs past the end of the file") }
            let entry = String(decoding: UnsafeRawBufferPointer(rebasing: raw[(p + 46)..<(p + 46 + nameLen)]), as: UTF8.self)
            p += 46 + nameLen + extraLen + commentLen
            guard flags & 1 == 0 else { throw fail(p, "entry \(entry) is encrypted") }
            guard local <= raw.count - 30, u32(local) == 0x0403_4B50 else { throw fail(local, "entry \(entry)'s local header is not where the directory says") }
            let start = local + 30 + u16(local + 26) + u16(local + 28)
            guard start <= raw.count, csize <= raw.count - start else { throw fail(local, "entry \(entry) runs past the end of the file (truncated file)") }
            let data = UnsafeRawBufferPointer(rebasing: raw[start..<(start + csize)])
            let npy: [UInt8]
            switch method {
            case 0:
                guard csize == usize else { throw fail(local, "stored entry \(entry) declares \(usize) bytes but holds \(csize)") }
                npy = [UInt8](data)
            case 8: npy = try Deflate.inflateRaw(data, expectedBytes: usize, name: name, place: "entry \(entry)")
            default: throw fail(local, "entry \(entry) uses compression method \(method); numpy writes stored (0) or deflated (8) entries")
            }
            guard entry.hasSuffix(".npy") else { continue }
            out[String(entry.dropLast(4))] = try array(npy, entry: entry, name: name)
        }
        return out
    }

    /// One `.npy`: magic, version, header dict, C-order data.
    static func array(_ b: [UInt8], entry: String, name: String) throws(DataFileError) -> ReadArray {
        func fail(_ reason: String) -> DataFileError {
            DataFileError(file: name, location: "entry \(entry)", reason: reason, hint: "write it with numpy.savez(path, mu=..., sigma=...)")
        }
        guard b.count >= 10, b[0] == 0x93, b[1...5].elementsEqual("NUMPY".utf8) else { throw fail("is not an .npy array (no \\x93NUMPY magic)") }
        let major = b[6]
        let (headerLength, headerStart): (Int, Int) = major == 1
            ? (Int(b[8]) | Int(b[9]) << 8, 10)
            : (b.count >= 12 ? (Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24, 12) : (-1, 12))
        guard (1...3).contains(major), headerLength >= 0, headerStart + headerLength <= b.count else { throw fail("has a damaged header (version \(major))") }
        let header = String(decoding: b[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        func field(_ key: String) -> String? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            return String(header[r.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
        guard let d = field("descr"), d.hasPrefix("'"), let end = d.dropFirst().firstIndex(of: "'") else { throw fail("has no dtype in its header") }
        let descr = String(d[d.index(after: d.startIndex)..<end])
        guard let f = field("fortran_order"), f.hasPrefix("False") else { throw fail("is in Fortran order; save a C-order array (np.ascontiguousarray)") }
        guard let s = field("shape"), s.hasPrefix("("), let close = s.firstIndex(of: ")") else { throw fail("has no shape in its header") }
        var shape: [Int] = []
        for part in s[s.index(after: s.startIndex)..<close].split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces)
            guard let n = Int(t), n >= 0 else { throw fail("has a shape entry `\(t)` that is not a size") }
            shape.append(n)
        }
        let width: Int
        switch descr {
        case "<f8", "<i8": width = 8
        case "<f4": width = 4
        case "|u1": width = 1
        default: throw fail("has dtype \(descr); statistics are read as little-endian float64 (<f8), float32, int64 or uint8")
        }
        let (n, overflow) = shape.reduce((1, false)) { acc, d in let m = acc.0.multipliedReportingOverflow(by: d); return (m.partialValue, acc.1 || m.overflow) }
        let dataStart = headerStart + headerLength
        guard !overflow, n <= (b.count - dataStart) / width, b.count - dataStart == n * width else {
            throw fail("holds \(b.count - dataStart) data bytes, not the \(n) × \(width) its shape \(shape) needs")
        }
        let values: [Double] = b.withUnsafeBytes { r in
            let base = r.baseAddress! + dataStart
            return (0..<n).map { i in
                switch descr {
                case "<f8": Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))
                case "<i8": Double(Int64(littleEndian: base.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)))
                case "<f4": Double(Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))))
                default: Double(base.load(fromByteOffset: i, as: UInt8.self))
                }
            }
        }
        return ReadArray(descr: descr, shape: shape, values: values)
    }
}

extension NumpyArchive.Array {
    /// A 1-D or N-D float64 array (statistics are written in float64, as numpy makes them).
    public init(name: String, float64 values: [Double], shape: [Int]) {
        precondition(shape.reduce(1, *) == values.count, "\(values.count) values for shape \(shape)")
        self.init(name: name, shape: [values.count], bytes: [UInt8](repeating: 0, count: values.count))
        self.shape = shape
        descr = "<f8"
        bytes = values.withUnsafeBufferPointer { p in [UInt8](UnsafeRawBufferPointer(p)) }  // little-endian hosts only (x86-64, arm64)
    }
}

/// Fréchet statistics as clean-fid and pytorch-fid store them: an `.npz` with `mu` (d) and
/// `sigma` (d × d), float64. The sample count is not part of that layout; it is kept in an
/// extra `count` array (int64, one value) that other tools ignore, and read when present.
extension FrechetStatistics {
    public var npzArchive: [UInt8] {
        NumpyArchive.archive([NumpyArchive.Array(name: "mu", float64: mean, shape: [dimension]),
                              NumpyArchive.Array(name: "sigma", float64: covariance, shape: [dimension, dimension]),
                              NumpyArchive.Array(name: "count", int64: [count])])
    }

    /// Reads `mu` and `sigma` from an `.npz`; `expectedDimension` (the network's feature
    /// width) is checked so that statistics of another network are refused by name.
    public init(npzAt path: String, expectedDimension: Int? = nil) throws(DataFileError) {
        let arrays = try NumpyArchive.read(contentsOf: path)
        let hint = "write it with numpy.savez(path, mu=mu, sigma=sigma): mu of shape (d,), sigma (d, d), as clean-fid and pytorch-fid store statistics"
        guard let mu = arrays["mu"], let sigma = arrays["sigma"] else {
            throw DataFileError(file: path, reason: "has no `mu` and `sigma` arrays (it has: \(arrays.keys.sorted().joined(separator: ", ")))", hint: hint)
        }
        guard mu.shape.count == 1, sigma.shape == [mu.shape[0], mu.shape[0]] else {
            throw DataFileError(file: path, reason: "`mu` has shape \(mu.shape) and `sigma` \(sigma.shape); they must be (d,) and (d, d)", hint: hint)
        }
        if let expectedDimension, mu.shape[0] != expectedDimension {
            throw DataFileError(file: path, reason: "holds \(mu.shape[0])-d statistics, but the network's features are \(expectedDimension)-d",
                                hint: "use statistics of the same network: Inception-v3 pool_3 (2048-d) for fid_inception_v3")
        }
        guard mu.values.allSatisfy(\.isFinite), sigma.values.allSatisfy(\.isFinite) else {
            throw DataFileError(file: path, reason: "`mu` or `sigma` holds NaN or infinite values", hint: hint)
        }
        let n = arrays["count"].flatMap { $0.values.first.map { Int($0) } } ?? 0
        self.init(count: n, dimension: mu.shape[0], mean: mu.values, covariance: sigma.values)
    }
}

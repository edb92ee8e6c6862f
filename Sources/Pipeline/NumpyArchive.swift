import Foundation

/// Writes `.npz` files as `numpy.savez` does: a ZIP archive (stored, no compression) of
/// `.npy` arrays. `samples.npz` holds `arr_0`, uint8 (N, H, W, C), and `arr_1`, int64 (N)
/// class labels: the layout ADM's class-conditional sampling script (`image_sample.py`)
/// writes and its evaluator (`evaluator.py`) reads.
public enum NumpyArchive {
    /// One C-order array: uint8 (`|u1`) or little-endian int64 (`<i8`).
    public struct Array: Sendable {
        public var name: String
        public var shape: [Int]
        public var bytes: [UInt8]
        /// numpy's dtype string.
        public var descr: String

        public init(name: String, shape: [Int], bytes: [UInt8]) {
            precondition(shape.reduce(1, *) == bytes.count, "\(bytes.count) bytes for shape \(shape)")
            self.name = name
            self.shape = shape
            self.bytes = bytes
            descr = "|u1"
        }

        /// A 1-D int64 array (e.g. class labels).
        public init(name: String, int64 values: [Int]) {
            self.name = name
            shape = [values.count]
            bytes = values.flatMap { v in (0..<8).map { UInt8(truncatingIfNeeded: Int64(v) >> (8 * $0)) } }
            descr = "<i8"
        }
    }

    /// The `.npy` (format 1.0) encoding of a C-order array: magic, header length, a
    /// Python-literal header padded with spaces to a multiple of 64 bytes and ending in `\n`.
    public static func npy(shape: [Int], bytes: [UInt8], descr: String = "|u1") -> [UInt8] {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(dims)), }"
        let prefix = 10  // magic (6) + version (2) + header length (2)
        while (prefix + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var out: [UInt8] = [0x93] + Swift.Array("NUMPY".utf8) + [1, 0]
        let n = header.utf8.count
        out += [UInt8(n & 0xFF), UInt8(n >> 8)]
        out += Swift.Array(header.utf8)
        out += bytes
        return out
    }

    /// The whole archive.
    public static func archive(_ arrays: [Array]) -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        func u16(_ v: Int, _ b: inout [UInt8]) { b += [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
        func u32(_ v: UInt32, _ b: inout [UInt8]) { for i in 0..<4 { b.append(UInt8((v >> (8 * UInt32(i))) & 0xFF)) } }
        for a in arrays {
            let name = Swift.Array((a.name + ".npy").utf8)
            let data = npy(shape: a.shape, bytes: a.bytes, descr: a.descr)
            precondition(data.count < 0xFFFF_FFFF, "array \(a.name) is too large for a ZIP32 archive")
            let crc = crc32(data)
            let offset = out.count
            // Local file header: version 2.0, no flags, stored, DOS time/date 1980-01-01.
            u32(0x0403_4B50, &out); u16(20, &out); u16(0, &out); u16(0, &out); u16(0, &out); u16(0x21, &out)
            u32(crc, &out); u32(UInt32(data.count), &out); u32(UInt32(data.count), &out)
            u16(name.count, &out); u16(0, &out)
            out += name
            out += data
            u32(0x0201_4B50, &central); u16(20, &central); u16(20, &central); u16(0, &central); u16(0, &central)
            u16(0, &central); u16(0x21, &central); u32(crc, &central); u32(UInt32(data.count), &central); u32(UInt32(data.count), &central)
            u16(name.count, &central); u16(0, &central); u16(0, &central); u16(0, &central); u16(0, &central)
            u32(0, &central); u32(UInt32(offset), &central)
            central += name
        }
        let centralOffset = out.count
        out += central
        u32(0x0605_4B50, &out); u16(0, &out); u16(0, &out); u16(arrays.count, &out); u16(arrays.count, &out)
        u32(UInt32(central.count), &out); u32(UInt32(centralOffset), &out); u16(0, &out)
        return out
    }

    /// The most data one ZIP32 member can hold (sizes and offsets are 32-bit).
    public static let maxMemberBytes = 0xFFFF_FFFF - 4096

    /// Bytes of an (N, …) uint8 array, or nil when it cannot go into a ZIP32 `.npz`.
    public static func memberBytes(shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o || d < 0 { return nil }
            n = p
        }
        return n <= maxMemberBytes ? n : nil
    }

    /// Builds a one-array archive (`arr_0` as `numpy.savez` names it) from chunks, so the
    /// data is held once, as bytes, while it is made (sampling many images).
    public struct Writer {
        public let shape: [Int]
        let name: [UInt8]
        public private(set) var bytes: [UInt8] = []
        var crc: UInt32 = 0xFFFF_FFFF
        let dataStart: Int
        let expected: Int

        /// nil when the array is too large for a ZIP32 archive (see `memberBytes`).
        public init?(name: String = "arr_0", shape: [Int]) {
            guard let count = NumpyArchive.memberBytes(shape: shape) else { return nil }
            self.shape = shape
            self.name = Swift.Array((name + ".npy").utf8)
            let header = NumpyArchive.npy(shape: shape, bytes: [])
            expected = header.count + count
            bytes.reserveCapacity(30 + self.name.count + expected + 100 + self.name.count)
            bytes += [UInt8](repeating: 0, count: 30) + self.name  // the local header, filled in by `finish`
            dataStart = bytes.count
            append(header)
        }

        /// Appends data bytes (npy header first, then the array in C order).
        public mutating func append(_ chunk: [UInt8]) {
            for b in chunk { crc = NumpyArchive.crcTable[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
            bytes += chunk
        }

        /// The finished archive (the streamed array must be complete), with `extra` arrays
        /// (small ones, e.g. the labels `arr_1`) as further members.
        public mutating func finish(appending extra: [NumpyArchive.Array] = []) -> [UInt8] {
            let size = bytes.count - dataStart
            precondition(size == expected, "npz writer: \(size) bytes of \(expected)")
            func u16(_ v: Int, _ b: inout [UInt8]) { b += [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
            func u32(_ v: UInt32, _ b: inout [UInt8]) { for i in 0..<4 { b.append(UInt8((v >> (8 * UInt32(i))) & 0xFF)) } }
            func localHeader(crc: UInt32, size: Int, name: [UInt8]) -> [UInt8] {
                var h: [UInt8] = []
                u32(0x0403_4B50, &h); u16(20, &h); u16(0, &h); u16(0, &h); u16(0, &h); u16(0x21, &h)
                u32(crc, &h); u32(UInt32(size), &h); u32(UInt32(size), &h)
                u16(name.count, &h); u16(0, &h)
                return h
            }
            var members: [(name: [UInt8], crc: UInt32, size: Int, offset: Int)] = []
            let c = crc ^ 0xFFFF_FFFF
            bytes.replaceSubrange(0..<30, with: localHeader(crc: c, size: size, name: name))
            members.append((name, c, size, 0))
            for a in extra {
                let n = Swift.Array((a.name + ".npy").utf8)
                let data = NumpyArchive.npy(shape: a.shape, bytes: a.bytes, descr: a.descr)
                let crc = NumpyArchive.crc32(data)
                members.append((n, crc, data.count, bytes.count))
                bytes += localHeader(crc: crc, size: data.count, name: n) + n + data
            }
            var central: [UInt8] = []
            for mem in members {
                u32(0x0201_4B50, &central); u16(20, &central); u16(20, &central); u16(0, &central); u16(0, &central)
                u16(0, &central); u16(0x21, &central); u32(mem.crc, &central); u32(UInt32(mem.size), &central); u32(UInt32(mem.size), &central)
                u16(mem.name.count, &central); u16(0, &central); u16(0, &central); u16(0, &central); u16(0, &central)
                u32(0, &central); u32(UInt32(mem.offset), &central)
                central += mem.name
            }
            let centralOffset = bytes.count
            bytes += central
            u32(0x0605_4B50, &bytes); u16(0, &bytes); u16(0, &bytes); u16(members.count, &bytes); u16(members.count, &bytes)
            u32(UInt32(central.count), &bytes); u32(UInt32(centralOffset), &bytes); u16(0, &bytes)
            return bytes
        }
    }

    static let crcTable: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// CRC-32 (IEEE 802.3), as ZIP requires.
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}

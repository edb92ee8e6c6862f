import CJPEGShim

extension ImageCodec {
    /// Decodes through libpng's classic API (see CJPEGShim.h for why not the simplified
    /// one): 1/2/4/8/16-bit gray, gray + alpha, RGB, RGBA, palette, Adam7.
    /// 16-bit samples become round(v · 255 / 65535); palette and tRNS transparency become
    /// an alpha channel (never composited); gAMA/iCCP are ignored, as Pillow ignores them.
    static func decodePNG(_ data: UnsafeBufferPointer<UInt8>, name: String, limits: ImageLimits) throws(ImageError) -> Image {
        guard let reader = lg_png_create(data.baseAddress, data.count) else {
            throw ImageError(file: name, reason: .io("out of memory creating a PNG reader"))
        }
        defer { lg_png_destroy(reader) }
        var info = lg_png_info()
        let status = lg_png_read_header(reader, &info)
        if status != LG_OK { throw pngError(status, reader, name) }
        let width = Int(info.width), height = Int(info.height), channels = Int(info.channels)
        try checkSize(width: width, height: height, channels: channels, limits: limits, name: name)
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        let readStatus = pixels.withUnsafeMutableBufferPointer {
            lg_png_read_pixels(reader, $0.baseAddress, width * channels)
        }
        if readStatus != LG_OK { throw pngError(readStatus, reader, name) }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    private static func pngError(_ status: Int32, _ reader: OpaquePointer, _ name: String) -> ImageError {
        libraryError(status, "libpng: " + String(cString: lg_png_message(reader)), name)
    }

    /// Maps a shim status to a reason.
    static func libraryError(_ status: Int32, _ message: String, _ name: String) -> ImageError {
        switch status {
        case Int32(LG_ERR_TRUNCATED): ImageError(file: name, reason: .truncated(message))
        case Int32(LG_ERR_UNSUPPORTED): ImageError(file: name, reason: .unsupported(message))
        case Int32(LG_ERR_NOMEM): ImageError(file: name, reason: .io("out of memory while decoding"))
        default: ImageError(file: name, reason: .corrupt(message))
        }
    }

    /// Encodes 8-bit pixels (1-4 channels) as a non-interlaced PNG with zlib level
    /// `compressionLevel` (0-9; 6 is zlib's default balance of size and time).
    public static func encodePNG(_ image: Image, compressionLevel: Int = 6) throws(ImageError) -> [UInt8] {
        guard (1...4).contains(image.channels), image.width > 0, image.height > 0 else {
            throw ImageError(file: "<png encoder>", reason: .unsupported("cannot encode \(image.width)×\(image.height)×\(image.channels)"))
        }
        var out: UnsafeMutablePointer<UInt8>? = nil
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = image.pixels.withUnsafeBufferPointer { px in
            message.withUnsafeMutableBufferPointer { msg in
                lg_png_encode(px.baseAddress, UInt32(image.width), UInt32(image.height), Int32(image.channels),
                              image.width * image.channels, Int32(compressionLevel), &out, &size, msg.baseAddress, msg.count)
            }
        }
        guard status == LG_OK, let out else {
            let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw ImageError(file: "<png encoder>", reason: .io("PNG encoding failed: \(text)"))
        }
        defer { lg_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }

    /// Encodes `image` as PNG and writes it to `path` atomically (temporary name + rename).
    public static func writePNG(_ image: Image, to path: String, compressionLevel: Int = 6) throws(ImageError) {
        let bytes: [UInt8]
        do { bytes = try encodePNG(image, compressionLevel: compressionLevel) } catch { throw ImageError(file: path, reason: error.reason) }
        try writeFile(bytes, to: path)
    }
}

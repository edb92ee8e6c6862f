import CJPEGShim

extension ImageCodec {
    /// Decodes baseline and progressive JPEG, gray or YCbCr/RGB, with libjpeg's default
    /// (Pillow's) settings: islow IDCT, fancy upsampling. CMYK and YCCK are refused:
    /// a faithful conversion needs the file's ICC profile, and a naive one gives wrong
    /// colours silently. Any libjpeg warning fails the decode: libjpeg pads a truncated
    /// file with gray and only warns, and pixels it made up must not reach training.
    static func decodeJPEG(_ data: UnsafeBufferPointer<UInt8>, name: String, limits: ImageLimits) throws(ImageError) -> Image {
        guard let reader = lg_jpeg_create(data.baseAddress, data.count, Int32(clamping: max(1, limits.maxJPEGScans))) else {
            throw ImageError(file: name, reason: .io("out of memory creating a JPEG reader"))
        }
        defer { lg_jpeg_destroy(reader) }
        var info = lg_jpeg_info()
        let status = lg_jpeg_read_header(reader, &info)
        if status != LG_OK { throw jpegError(status, reader, name) }
        let width = Int(info.width), height = Int(info.height)
        try checkSize(width: width, height: height, channels: 3, limits: limits, name: name)
        switch info.color_space {
        case Int32(LG_JPEG_GRAY), Int32(LG_JPEG_RGB): break
        case Int32(LG_JPEG_CMYK), Int32(LG_JPEG_YCCK):
            throw ImageError(file: name, reason: .unsupported(
                "\(info.color_space == LG_JPEG_CMYK ? "CMYK" : "YCCK") JPEG (a print colour space); convert it to RGB, e.g. `convert in.jpg -colorspace sRGB out.jpg`"))
        default:
            throw ImageError(file: name, reason: .unsupported("JPEG with \(info.components) colour components"))
        }
        let channels = Int(info.channels)
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        let readStatus = pixels.withUnsafeMutableBufferPointer {
            lg_jpeg_read_pixels(reader, $0.baseAddress, width * channels)
        }
        if readStatus != LG_OK { throw jpegError(readStatus, reader, name) }
        if lg_jpeg_num_warnings(reader) > 0 {
            let text = "libjpeg: " + String(cString: lg_jpeg_message(reader))
            if lg_jpeg_saw_eof(reader) != 0 {
                throw ImageError(file: name, reason: .truncated(text + " (libjpeg would fill the rest with gray)"))
            }
            throw ImageError(file: name, reason: .corrupt(text))
        }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    private static func jpegError(_ status: Int32, _ reader: OpaquePointer, _ name: String) -> ImageError {
        libraryError(status, "libjpeg: " + String(cString: lg_jpeg_message(reader)), name)
    }

    /// Encodes gray (1 channel) or RGB (3 channels) pixels as a JFIF JPEG, 4:2:0 chroma.
    /// Used for fixtures and benchmarks; the daemon's outputs are PNG.
    public static func encodeJPEG(_ image: Image, quality: Int = 90, progressive: Bool = false) throws(ImageError) -> [UInt8] {
        guard image.channels == 1 || image.channels == 3, image.width > 0, image.height > 0 else {
            throw ImageError(file: "<jpeg encoder>", reason: .unsupported("JPEG encodes gray or RGB, not \(image.channels) channels"))
        }
        var out: UnsafeMutablePointer<UInt8>? = nil
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = image.pixels.withUnsafeBufferPointer { px in
            message.withUnsafeMutableBufferPointer { msg in
                lg_jpeg_encode(px.baseAddress, UInt32(image.width), UInt32(image.height), Int32(image.channels),
                               image.width * image.channels, Int32(quality), progressive ? 1 : 0, &out, &size,
                               msg.baseAddress, msg.count)
            }
        }
        guard status == LG_OK, let out else {
            let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw ImageError(file: "<jpeg encoder>", reason: .io("JPEG encoding failed: \(text)"))
        }
        defer { lg_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }
}

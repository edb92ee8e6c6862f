/// A decoded image: 8-bit samples, row-major, channels interleaved.
/// `channels` is 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA).
public struct Image: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * channels, "pixel count does not match \(width)x\(height)x\(channels)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// True when the last channel is alpha (2 or 4 channels).
    public var hasAlpha: Bool { channels == 2 || channels == 4 }
}

/// Limits checked before memory is committed to a file: the declared pixel count is read
/// from the header and refused before any pixel buffer exists (decompression bombs: a
/// 40 KB PNG can declare 100000 × 100000 pixels), and the file size is checked before the
/// file is read.
public struct ImageLimits: Sendable, Equatable, Codable {
    /// Largest width × height accepted (decompression-bomb guard).
    public var maxPixels: Int
    /// Largest file accepted, in bytes (a file is read whole into memory before decoding).
    public var maxFileBytes: Int
    /// Most scans a progressive JPEG may have: each scan re-walks the whole coefficient
    /// buffer, so a small file with thousands of scans is a CPU bomb. Real encoders write
    /// about 10; libjpeg-turbo's tools suggest 500 as a limit.
    public var maxJPEGScans: Int
    public init(maxPixels: Int = 40_000_000, maxFileBytes: Int = 256 << 20, maxJPEGScans: Int = 1000) {
        self.maxPixels = maxPixels
        self.maxFileBytes = maxFileBytes
        self.maxJPEGScans = maxJPEGScans
    }
}

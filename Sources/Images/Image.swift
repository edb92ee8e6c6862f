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
}

/// Limits checked against an image's declared size before any pixel memory is allocated.
public struct ImageLimits: Sendable, Equatable {
    /// Largest width × height accepted (decompression-bomb guard).
    public var maxPixels: Int
    public init(maxPixels: Int = 40_000_000) { self.maxPixels = maxPixels }
}

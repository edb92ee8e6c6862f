import Images

/// Prepared, labelled images in memory: `count` images of `channels × resolution²` bytes,
/// each channel-planar (C, H, W), back to back. Bytes rather than floats: 4× less memory,
/// and [-1, 1] floats are made per batch for a few microseconds per image.
///
/// `ImageFolder` builds one; an importer of another format can build one with `init` and
/// use the same `ImageBatches`.
public struct ImageSet: Sendable, Equatable {
    public let channels: Int
    public let resolution: Int
    public let classes: [String]
    /// Label of image i (an index into `classes`).
    public let labels: [Int]
    public let pixels: [UInt8]

    public init(channels: Int, resolution: Int, classes: [String], labels: [Int], pixels: [UInt8]) {
        precondition(pixels.count == labels.count * channels * resolution * resolution,
                     "\(pixels.count) bytes for \(labels.count) images of \(channels)×\(resolution)²")
        precondition(labels.allSatisfy { $0 >= 0 && $0 < max(classes.count, 1) }, "label outside 0..<\(classes.count)")
        self.channels = channels
        self.resolution = resolution
        self.classes = classes
        self.labels = labels
        self.pixels = pixels
    }

    public var count: Int { labels.count }

    /// FNV-1a (64-bit) of the shape, class names, labels and pixels, in hex: equal keys mean
    /// the same training data, whatever the files' names or times.
    public var contentKey: String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ v: UInt64) { h = (h ^ v) &* 0x100_0000_01b3 }
        mix(UInt64(channels)); mix(UInt64(resolution)); mix(UInt64(count))
        for c in classes { for b in c.utf8 { mix(UInt64(b)) }; mix(0xFF) }
        for l in labels { mix(UInt64(l)) }
        pixels.withUnsafeBytes { raw in
            let words = raw.count / 8
            for i in 0..<words { mix(raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
            for i in (words * 8)..<raw.count { mix(UInt64(raw[i])) }
        }
        return String(h, radix: 16)
    }
    public var bytesPerImage: Int { channels * resolution * resolution }

    /// Image `i` as an interleaved `Image` (for previews and sample grids).
    public func image(at i: Int) -> Image {
        let r2 = resolution * resolution, base = i * bytesPerImage
        var out = [UInt8](repeating: 0, count: bytesPerImage)
        for p in 0..<r2 {
            for k in 0..<channels { out[p * channels + k] = pixels[base + k * r2 + p] }
        }
        return Image(width: resolution, height: resolution, channels: channels, pixels: out)
    }

    /// Writes image `i` as floats in [-1, 1] (`v / 127.5 − 1`, as ADM's loader), (C, H, W),
    /// mirrored left-right when `flip`.
    @inlinable
    public func writeFloats(_ i: Int, flip: Bool, into out: UnsafeMutablePointer<Float>) {
        let r = resolution, n = bytesPerImage
        pixels.withUnsafeBufferPointer { px in
            let src = px.baseAddress! + i * n
            if !flip {
                for p in 0..<n { out[p] = Float(src[p]) / 127.5 - 1 }
            } else {
                for row in 0..<(n / r) {
                    let s = src + row * r, d = out + row * r
                    for x in 0..<r { d[x] = Float(s[r - 1 - x]) / 127.5 - 1 }
                }
            }
        }
    }
}

import Images

/// What happens to an alpha channel when an image is prepared for a model (which has no
/// alpha channel).
public enum AlphaRule: String, Sendable, Codable, CaseIterable {
    /// `c·a + 255·(1 − a)` with `a = alpha / 255`, on the stored (gamma-encoded) values:
    /// what an image viewer on a white page shows. The default, because the colour under a
    /// transparent pixel is undefined in PNG (encoders often leave black or garbage there).
    case compositeOverWhite
    /// Ignore alpha and keep the stored colour, as Pillow's `convert("RGB")` (and so
    /// torchvision's and ADM's loaders) do: matches the reference pipelines bit for bit
    /// on images whose hidden colours are meaningful.
    case drop
}

/// Turns a decoded image of any size and channel layout into the square, fixed-size,
/// 8-bit planar image a model trains on. The rule, in order:
///
/// 1. **Channels** (per pixel, in floating point on the stored 0...255 values):
///    alpha is handled by the `AlphaRule` first; RGB → gray is ITU-R BT.601 luma,
///    `0.299 R + 0.587 G + 0.114 B` (Pillow's `convert("L")` weights); gray → RGB repeats
///    the gray value in all three channels.
/// 2. **Center crop**: the largest centered square, side `S = min(width, height)`, with its
///    corner at `((width − S) / 2, (height − S) / 2)` rounded down: an odd surplus leaves
///    the extra column/row on the right/bottom (ADM's `center_crop_arr` rounds its crop
///    offset down the same way). Cropping before resampling keeps a pixel-exact identity
///    when `S == resolution`, where resize-then-crop could shift by a fraction of a pixel.
/// 3. **Resample** the S×S square to `resolution`², separably, with the same weights on
///    both axes. Downscaling (`S > resolution`, factor `f = S / resolution`): *area
///    average* — output pixel `i` is the mean of source interval `[i·f, (i+1)·f)`, partial
///    pixels weighted by their covered fraction (OpenCV's INTER_AREA). It does not alias,
///    unlike point-sampled bilinear, and for an integer factor it is the plain mean of each
///    f×f block (ADM's repeated BOX halving, for powers of 2).
///    Upscaling (`S < resolution`): *bilinear* at half-pixel centers, `u = (i + ½)·f − ½`,
///    clamped to the edge pixels (Pillow's BILINEAR for enlargement). `S == resolution`:
///    identity.
/// 4. **Round** to the nearest integer in 0...255, stored as UInt8, channel-planar (C, H, W).
///    Scaling to [-1, 1] (`v / 127.5 − 1`, as ADM) happens when batches are made.
///
/// Every step is a convex combination, so no clamping artefacts arise, and each image is
/// processed sequentially by one thread: the result does not depend on the thread count.
public struct ImagePreparation: Sendable, Equatable, Codable {
    /// 1 (gray) or 3 (RGB).
    public var channels: Int
    /// Side of the square output, in pixels.
    public var resolution: Int
    public var alpha: AlphaRule

    public init(channels: Int, resolution: Int, alpha: AlphaRule = .compositeOverWhite) {
        precondition(channels == 1 || channels == 3, "a model image has 1 or 3 channels, not \(channels)")
        precondition(resolution >= 1, "resolution must be positive, got \(resolution)")
        self.channels = channels
        self.resolution = resolution
        self.alpha = alpha
    }

    /// Bytes of one prepared image (channels × resolution²).
    public var byteCount: Int { channels * resolution * resolution }

    /// The prepared image, channel-planar (C, H, W), `byteCount` bytes.
    public func prepare(_ image: Image) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: byteCount)
        out.withUnsafeMutableBufferPointer { prepare(image, into: $0.baseAddress!) }
        return out
    }

    /// Writes the prepared image to `out` (`byteCount` bytes).
    public func prepare(_ image: Image, into out: UnsafeMutablePointer<UInt8>) {
        precondition((1...4).contains(image.channels) && image.width > 0 && image.height > 0, "empty or odd image")
        let side = min(image.width, image.height)
        let x0 = (image.width - side) / 2, y0 = (image.height - side) / 2
        let weights = ResampleWeights(source: side, target: resolution)
        let res = resolution, c = channels

        // Horizontal pass, one source row at a time: convert the row's cropped pixels to
        // `c` float planes, then resample them to `res` columns. rows[y][k][i] holds source
        // row y0 + y, channel k, output column i.
        var row = [Float](repeating: 0, count: c * side)
        var rows = [Float](repeating: 0, count: side * c * res)
        image.pixels.withUnsafeBufferPointer { px in
            row.withUnsafeMutableBufferPointer { row in
                rows.withUnsafeMutableBufferPointer { rows in
                    for y in 0..<side {
                        let src = px.baseAddress! + ((y0 + y) * image.width + x0) * image.channels
                        convertRow(src, count: side, sourceChannels: image.channels, into: row.baseAddress!, side: side)
                        for k in 0..<c {
                            weights.apply(row.baseAddress! + k * side, stride: 1,
                                          into: rows.baseAddress! + (y * c + k) * res, outStride: 1)
                        }
                    }
                    // Vertical pass: column i of channel k runs through rows with stride c·res.
                    var column = [Float](repeating: 0, count: res)
                    column.withUnsafeMutableBufferPointer { column in
                        for k in 0..<c {
                            for i in 0..<res {
                                weights.apply(rows.baseAddress! + k * res + i, stride: c * res,
                                              into: column.baseAddress!, outStride: 1)
                                for j in 0..<res {
                                    let v = (column[j] + 0.5).rounded(.down)
                                    out[(k * res + j) * res + i] = UInt8(min(255, max(0, v)))
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Converts `count` interleaved pixels to `channels` planes of `side` floats.
    @inline(__always)
    private func convertRow(_ src: UnsafePointer<UInt8>, count: Int, sourceChannels sc: Int,
                            into row: UnsafeMutablePointer<Float>, side: Int) {
        let white = alpha == .compositeOverWhite
        for x in 0..<count {
            let p = src + x * sc
            var r: Float, g: Float, b: Float
            switch sc {
            case 1, 2: r = Float(p[0]); g = r; b = r
            default: r = Float(p[0]); g = Float(p[1]); b = Float(p[2])
            }
            if white && (sc == 2 || sc == 4) {
                let a = Float(p[sc - 1]) / 255
                r = r * a + 255 * (1 - a)
                g = g * a + 255 * (1 - a)
                b = b * a + 255 * (1 - a)
            }
            if channels == 1 {
                row[x] = sc <= 2 ? r : 0.299 * r + 0.587 * g + 0.114 * b
            } else {
                row[x] = r
                row[side + x] = g
                row[2 * side + x] = b
            }
        }
    }
}

/// The 1-D resampling weights from `source` to `target` samples (see `ImagePreparation`):
/// for each output index, a first source index and a run of weights summing to 1.
struct ResampleWeights: Sendable {
    let target: Int
    let first: [Int]
    let offsets: [Int]     // weights of output i are values[offsets[i] ..< offsets[i + 1]]
    let values: [Float]

    init(source: Int, target: Int) {
        precondition(source >= 1 && target >= 1)
        self.target = target
        var first = [Int](), offsets = [0], values = [Float]()
        if source >= target {
            // Area average: output i covers [i·f, (i+1)·f) in source pixels.
            let f = Double(source) / Double(target)
            for i in 0..<target {
                let lo = Double(i) * f, hi = i == target - 1 ? Double(source) : Double(i + 1) * f
                let j0 = Int(lo.rounded(.down)), j1 = min(source, Int(hi.rounded(.up)))
                first.append(j0)
                var run = [Double]()
                for j in j0..<j1 { run.append(max(0, min(Double(j + 1), hi) - max(Double(j), lo))) }
                while run.count > 1, run.last! <= 0 { run.removeLast() }
                let total = run.reduce(0, +)
                values += run.map { Float($0 / total) }
                offsets.append(values.count)
            }
        } else {
            // Bilinear at half-pixel centers, clamped to the edges.
            let f = Double(source) / Double(target)
            for i in 0..<target {
                let u = min(max((Double(i) + 0.5) * f - 0.5, 0), Double(source - 1))
                let j0 = Int(u.rounded(.down)), t = u - Double(j0)
                first.append(j0)
                if j0 + 1 < source && t > 0 {
                    values += [Float(1 - t), Float(t)]
                } else {
                    values.append(1)
                }
                offsets.append(values.count)
            }
        }
        self.first = first
        self.offsets = offsets
        self.values = values
    }

    /// out[i·outStride] = Σ_t w(i, t) · src[(first[i] + t)·stride].
    @inline(__always)
    func apply(_ src: UnsafePointer<Float>, stride: Int, into out: UnsafeMutablePointer<Float>, outStride: Int) {
        values.withUnsafeBufferPointer { w in
            for i in 0..<target {
                var sum: Float = 0
                var s = src + first[i] * stride
                for t in offsets[i]..<offsets[i + 1] {
                    sum += w[t] * s.pointee
                    s += stride
                }
                out[i * outStride] = sum
            }
        }
    }
}

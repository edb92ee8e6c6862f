import Images
import Tensors

/// How images become EfficientNet-Lite0 input.
///
/// 1. Images are float tensors (N, C, H, W) in [-1, 1], the range the diffusion models
///    produce and train on (a uint8 pixel p is p/127.5 − 1; `tensor(from:)` does that).
/// 2. Each image is resized to size × size **bilinearly with half-pixel centres and no
///    antialiasing** — exactly `torch.nn.functional.interpolate(mode="bilinear",
///    align_corners=False)`, so the reference script can reproduce it. learngene's images
///    are 28–32 pixels and are only ever upsampled, where antialiasing does nothing.
/// 3. Gray (C = 1) is repeated to three channels.
/// 4. Values are mapped to the TF-Lite weights' normalization, (p − 127)/128 for a pixel p
///    in 0...255 (what the weights were trained with, per the EfficientNet-Lite builder's
///    MEAN_RGB = 127, STDDEV_RGB = 128): x ↦ ((x + 1)·127.5 − 127)/128. Resizing and this
///    affine map commute (bilinear weights sum to 1), so the order does not matter.
public enum ImagePreprocessing {
    /// uint8 images (all the same size, gray or RGB; alpha dropped) → (N, C, H, W) in [-1, 1].
    public static func tensor(from images: [Image]) -> Tensor {
        precondition(!images.isEmpty, "ImagePreprocessing.tensor: no images")
        let w = images[0].width, h = images[0].height
        let c = images[0].channels >= 3 ? 3 : 1
        let t = Tensor(shape: [images.count, c, h, w])
        for (n, img) in images.enumerated() {
            precondition(img.width == w && img.height == h, "ImagePreprocessing.tensor: image \(n) is \(img.width)×\(img.height), not \(w)×\(h)")
            for y in 0..<h { for x in 0..<w { for ch in 0..<c {
                let src = img.channels >= 3 ? ch : 0
                let p = img.pixels[(y * w + x) * img.channels + src]
                t.data[((n * c + ch) * h + y) * w + x] = Float(p) / 127.5 - 1
            } } }
        }
        return t
    }

    /// Images `range` of `images` (N, C, H, W) as the network's NHWC input (count, size, size, 3).
    static func networkInput(_ images: Tensor, range: Range<Int>, size: Int) -> [Float] {
        let c = images.shape[1], h = images.shape[2], w = images.shape[3]
        var out = [Float](repeating: 0, count: range.count * size * size * 3)
        // Source coordinate of output pixel i: (i + 0.5)·in/out − 0.5, clamped at 0 (torch's rule).
        func taps(_ inSize: Int) -> [(Int, Int, Float)] {
            let scale = Float(inSize) / Float(size)
            return (0..<size).map { i in
                let src = max(0, (Float(i) + 0.5) * scale - 0.5)
                let i0 = min(Int(src), inSize - 1)
                let i1 = min(i0 + 1, inSize - 1)
                return (i0, i1, src - Float(i0))
            }
        }
        let ty = taps(h), tx = taps(w)
        for (k, n) in range.enumerated() {
            for ch in 0..<3 {
                let plane = images.data + (n * c + (c == 1 ? 0 : ch)) * h * w
                for oy in 0..<size {
                    let (y0, y1, fy) = ty[oy]
                    for ox in 0..<size {
                        let (x0, x1, fx) = tx[ox]
                        let top = plane[y0 * w + x0] * (1 - fx) + plane[y0 * w + x1] * fx
                        let bottom = plane[y1 * w + x0] * (1 - fx) + plane[y1 * w + x1] * fx
                        let v = top * (1 - fy) + bottom * fy
                        out[((k * size + oy) * size + ox) * 3 + ch] = ((v + 1) * 127.5 - 127) / 128
                    }
                }
            }
        }
        return out
    }
}

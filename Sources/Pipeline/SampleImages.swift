import Images
import Tensors

/// Turning sampled tensors into the files DiT users expect.
public enum SampleImages {
    /// (N, C, H, W) floats in [−1, 1] → uint8 (N, H, W, C), as DiT's `sample_ddp.py`:
    /// `clamp(127.5·x + 128, 0, 255)` then truncation to uint8.
    public static func uint8NHWC(_ x: Tensor) -> [UInt8] {
        let (N, C, H, W) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var out = [UInt8](repeating: 0, count: N * H * W * C)
        for n in 0..<N {
            for c in 0..<C {
                for i in 0..<(H * W) {
                    let v = min(max(127.5 * x.data[((n * C) + c) * H * W + i] + 128, 0), 255)
                    out[(n * H * W + i) * C + c] = UInt8(v)
                }
            }
        }
        return out
    }

    /// A grid of `columns` images per row with `padding` black pixels around each, like
    /// torchvision's `save_image(..., nrow=columns, padding=2)`.
    public static func grid(nhwc: [UInt8], count N: Int, height H: Int, width W: Int, channels C: Int,
                            columns: Int, padding p: Int = 2) -> Image {
        let cols = max(1, min(columns, N)), rows = max(1, (N + cols - 1) / cols)
        let gw = cols * (W + p) + p, gh = rows * (H + p) + p
        var pixels = [UInt8](repeating: 0, count: gw * gh * C)
        for n in 0..<N {
            let x0 = p + (n % cols) * (W + p), y0 = p + (n / cols) * (H + p)
            for y in 0..<H {
                let src = (n * H * W + y * W) * C, dst = ((y0 + y) * gw + x0) * C
                for k in 0..<(W * C) { pixels[dst + k] = nhwc[src + k] }
            }
        }
        return Image(width: gw, height: gh, channels: C, pixels: pixels)
    }
}

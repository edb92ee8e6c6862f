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
}

import Foundation
import Tensors

/// Non-affine LayerNorm (eps 1e-6, biased variance) fused with adaLN's modulate:
/// out[n,t,:] = LN(x[n,t,:]) · (1 + scale[n,:]) + shift[n,:].
/// Caches mean and rstd (N·T each) for the backward pass; the normalized x is recomputed
/// there from them instead of being stored (one fewer (N,T,D) buffer per use).
/// `shift`/`scale` rows are `modStride` floats apart (they are slices of the (N, 6D) adaLN output).
public func layerNormModulateForward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                                     rstd: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                                     shift: UnsafePointer<Float>, scale: UnsafePointer<Float>, modStride: Int,
                                     N: Int, T: Int, D: Int, eps: Float = 1e-6) {
    Parallel.forRanges(N * T, costPerItem: 4 * D) { r in
        for row in r {
            let n = row / T
            let x = inp + row * D, o = out + row * D
            let sh = shift + n * modStride, sc = scale + n * modStride
            let m = rowSum(x, D) / Float(D)
            let v = rowSquaredDeviation(x, mean: m, D) / Float(D)
            let s = 1 / (v + eps).squareRoot()
            mean[row] = m
            rstd[row] = s
            for i in 0..<D { o[i] = (x[i] - m) * s * (1 + sc[i]) + sh[i] }
        }
    }
}

/// Backward of `layerNormModulateForward`:
/// dShift[n] += Σ_t dOut;  dScale[n] += Σ_t dOut·x̂;  dInp += LN backward of dOut·(1 + scale).
/// LN backward (no affine): dx = rstd · (g − mean(g) − x̂ · mean(g·x̂)), g = dOut·(1+scale).
/// Parallel over samples n, so each worker owns its dShift/dScale rows.
public func layerNormModulateBackward(dInp: UnsafeMutablePointer<Float>, dShift: UnsafeMutablePointer<Float>,
                                      dScale: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                                      inp: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                      scale: UnsafePointer<Float>, modStride: Int, N: Int, T: Int, D: Int) {
    Parallel.forRanges(N, costPerItem: 8 * T * D) { r in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * D) { scratch in
            let g = scratch.baseAddress!, xh = g + D
            for n in r {
                let sc = scale + n * modStride, dsh = dShift + n * modStride, dsc = dScale + n * modStride
                for t in 0..<T {
                    let row = n * T + t
                    let x = inp + row * D, dy = dOut + row * D, dx = dInp + row * D
                    let m = mean[row], s = rstd[row]
                    for i in 0..<D {
                        xh[i] = (x[i] - m) * s
                        dsh[i] += dy[i]
                        dsc[i] += dy[i] * xh[i]
                        g[i] = dy[i] * (1 + sc[i])
                    }
                    let gMean = rowSum(g, D) / Float(D)
                    let gxMean = rowDot8(g, xh, D) / Float(D)
                    for i in 0..<D { dx[i] += s * (g[i] - gMean - xh[i] * gxMean) }
                }
            }
        }
    }
}

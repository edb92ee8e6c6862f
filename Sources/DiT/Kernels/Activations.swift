import Foundation
import Tensors

// tanh-approximated GELU, as timm's Mlp with `approx_gelu = nn.GELU(approximate="tanh")`:
// gelu(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
private let geluK: Float = 0.7978845608028654  // √(2/π)

/// out = gelu_tanh(inp), elementwise over `count` values.
public func geluForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    Parallel.forRanges(count, costPerItem: 20) { r in
        for i in r {
            let x = inp[i]
            out[i] = 0.5 * x * (1 + fastTanh(geluK * (x + 0.044715 * x * x * x)))
        }
    }
}

/// dInp += dOut · gelu′(inp)  (or dInp = … with `overwrite`, which also allows dInp == dOut).
public func geluBackward(dInp: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                         count: Int, overwrite: Bool = false) {
    Parallel.forRanges(count, costPerItem: 25) { r in
        for i in r {
            let x = inp[i]
            let th = fastTanh(geluK * (x + 0.044715 * x * x * x))
            let du = geluK * (1 + 3 * 0.044715 * x * x)
            let grad = 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * du
            let d = dOut[i] * grad
            dInp[i] = overwrite ? d : dInp[i] + d
        }
    }
}

/// dGrad *= gelu′(inp), in place (the MLP backward's form; a separate in-place loop lets the
/// compiler vectorize it, which the aliasing `dInp == dOut` call of `geluBackward` prevents).
public func geluBackwardInPlace(_ dGrad: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    Parallel.forRanges(count, costPerItem: 25) { r in
        for i in r {
            let x = inp[i]
            let th = fastTanh(geluK * (x + 0.044715 * x * x * x))
            let du = geluK * (1 + 3 * 0.044715 * x * x)
            dGrad[i] *= 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * du
        }
    }
}

/// out = silu(inp) = x·σ(x).
public func siluForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    for i in 0..<count {
        let x = inp[i]
        out[i] = x / (1 + expf(-x))
    }
}

/// dInp += dOut · σ(x)·(1 + x·(1 − σ(x))).
public func siluBackward(dInp: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    for i in 0..<count {
        let x = inp[i]
        let sg = 1 / (1 + expf(-x))
        dInp[i] += dOut[i] * sg * (1 + x * (1 - sg))
    }
}

/// Gated residual of adaLN-Zero: out[n,t,:] = res[n,t,:] + gate[n,:] ⊙ y[n,t,:].
/// `out` may alias `res` (in-place residual update).
public func gatedResidualForward(out: UnsafeMutablePointer<Float>, res: UnsafePointer<Float>, y: UnsafePointer<Float>,
                                 gate: UnsafePointer<Float>, modStride: Int, N: Int, T: Int, D: Int) {
    Parallel.forRanges(N * T, costPerItem: D) { r in
        for row in r {
            let g = gate + (row / T) * modStride
            let o = out + row * D, a = res + row * D, b = y + row * D
            for i in 0..<D { o[i] = a[i] + g[i] * b[i] }
        }
    }
}

/// Backward of the gated residual: dRes += dOut (done by the caller keeping dOut as the
/// residual gradient), dY = gate ⊙ dOut (overwritten), dGate[n] += Σ_t dOut ⊙ y.
public func gatedResidualBackward(dY: UnsafeMutablePointer<Float>, dGate: UnsafeMutablePointer<Float>,
                                  dOut: UnsafePointer<Float>, y: UnsafePointer<Float>, gate: UnsafePointer<Float>,
                                  modStride: Int, N: Int, T: Int, D: Int) {
    Parallel.forRanges(N, costPerItem: 2 * T * D) { r in
        for n in r {
            let g = gate + n * modStride, dg = dGate + n * modStride
            for t in 0..<T {
                let row = n * T + t
                let d = dOut + row * D, yy = y + row * D, dy = dY + row * D
                for i in 0..<D {
                    dy[i] = g[i] * d[i]
                    dg[i] += d[i] * yy[i]
                }
            }
        }
    }
}

import Foundation
import Tensors

// tanh-approximated GELU, as timm's Mlp with `approx_gelu = nn.GELU(approximate="tanh")`:
// gelu(x) = 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³). Computed as x·σ(2u), the same
// function (0.5·(1 + tanh u) = σ(2u)) with one exp and one division and no branch; it is
// accurate for every x, since x·σ(2u) has no cancellation. The derivative is
// σ(2u) + 2x·σ(2u)(1 − σ(2u))·u′, u′ = √(2/π)·(1 + 3·0.044715·x²).
private let geluK: Float = 0.7978845608028654  // √(2/π)

/// σ(2u) for GELU; e^{−2u} is capped at e^80 so σ stays a normal float (no denormal slowdown).
@inline(__always)
private func geluSigmoid(_ x: Float) -> Float {
    let minus2u = -2 * geluK * (x + 0.044715 * x * x * x)
    return 1 / (1 + fastExp(minus2u > 80 ? 80 : minus2u))
}

/// gelu′(x).
@inline(__always)
private func geluSlope(_ x: Float) -> Float {
    let s = geluSigmoid(x)
    return s + 2 * x * s * (1 - s) * (geluK * (1 + 3 * 0.044715 * x * x))
}

/// out[i] = gelu_tanh(inp[i]) for i in 0..<count, on the calling thread (the fused epilogue
/// of the fc1 product, and the body of `geluForward`).
@inline(__always)
public func geluForwardSpan(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    for i in 0..<count {
        let x = inp[i]
        out[i] = x * geluSigmoid(x)
    }
}

/// dGrad[i] *= gelu′(inp[i]) for i in 0..<count, on the calling thread (the fused epilogue of
/// the fc2 input-gradient product, and the body of `geluBackwardInPlace`).
@inline(__always)
public func geluBackwardSpan(_ dGrad: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { dGrad[i] *= geluSlope(inp[i]) }
}

/// out = gelu_tanh(inp), elementwise over `count` values.
public func geluForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    Parallel.forRanges(count, costPerItem: 20) { r in
        geluForwardSpan(out: out + r.lowerBound, inp: inp + r.lowerBound, count: r.count)
    }
}

/// dInp += dOut · gelu′(inp)  (or dInp = … with `overwrite`, which also allows dInp == dOut).
public func geluBackward(dInp: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                         count: Int, overwrite: Bool = false) {
    Parallel.forRanges(count, costPerItem: 25) { r in
        for i in r {
            let d = dOut[i] * geluSlope(inp[i])
            dInp[i] = overwrite ? d : dInp[i] + d
        }
    }
}

/// dGrad *= gelu′(inp), in place (the MLP backward's form; a separate in-place loop lets the
/// compiler vectorize it, which the aliasing `dInp == dOut` call of `geluBackward` prevents).
public func geluBackwardInPlace(_ dGrad: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    Parallel.forRanges(count, costPerItem: 25) { r in
        geluBackwardSpan(dGrad + r.lowerBound, inp: inp + r.lowerBound, count: r.count)
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

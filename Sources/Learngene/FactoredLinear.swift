import DiT
import Tensors

// The factored linear shared by FINE and KIND: y = ((x Vᵀ) ⊙ s) U, never materializing W.
// Factors are stored component-major (one row per component), so a range of components is a
// contiguous range of rows: U (r, OC), V (r, IC). The dense weight is W = Uᵀ diag(s) V, i.e.
// W[o, i] = Σ_k U[k, o] s_k V[k, i] (PyTorch's (out, in) layout).
// `s` is per group of rows: group g = rows [g·rowsPerScale, (g+1)·rowsPerScale) uses
// scale + g·r. FINE passes σ_l with rowsPerScale = M (one group); KIND passes σ ⊙ m(c_n) per
// sample with rowsPerScale = the rows of one sample.

/// out (M, OC) = ((inp (M, IC) · Vᵀ) ⊙ s) · U, written. `xv` (M, r) receives inp · Vᵀ (kept
/// for the backward); `h` (M, r) is scratch.
public func factoredLinearForward(out: UnsafeMutablePointer<Float>, xv: UnsafeMutablePointer<Float>, h: UnsafeMutablePointer<Float>,
                                  inp: UnsafePointer<Float>, u: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                  scale: UnsafePointer<Float>, rowsPerScale: Int, M: Int, IC: Int, OC: Int, rank r: Int) {
    linearForward(out: xv, inp: inp, weight: v, bias: nil, M: M, IC: IC, OC: r)
    scaleRows(h, xv, scale: scale, rowsPerScale: rowsPerScale, M: M, r: r)
    splitRows(M, flops: 2 * M * r * OC) { rows in
        Blas.nn(m: rows.count, n: OC, k: r, a: h + rows.lowerBound * r, b: u, c: out + rows.lowerBound * OC)
    }
}

/// The backward of `factoredLinearForward`, given its `xv`:
/// dU (r, OC) += hᵀ · dOut with h = xv ⊙ s;  dh = dOut · Uᵀ;
/// dScale (groups, r) += Σ_{rows of the group} dh ⊙ xv;  dxv = dh ⊙ s;
/// dV (r, IC) += dxvᵀ · inp;  dInp (M, IC) = or += dxv · V (nil: not needed).
/// `scratch1`, `scratch2` are (M, r) scratch buffers.
public func factoredLinearBackward(dInp: UnsafeMutablePointer<Float>?, dU: UnsafeMutablePointer<Float>, dV: UnsafeMutablePointer<Float>,
                                   dScale: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, xv: UnsafePointer<Float>,
                                   scratch1: UnsafeMutablePointer<Float>, scratch2: UnsafeMutablePointer<Float>,
                                   inp: UnsafePointer<Float>, u: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                   scale: UnsafePointer<Float>, rowsPerScale: Int, M: Int, IC: Int, OC: Int, rank r: Int,
                                   overwriteInput: Bool) {
    let h = scratch1, dh = scratch2
    scaleRows(h, xv, scale: scale, rowsPerScale: rowsPerScale, M: M, r: r)
    // dU rows [k0, k1) = h[:, k0..<k1]ᵀ · dOut: each worker owns a block of components.
    splitRows(r, flops: 2 * M * r * OC) { ks in
        Blas.sgemm(transA: true, transB: false, m: ks.count, n: OC, k: M, a: h + ks.lowerBound, lda: r,
                   b: dOut, ldb: OC, beta: 1, c: dU + ks.lowerBound * OC, ldc: OC)
    }
    splitRows(M, flops: 2 * M * r * OC) { rows in
        Blas.nt(m: rows.count, n: r, k: OC, a: dOut + rows.lowerBound * OC, b: u, c: dh + rows.lowerBound * r)
    }
    // dScale: per group, a fixed-order column sum of dh ⊙ xv (h's buffer is free again).
    let prod = scratch1
    Parallel.forRanges(M, costPerItem: r) { rows in
        for row in rows {
            let a = dh + row * r, b = xv + row * r, p = prod + row * r
            for k in 0..<r { p[k] = a[k] * b[k] }
        }
    }
    for g in 0..<(M / rowsPerScale) {
        columnSumAccumulate(dScale + g * r, prod + g * rowsPerScale * r, rows: rowsPerScale, cols: r)
    }
    scaleRows(dh, dh, scale: scale, rowsPerScale: rowsPerScale, M: M, r: r)
    linearBackward(dInp: dInp, dWeight: dV, dBias: nil, dOut: dh, inp: inp, weight: v, M: M, IC: IC, OC: r,
                   overwriteInput: overwriteInput)
}

/// out[row, k] = inp[row, k] · scale[row / rowsPerScale, k] (out may be inp).
@inline(__always)
func scaleRows(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, scale: UnsafePointer<Float>,
               rowsPerScale: Int, M: Int, r: Int) {
    Parallel.forRanges(M, costPerItem: r) { rows in
        for row in rows {
            let s = scale + (row / rowsPerScale) * r, x = inp + row * r, o = out + row * r
            for k in 0..<r { o[k] = x[k] * s[k] }
        }
    }
}

/// Scratch buffers of the factored linears, per (matrix, layer) for the kept x·Vᵀ and shared
/// for the rest; reallocated only when the row count changes.
///
/// Caching x·Vᵀ (rather than recomputing it in the backward) trades M·r floats per matrix
/// and layer (4·N·T·r + N·r per layer: about a quarter of what the DiT itself keeps per block
/// at r = D) for one sgemm of M·IC·r per backward. The contract is the host DiT's own:
/// `backward` of (matrix, layer) uses the x·Vᵀ of that pair's most recent `forward`.
final class FactoredScratch {
    private var xv: [Int: Tensor] = [:]
    private var shared: [Tensor] = []

    func xv(_ key: Int, rows M: Int, rank r: Int) -> UnsafeMutablePointer<Float> {
        if let t = xv[key], t.count == M * r { return t.data }
        let t = Tensor(shape: [M, r])
        xv[key] = t
        return t.data
    }

    /// Shared scratch i (0…3) of at least M·r floats.
    func scratch(_ i: Int, rows M: Int, rank r: Int) -> UnsafeMutablePointer<Float> {
        if shared.count < 4 || shared[0].count < M * r {
            shared = (0..<4).map { _ in Tensor(shape: [M * r]) }
        }
        return shared[i].data
    }
}

/// Random factors of one matrix, component-major: rows of U ~ N(0, 1/OC), rows of V ~
/// N(0, 1/IC) (near unit norm), and, unless `sigma` is nil, σ ~ N(0, s²) with
/// s² = 2·OC·IC / (r (OC + IC)), so that W = Uᵀ diag(σ) V has Xavier-uniform's variance.
func fillRandomFactors(_ rng: inout RandomStream, u: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                       sigma: UnsafeMutablePointer<Float>?, OC: Int, IC: Int, rank r: Int) {
    rng.fillNormal(u, count: r * OC, std: Float(1 / Double(OC).squareRoot()))
    rng.fillNormal(v, count: r * IC, std: Float(1 / Double(IC).squareRoot()))
    if let sigma { rng.fillNormal(sigma, count: r, std: xavierSigmaStd(OC: OC, IC: IC, rank: r)) }
}

/// The σ standard deviation giving W = Uᵀ diag(σ) V (near-unit-norm rows) Xavier's variance.
func xavierSigmaStd(OC: Int, IC: Int, rank r: Int) -> Float {
    Float((2.0 * Double(OC * IC) / Double(r * (OC + IC))).squareRoot())
}

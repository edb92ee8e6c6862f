import Tensors

// Glossary for all kernels: N batch, T tokens, D hidden, M = rows (usually N·T),
// IC/OC input/output features, H heads, hd = D/H head size, C image channels, p patch.
// Argument order (llm.c): outputs, then caches, then inputs and weights, then dimensions.
// Backward kernels accumulate (+=) into gradients; scratch inputs may be overwritten where a
// parameter says so (`overwriteInput`, `overwrite`).

/// out (M, OC) = inp (M, IC) · Wᵀ + b, W in PyTorch's (OC, IC) layout.
public func linearForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                          weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                          M: Int, IC: Int, OC: Int) {
    if let bias {
        // Start C from the broadcast bias so sgemm adds the product onto it (beta = 1).
        Parallel.forRanges(M, costPerItem: OC) { r in
            for m in r { (out + m * OC).update(from: bias, count: OC) }
        }
        Blas.nt(m: M, n: OC, k: IC, a: inp, b: weight, c: out, beta: 1)
    } else {
        Blas.nt(m: M, n: OC, k: IC, a: inp, b: weight, c: out, beta: 0)
    }
}

/// dInp += dOut · W;  dW += dOutᵀ · inp;  dBias += Σ_rows dOut.
/// `dInp` may be nil when the input needs no gradient (e.g. the image patches); with
/// `overwriteInput` it is written instead of accumulated (saves zeroing a scratch buffer).
public func linearBackward(dInp: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>,
                           dBias: UnsafeMutablePointer<Float>?, dOut: UnsafePointer<Float>,
                           inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                           M: Int, IC: Int, OC: Int, overwriteInput: Bool = false) {
    if let dInp { Blas.nn(m: M, n: IC, k: OC, a: dOut, b: weight, c: dInp, beta: overwriteInput ? 0 : 1) }
    Blas.tn(m: OC, n: IC, k: M, a: dOut, b: inp, c: dWeight, beta: 1)
    if let dBias { columnSumAccumulate(dBias, dOut, rows: M, cols: OC) }
}

/// dst[c] += Σ_r src[r, c]. Split over column blocks so each core owns its outputs, and the
/// summation order over rows is fixed (results do not depend on the worker count).
public func columnSumAccumulate(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, rows: Int, cols: Int) {
    let block = 64
    let blocks = (cols + block - 1) / block
    Parallel.forRanges(blocks, costPerItem: rows * block) { r in
        var acc = [Float](repeating: 0, count: block)
        for b in r {
            let c0 = b * block, c1 = min(cols, c0 + block)
            for i in 0..<(c1 - c0) { acc[i] = 0 }
            for row in 0..<rows {
                let s = src + row * cols
                for c in c0..<c1 { acc[c - c0] += s[c] }
            }
            for c in c0..<c1 { dst[c] += acc[c - c0] }
        }
    }
}

import Tensors

// Glossary for all kernels: N batch, T tokens, D hidden, M = rows (usually N·T),
// IC/OC input/output features, H heads, hd = D/H head size, C image channels, p patch.
// Argument order (llm.c): outputs, then caches, then inputs and weights, then dimensions.
// Backward kernels accumulate (+=) into gradients; scratch inputs may be overwritten where a
// parameter says so (`overwriteInput`, `overwrite`).

/// Splits a matrix product's output rows over the workers, each running a single-threaded
/// sgemm on its block. OpenBLAS's own threads spin for a while after every call and would
/// then fight our elementwise threads for the two cores; owning the split keeps exactly one
/// thread per core busy. Small products run whole on the calling thread.
@inline(__always)
public func splitRows(_ rows: Int, flops: Int, _ body: (Range<Int>) -> Void) {
    let workers = Parallel.workers
    if workers <= 1 || rows < 2 * workers || flops < 2_000_000 {
        body(0..<rows)
        return
    }
    parallelTasks(workers) { _, w in
        let per = (rows + workers - 1) / workers
        let lo = w * per, hi = min(rows, lo + per)
        if lo < hi { body(lo..<hi) }
    }
}

/// Work done on a block of output rows right after the worker's sgemm wrote them, while they
/// are still in cache: saves a separate pass (and a thread hand-off) over the whole output.
public enum RowEpilogue {
    case none
    /// act = gelu(out) for the same rows (the MLP's fc1 → GELU).
    case gelu(act: UnsafeMutablePointer<Float>)
    /// out *= gelu′(preact) for the same rows (the MLP's backward through GELU into fc1).
    case geluBackward(preact: UnsafePointer<Float>)

    @inline(__always)
    func apply(_ out: UnsafeMutablePointer<Float>, rows r: Range<Int>, width: Int) {
        let lo = r.lowerBound * width, n = r.count * width
        switch self {
        case .none: return
        case .gelu(let act): geluForwardSpan(out: act + lo, inp: out + lo, count: n)
        case .geluBackward(let preact): geluBackwardSpan(out + lo, inp: preact + lo, count: n)
        }
    }
}

/// out (M, OC) = inp (M, IC) · Wᵀ + b, W in PyTorch's (OC, IC) layout; then `epilogue` on
/// the same rows.
public func linearForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                          weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                          M: Int, IC: Int, OC: Int, epilogue: RowEpilogue = .none) {
    splitRows(M, flops: 2 * M * IC * OC) { r in
        let o = out + r.lowerBound * OC
        if let bias {
            // Start C from the broadcast bias so sgemm adds the product onto it (beta = 1).
            for m in 0..<r.count { (o + m * OC).update(from: bias, count: OC) }
        }
        Blas.nt(m: r.count, n: OC, k: IC, a: inp + r.lowerBound * IC, b: weight, c: o, beta: bias == nil ? 0 : 1)
        epilogue.apply(out, rows: r, width: OC)
    }
}

/// dInp += dOut · W (then `inputEpilogue` on dInp's rows);  dW += dOutᵀ · inp;  dBias += Σ_rows dOut.
/// `dInp` may be nil when the input needs no gradient (e.g. the image patches); with
/// `overwriteInput` it is written instead of accumulated (saves zeroing a scratch buffer).
public func linearBackward(dInp: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>,
                           dBias: UnsafeMutablePointer<Float>?, dOut: UnsafePointer<Float>,
                           inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                           M: Int, IC: Int, OC: Int, overwriteInput: Bool = false, inputEpilogue: RowEpilogue = .none) {
    if let dInp {
        splitRows(M, flops: 2 * M * IC * OC) { r in
            Blas.nn(m: r.count, n: IC, k: OC, a: dOut + r.lowerBound * OC, b: weight, c: dInp + r.lowerBound * IC,
                    beta: overwriteInput ? 0 : 1)
            inputEpilogue.apply(dInp, rows: r, width: IC)
        }
    }
    // dW rows [o0, o1) = dOut[:, o0..<o1]ᵀ · inp: each worker owns a block of output features.
    splitRows(OC, flops: 2 * M * IC * OC) { r in
        Blas.sgemm(transA: true, transB: false, m: r.count, n: IC, k: M, a: dOut + r.lowerBound, lda: OC,
                   b: inp, ldb: IC, beta: 1, c: dWeight + r.lowerBound * IC, ldc: IC)
    }
    if let dBias { columnSumAccumulate(dBias, dOut, rows: M, cols: OC) }
}

/// dst[c] += Σ_r src[r, c]. Split over column blocks so each core owns its outputs, and the
/// summation order over rows is fixed (results do not depend on the worker count). The
/// accumulator is a stack buffer so the per-row add over 64 columns vectorizes.
public func columnSumAccumulate(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, rows: Int, cols: Int) {
    let block = 64
    let blocks = (cols + block - 1) / block
    Parallel.forRanges(blocks, costPerItem: rows * block) { r in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: block) { accBuf in
            let acc = accBuf.baseAddress!
            for b in r {
                let c0 = b * block, width = min(cols, c0 + block) - c0
                acc.update(repeating: 0, count: width)
                for row in 0..<rows {
                    let s = src + row * cols + c0
                    for c in 0..<width { acc[c] += s[c] }
                }
                for c in 0..<width { dst[c0 + c] += acc[c] }
            }
        }
    }
}

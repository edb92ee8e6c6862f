import Foundation
import Tensors

/// Runs `tasks` independent small jobs on all workers, each worker given its own index so it
/// can use its own scratch memory. OpenBLAS is switched to one thread meanwhile: the tasks'
/// GEMMs are small (T×T×hd), so one BLAS thread per core beats two cores fighting over each.
func parallelTasks(_ tasks: Int, maxWorkers: Int = .max, _ body: (_ worker: Int, _ task: Int) -> Void) {
    if min(Parallel.workers, tasks, maxWorkers) <= 1 {
        for i in 0..<tasks { body(0, i) }
        return
    }
    Blas.withThreads(1) { Parallel.forTasks(tasks, maxWorkers: maxWorkers, body) }
}

/// Multi-head self-attention core (timm `Attention` without the projections):
/// qkv (N, T, 3D) holds q in features [0, D), k in [D, 2D), v in [2D, 3D); head h owns
/// [h·hd, (h+1)·hd) of each. For every (n, h): P = softmax(q kᵀ / √hd), o = P v, and the
/// heads are written side by side into out (N, T, D).
/// Caches P (N, H, T, T) for the backward pass. The q/k/v slices are read in place through
/// sgemm's leading dimension (3D), so nothing is copied or permuted.
public func attentionForward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                             qkv: UnsafePointer<Float>, N: Int, T: Int, D: Int, H: Int) {
    let hd = D / H
    let scale = 1 / Float(hd).squareRoot()
    parallelTasks(N * H) { _, task in
        let n = task / H, h = task % H
        let q = qkv + n * T * 3 * D + h * hd, k = q + D, v = q + 2 * D
        let p = probs + task * T * T
        Blas.sgemm(transA: false, transB: true, m: T, n: T, k: hd, alpha: scale,
                   a: q, lda: 3 * D, b: k, ldb: 3 * D, beta: 0, c: p, ldc: T)
        for i in 0..<T { softmaxRow(p + i * T, T) }
        Blas.sgemm(transA: false, transB: false, m: T, n: hd, k: T,
                   a: p, lda: T, b: v, ldb: 3 * D, beta: 0, c: out + n * T * D + h * hd, ldc: D)
    }
}

/// In-place numerically stable softmax of one row (subtract the max before exp).
/// Float reductions do not vectorize without reassociation (Swift has no fast-math), so the
/// max and the sum run four independent accumulators, and the exp pass has no reduction in it.
@inline(__always)
func softmaxRow(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
    var m0 = -Float.infinity, m1 = m0, m2 = m0, m3 = m0
    var j = 0
    while j + 4 <= n {
        m0 = x[j] > m0 ? x[j] : m0
        m1 = x[j + 1] > m1 ? x[j + 1] : m1
        m2 = x[j + 2] > m2 ? x[j + 2] : m2
        m3 = x[j + 3] > m3 ? x[j + 3] : m3
        j += 4
    }
    while j < n { m0 = x[j] > m0 ? x[j] : m0; j += 1 }
    let m = max(max(m0, m1), max(m2, m3))
    for k in 0..<n { x[k] = fastExp(x[k] - m) }
    var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
    j = 0
    while j + 4 <= n {
        s0 += x[j]; s1 += x[j + 1]; s2 += x[j + 2]; s3 += x[j + 3]
        j += 4
    }
    while j < n { s0 += x[j]; j += 1 }
    let inv = 1 / ((s0 + s1) + (s2 + s3))
    for k in 0..<n { x[k] *= inv }
}

/// Backward of `attentionForward`; writes (not accumulates) dQKV (N, T, 3D).
/// dP = dO vᵀ;  dv = Pᵀ dO;  dS = P ⊙ (dP − rowsum(dP ⊙ P)) / √hd;  dq = dS k;  dk = dSᵀ q.
/// `probs` is consumed: dS overwrites P in place (P is not needed after this layer's backward).
/// `scratch` holds one T×T matrix per worker: `scratchWorkers` · T · T floats (at most that
/// many workers run, whatever `Parallel.workers` says now).
public func attentionBackward(dQKV: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, scratchWorkers: Int,
                              dOut: UnsafePointer<Float>, probs: UnsafeMutablePointer<Float>,
                              qkv: UnsafePointer<Float>, N: Int, T: Int, D: Int, H: Int) {
    let hd = D / H
    let scale = 1 / Float(hd).squareRoot()
    parallelTasks(N * H, maxWorkers: scratchWorkers) { worker, task in
        let n = task / H, h = task % H
        let off = n * T * 3 * D + h * hd
        let q = qkv + off, k = q + D, v = q + 2 * D
        let dq = dQKV + off, dk = dq + D, dv = dq + 2 * D
        let dO = dOut + n * T * D + h * hd
        let p = probs + task * T * T
        let dP = scratch + worker * T * T
        Blas.sgemm(transA: false, transB: true, m: T, n: T, k: hd,
                   a: dO, lda: D, b: v, ldb: 3 * D, beta: 0, c: dP, ldc: T)
        Blas.sgemm(transA: true, transB: false, m: T, n: hd, k: T,
                   a: p, lda: T, b: dO, ldb: D, beta: 0, c: dv, ldc: 3 * D)
        for i in 0..<T {
            let pr = p + i * T, dpr = dP + i * T
            let dot = rowDot(pr, dpr, T)
            for j in 0..<T { pr[j] = pr[j] * (dpr[j] - dot) * scale }
        }
        Blas.sgemm(transA: false, transB: false, m: T, n: hd, k: T,
                   a: p, lda: T, b: k, ldb: 3 * D, beta: 0, c: dq, ldc: 3 * D)
        Blas.sgemm(transA: true, transB: false, m: T, n: hd, k: T,
                   a: p, lda: T, b: q, ldb: 3 * D, beta: 0, c: dk, ldc: 3 * D)
    }
}

/// Σ a[j]·b[j] with four accumulators (see softmaxRow on why).
@inline(__always)
func rowDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
    var j = 0
    while j + 4 <= n {
        s0 += a[j] * b[j]; s1 += a[j + 1] * b[j + 1]; s2 += a[j + 2] * b[j + 2]; s3 += a[j + 3] * b[j + 3]
        j += 4
    }
    while j < n { s0 += a[j] * b[j]; j += 1 }
    return (s0 + s1) + (s2 + s3)
}

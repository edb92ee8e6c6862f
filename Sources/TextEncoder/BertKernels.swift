import Foundation
import Tensors

// BERT's layers as llm.c-style forward/backward pairs over flat row-major buffers: outputs
// first, then caches, then inputs and weights, then sizes. Sentences are packed one after the
// other (R rows in all, no padding): every layer but attention works row by row, and
// attention runs over one sentence's own rows, which is what BERT's attention mask does to a
// padded batch (masked keys get weight exactly 0 after the softmax). Backward passes go to
// the inputs only: the encoder is frozen, so no weight gradients are formed.

/// Affine LayerNorm (biased variance, eps inside the square root, as torch.nn.LayerNorm):
/// out = (x − mean)·rstd·weight + bias, row by row over C features. Caches mean and rstd.
/// `out` may alias `inp`.
func bertLayerNormForward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                          inp: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                          R: Int, C: Int, eps: Float) {
    Parallel.forRanges(R, costPerItem: 5 * C) { r in
        for row in r {
            let x = inp + row * C, o = out + row * C
            var m: Float = 0
            for i in 0..<C { m += x[i] }
            m /= Float(C)
            var v: Float = 0
            for i in 0..<C { let d = x[i] - m; v += d * d }
            v /= Float(C)
            let s = 1 / (v + eps).squareRoot()
            mean[row] = m
            rstd[row] = s
            for i in 0..<C { o[i] = (x[i] - m) * s * weight[i] + bias[i] }
        }
    }
}

/// Backward of `bertLayerNormForward` to its input (writes dInp; may alias dOut):
/// g = dOut·weight;  dx = rstd·(g − mean(g) − x̂·mean(g·x̂)).
func bertLayerNormBackward(dInp: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                           mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, weight: UnsafePointer<Float>, R: Int, C: Int) {
    Parallel.forRanges(R, costPerItem: 10 * C) { r in
        for row in r {
            let x = inp + row * C, dy = dOut + row * C, dx = dInp + row * C
            let m = mean[row], s = rstd[row]
            var gMean: Float = 0, gxMean: Float = 0
            for i in 0..<C {
                let g = dy[i] * weight[i]
                gMean += g
                gxMean += g * (x[i] - m) * s
            }
            gMean /= Float(C)
            gxMean /= Float(C)
            for i in 0..<C {
                let xh = (x[i] - m) * s
                dx[i] = s * (dy[i] * weight[i] - gMean - xh * gxMean)
            }
        }
    }
}

/// Exact GELU, as torch's default and BERT's "gelu": x·Φ(x) = ½·x·(1 + erf(x/√2)).
func bertGeluForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    Parallel.forRanges(count, costPerItem: 30) { r in
        for i in r {
            let x = inp[i]
            out[i] = 0.5 * x * (1 + erf(x * Float(0.5.squareRoot())))
        }
    }
}

/// dGrad *= gelu′(inp) = Φ(x) + x·φ(x), in place.
func bertGeluBackwardInPlace(_ dGrad: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    let invSqrt2Pi = Float(1 / (2 * Double.pi).squareRoot())
    Parallel.forRanges(count, costPerItem: 40) { r in
        for i in r {
            let x = inp[i]
            let cdf = 0.5 * (1 + erf(x * Float(0.5.squareRoot())))
            dGrad[i] *= cdf + x * invSqrt2Pi * exp(-0.5 * x * x)
        }
    }
}

/// out (R, N) = inp (R, K) · Wᵀ + bias, W in PyTorch's (N, K) layout; with `residual`,
/// out = residual + inp·Wᵀ + bias (`residual` may alias `out`).
func bertLinearForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: Tensor, bias: Tensor,
                       residual: UnsafePointer<Float>? = nil, R: Int, K: Int, N: Int) {
    for row in 0..<R {
        let o = out + row * N
        if let residual {
            let res = residual + row * N
            for j in 0..<N { o[j] = res[j] + bias.data[j] }
        } else {
            Ops.copy(bias.data, to: o, count: N)
        }
    }
    Blas.nt(m: R, n: N, k: K, a: inp, b: weight.data, c: out, beta: 1)
}

/// Where each sentence's rows and attention probabilities are: sentence b owns rows
/// offsets[b] ..< offsets[b] + lengths[b] and H·T_b² floats of probabilities at probOffsets[b].
struct PackedLayout: Sendable {
    let lengths: [Int]
    let offsets: [Int]
    let probOffsets: [Int]
    let rows: Int
    let probCount: Int
    let maxLength: Int

    init(lengths: [Int], heads: Int) {
        self.lengths = lengths
        var o = 0, p = 0
        var offsets: [Int] = [], probOffsets: [Int] = []
        for t in lengths {
            offsets.append(o); probOffsets.append(p)
            o += t; p += heads * t * t
        }
        self.offsets = offsets
        self.probOffsets = probOffsets
        rows = o
        probCount = p
        maxLength = lengths.max() ?? 0
    }

    /// Calls `body` once per (sentence, head) with where that head works: the sentence's
    /// length T, the offset of the head's q columns in a (R, 3C) qkv buffer, of its columns in
    /// a (R, C) buffer, and of its T×T probabilities. The calls run on `Parallel`'s workers
    /// with OpenBLAS on one thread meanwhile, so each head's small products run whole on one
    /// worker (the split `Blas.stridedBatched` uses, here for sizes that differ per sentence).
    /// `products` is how many T×T×hd products one head does (for the cost estimate).
    func forEachHead(heads H: Int, C: Int, products: Int,
                     _ body: (_ T: Int, _ qkv: Int, _ rows: Int, _ probs: Int) -> Void) {
        let hd = C / H, tasks = lengths.count * H
        withoutActuallyEscaping(body) { body in
            let one = { (task: Int) in
                let b = task / H, h = task % H, T = lengths[b]
                body(T, offsets[b] * 3 * C + h * hd, offsets[b] * C + h * hd, probOffsets[b] + h * T * T)
            }
            if tasks <= 1 || Parallel.workers <= 1 {
                for t in 0..<tasks { one(t) }
            } else {
                Blas.withThreads(1) { Parallel.forEach(tasks, costPerItem: max(1, maxLength * maxLength * hd * products), one) }
            }
        }
    }
}

/// Self-attention over each sentence's own rows: qkv (R, 3C) holds q in [0, C), k in
/// [C, 2C), v in [2C, 3C), head h owning [h·hd, (h+1)·hd) of each. For every (sentence,
/// head): P = softmax(q kᵀ/√hd) (cached), out = P v, heads side by side in out (R, C).
func bertAttentionForward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>,
                          layout: PackedLayout, C: Int, H: Int) {
    let hd = C / H, scale = 1 / Float(hd).squareRoot()
    layout.forEachHead(heads: H, C: C, products: 2) { T, qkvAt, rowsAt, probsAt in
        let q = qkv + qkvAt, k = q + C, v = q + 2 * C
        let p = probs + probsAt
        Blas.sgemm(transA: false, transB: true, m: T, n: T, k: hd, alpha: scale,
                   a: q, lda: 3 * C, b: k, ldb: 3 * C, beta: 0, c: p, ldc: T)
        for i in 0..<T { bertSoftmaxRow(p + i * T, T) }
        Blas.sgemm(transA: false, transB: false, m: T, n: hd, k: T,
                   a: p, lda: T, b: v, ldb: 3 * C, beta: 0, c: out + rowsAt, ldc: C)
    }
}

/// Softmax of one row in place (max subtracted first; exact `exp`, the reference's).
@inline(__always)
func bertSoftmaxRow(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
    var m = -Float.infinity
    for j in 0..<n { m = max(m, x[j]) }
    var s: Float = 0
    for j in 0..<n { x[j] = exp(x[j] - m); s += x[j] }
    let inv = 1 / s
    for j in 0..<n { x[j] *= inv }
}

/// Backward of `bertAttentionForward` to qkv; writes dQKV (R, 3C). `dScratch` holds
/// `layout.probCount` floats (dP and dS per head).
/// dP = dO vᵀ;  dv = Pᵀ dO;  dS = P ⊙ (dP − rowsum(dP ⊙ P))/√hd;  dq = dS k;  dk = dSᵀ q.
func bertAttentionBackward(dQKV: UnsafeMutablePointer<Float>, dScratch: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                           probs: UnsafePointer<Float>, qkv: UnsafePointer<Float>, layout: PackedLayout, C: Int, H: Int) {
    let hd = C / H, scale = 1 / Float(hd).squareRoot()
    layout.forEachHead(heads: H, C: C, products: 4) { T, qkvAt, rowsAt, probsAt in
        let q = qkv + qkvAt, k = q + C, v = q + 2 * C
        let dq = dQKV + qkvAt, dk = dq + C, dv = dq + 2 * C
        let dO = dOut + rowsAt
        let p = probs + probsAt, dP = dScratch + probsAt
        Blas.sgemm(transA: false, transB: true, m: T, n: T, k: hd, a: dO, lda: C, b: v, ldb: 3 * C, beta: 0, c: dP, ldc: T)
        Blas.sgemm(transA: true, transB: false, m: T, n: hd, k: T, a: p, lda: T, b: dO, ldb: C, beta: 0, c: dv, ldc: 3 * C)
        for i in 0..<T {
            let pr = p + i * T, dpr = dP + i * T
            var dot: Float = 0
            for j in 0..<T { dot += pr[j] * dpr[j] }
            for j in 0..<T { dpr[j] = pr[j] * (dpr[j] - dot) * scale }
        }
        Blas.sgemm(transA: false, transB: false, m: T, n: hd, k: T, a: dP, lda: T, b: k, ldb: 3 * C, beta: 0, c: dq, ldc: 3 * C)
        Blas.sgemm(transA: true, transB: false, m: T, n: hd, k: T, a: dP, lda: T, b: q, ldb: 3 * C, beta: 0, c: dk, ldc: 3 * C)
    }
}

/// Mean of each sentence's rows, then L2 normalization (sentence-transformers' Pooling(mean)
/// and Normalize): pooled (B, C) is the mean, out (B, C) = pooled / max(‖pooled‖, 1e-12).
func bertMeanPoolNormalizeForward(out: UnsafeMutablePointer<Float>, pooled: UnsafeMutablePointer<Float>,
                                  inp: UnsafePointer<Float>, layout: PackedLayout, C: Int) {
    for (b, T) in layout.lengths.enumerated() {
        let p = pooled + b * C, o = out + b * C
        for i in 0..<C { p[i] = 0 }
        for t in 0..<T {
            let x = inp + (layout.offsets[b] + t) * C
            for i in 0..<C { p[i] += x[i] }
        }
        let inv = 1 / Float(max(T, 1))
        var ss: Double = 0
        for i in 0..<C { p[i] *= inv; ss += Double(p[i]) * Double(p[i]) }
        let norm = Float(max(ss.squareRoot(), 1e-12))
        for i in 0..<C { o[i] = p[i] / norm }
    }
}

/// Backward of `bertMeanPoolNormalizeForward`; writes dInp (R, C):
/// dpooled = (dOut − e·(e·dOut)) / ‖pooled‖, and every row of sentence b gets dpooled / T_b.
func bertMeanPoolNormalizeBackward(dInp: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, out: UnsafePointer<Float>,
                                   pooled: UnsafePointer<Float>, layout: PackedLayout, C: Int) {
    var dp = [Float](repeating: 0, count: C)
    for (b, T) in layout.lengths.enumerated() {
        let e = out + b * C, de = dOut + b * C, p = pooled + b * C
        var ss: Double = 0, dot: Double = 0
        for i in 0..<C { ss += Double(p[i]) * Double(p[i]); dot += Double(e[i]) * Double(de[i]) }
        let norm = Float(max(ss.squareRoot(), 1e-12))
        let inv = 1 / (norm * Float(max(T, 1)))
        for i in 0..<C { dp[i] = (de[i] - e[i] * Float(dot)) * inv }
        for t in 0..<T { Ops.copy(dp, to: dInp + (layout.offsets[b] + t) * C, count: C) }
    }
}

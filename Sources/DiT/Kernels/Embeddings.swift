import Foundation
import Tensors

/// DiT's sinusoidal timestep features (TimestepEmbedder.timestep_embedding), in float32 as
/// DiT computes them: freqs = exp(−ln(10000)·i/half), args = t·freqs, out = [cos(args), sin(args)]
/// (cos first). `t` are integer timesteps on the original 0…999 scale (not rescaled).
public func timestepFrequencies(out: UnsafeMutablePointer<Float>, t: [Int], dim: Int = 256, maxPeriod: Double = 10000) {
    let half = dim / 2
    let logMax = Float(-log(maxPeriod))
    for (n, step) in t.enumerated() {
        let row = out + n * dim
        for i in 0..<half {
            let freq = expf(logMax * Float(i) / Float(half))
            let arg = Float(step) * freq
            row[i] = cosf(arg)
            row[half + i] = sinf(arg)
        }
        if dim % 2 == 1 { row[dim - 1] = 0 }
    }
}

/// DiT's fixed 2-D sin-cos position table (get_2d_sincos_pos_embed), (g·g, D), computed in
/// float64 and rounded to float32. Token index = row·g + col. The first D/2 channels encode the
/// patch *column* (DiT's meshgrid(grid_w, grid_h) puts w first), the last D/2 the row; each
/// half is [sin(pos·ω_k) for k < D/4, cos(pos·ω_k)], ω_k = 10000^(−k/(D/4)).
public func sinCosPositionTable(D: Int, grid g: Int) -> [Float] {
    precondition(D % 4 == 0, "hidden size must be a multiple of 4 for the 2-D sin-cos table")
    let quarter = D / 4
    var out = [Float](repeating: 0, count: g * g * D)
    for row in 0..<g {
        for col in 0..<g {
            let base = (row * g + col) * D
            for (half, pos) in [(0, Double(col)), (1, Double(row))] {
                for k in 0..<quarter {
                    let omega = 1.0 / pow(10000.0, Double(k) / Double(quarter))
                    out[base + half * 2 * quarter + k] = Float(sin(pos * omega))
                    out[base + half * 2 * quarter + quarter + k] = Float(cos(pos * omega))
                }
            }
        }
    }
    return out
}

/// Cuts images (N, C, S, S) into patch rows (N, T, C·p·p), each patch flattened in
/// (c, i, j) order (channel slowest) so that a Conv2d(kernel=p, stride=p) weight (D, C, p, p)
/// reshaped to (D, C·p·p) acts on it as a linear layer. Tokens are row-major over the g×g grid.
public func patchify(out: UnsafeMutablePointer<Float>, images: UnsafePointer<Float>, N: Int, C: Int, S: Int, p: Int) {
    let g = S / p, K = C * p * p
    Parallel.forRanges(N * g * g, costPerItem: K) { r in
        for tok in r {
            let n = tok / (g * g), gi = (tok / g) % g, gj = tok % g
            let o = out + tok * K
            var f = 0
            for c in 0..<C {
                for i in 0..<p {
                    let src = images + ((n * C + c) * S + gi * p + i) * S + gj * p
                    for j in 0..<p { o[f] = src[j]; f += 1 }
                }
            }
        }
    }
}

/// Inverse of `patchify`'s layout for the model output: tokens (N, T, p·p·OC) → images
/// (N, OC, S, S), where within a token the channel index is fastest: feature (i·p + j)·OC + c
/// (DiT's unpatchify einsum 'nhwpqc->nchpwq').
public func unpatchify(out: UnsafeMutablePointer<Float>, tokens: UnsafePointer<Float>, N: Int, OC: Int, S: Int, p: Int) {
    let g = S / p, K = p * p * OC
    Parallel.forRanges(N * g * g, costPerItem: K) { r in
        for tok in r {
            let n = tok / (g * g), gi = (tok / g) % g, gj = tok % g
            let src = tokens + tok * K
            for i in 0..<p {
                for j in 0..<p {
                    for c in 0..<OC {
                        out[((n * OC + c) * S + gi * p + i) * S + gj * p + j] = src[(i * p + j) * OC + c]
                    }
                }
            }
        }
    }
}

/// Backward of `unpatchify` (a permutation): dTokens = gather of dImages (overwrites).
public func unpatchifyBackward(dTokens: UnsafeMutablePointer<Float>, dImages: UnsafePointer<Float>, N: Int, OC: Int, S: Int, p: Int) {
    let g = S / p, K = p * p * OC
    Parallel.forRanges(N * g * g, costPerItem: K) { r in
        for tok in r {
            let n = tok / (g * g), gi = (tok / g) % g, gj = tok % g
            let dst = dTokens + tok * K
            for i in 0..<p {
                for j in 0..<p {
                    for c in 0..<OC {
                        dst[(i * p + j) * OC + c] = dImages[((n * OC + c) * S + gi * p + i) * S + gj * p + j]
                    }
                }
            }
        }
    }
}

/// Label embedding lookup: out[n] = table[labels[n]] (labels may be the null row K).
public func embeddingForward(out: UnsafeMutablePointer<Float>, table: UnsafePointer<Float>, labels: [Int], D: Int) {
    for (n, y) in labels.enumerated() { (out + n * D).update(from: table + y * D, count: D) }
}

/// dTable[labels[n]] += dOut[n] (rows of absent classes get exactly zero gradient).
public func embeddingBackward(dTable: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, labels: [Int], D: Int) {
    for (n, y) in labels.enumerated() {
        let d = dTable + y * D, s = dOut + n * D
        for i in 0..<D { d[i] += s[i] }
    }
}

/// Text label embedder (a text-conditioned DiT, `DiTConfig.textDim` = E > 0):
/// out[n] = W · table[labels[n]] + b (W in PyTorch's (D, E) layout) for labels[n] < nullLabel,
/// and out[n] = nullRow for labels[n] == nullLabel (the learned CFG embedding; nil when the
/// model has none, and then no label may be null). `inputs` (N, E) receives the gathered
/// text rows, zeros for null labels, and is what `textEmbeddingBackward` needs.
public func textEmbeddingForward(out: UnsafeMutablePointer<Float>, inputs: UnsafeMutablePointer<Float>,
                                 table: UnsafePointer<Float>, nullRow: UnsafePointer<Float>?,
                                 weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                 labels: [Int], nullLabel: Int, E: Int, D: Int) {
    let N = labels.count
    for (n, y) in labels.enumerated() {
        precondition(y >= 0 && (y < nullLabel || (y == nullLabel && nullRow != nil)),
                     "text embedder: label \(y) outside the text table's \(nullLabel) rows\(nullRow == nil ? "" : " and the null label \(nullLabel)")")
        if y == nullLabel {
            (inputs + n * E).update(repeating: 0, count: E)
        } else {
            (inputs + n * E).update(from: table + y * E, count: E)
        }
    }
    linearForward(out: out, inp: inputs, weight: weight, bias: bias, M: N, IC: E, OC: D)
    if let nullRow {
        for (n, y) in labels.enumerated() where y == nullLabel { (out + n * D).update(from: nullRow, count: D) }
    }
}

/// Backward of `textEmbeddingForward`: dW += Σ_{n not null} dOut[n] ⊗ inputs[n],
/// dBias += Σ_{n not null} dOut[n], dNullRow += Σ_{n null} dOut[n] (each in ascending n).
/// No gradient reaches the table (the text encoder is frozen).
public func textEmbeddingBackward(dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>,
                                  dNullRow: UnsafeMutablePointer<Float>?, dOut: UnsafePointer<Float>,
                                  inputs: UnsafePointer<Float>, labels: [Int], nullLabel: Int, E: Int, D: Int) {
    let N = labels.count
    // dW (D, E) += dOutᵀ (D × N) · inputs (N × E); null rows of `inputs` are zero, so they add
    // nothing. Each worker owns a block of output features.
    splitRows(D, flops: 2 * N * E * D) { r in
        Blas.sgemm(transA: true, transB: false, m: r.count, n: E, k: N, a: dOut + r.lowerBound, lda: D,
                   b: inputs, ldb: E, beta: 1, c: dWeight + r.lowerBound * E, ldc: E)
    }
    for (n, y) in labels.enumerated() {
        let s = dOut + n * D
        if y == nullLabel {
            guard let dNullRow else { continue }
            for i in 0..<D { dNullRow[i] += s[i] }
        } else {
            for i in 0..<D { dBias[i] += s[i] }
        }
    }
}

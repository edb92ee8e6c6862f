import Foundation
import Testing
import Tensors
@testable import DiT

// Finite-difference checks of every kernel's backward, on tiny shapes.
// Each test uses a scalar loss L = Σ w ⊙ out with fixed random weights w, so dOut = w, and
// compares the analytic gradient with central differences (h = 1e-2, float32 kernels, the
// loss summed in Double). Tolerance: |Δ| ≤ 2e-3 + 1e-2·|g|.

/// Random values from a seeded stream (uniform in [-1, 1) scaled by `scale`).
func randomArray(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var rng = RandomStream(seed: seed)
    var a = [Float](repeating: 0, count: n)
    a.withUnsafeMutableBufferPointer { rng.fillUniform($0.baseAddress!, count: n, low: -scale, high: scale) }
    return a
}

func weightedSum(_ out: [Float], _ w: [Float]) -> Double {
    var s = 0.0
    for i in 0..<out.count { s += Double(out[i]) * Double(w[i]) }
    return s
}

/// Compares `analytic` with central differences of `loss` with respect to `values` (all
/// entries, or every `stride`-th), returning the largest violation ratio (≤ 1 passes).
func finiteDifferenceCheck(_ name: String, values: inout [Float], analytic: [Float], h: Float = 1e-2,
                           stride: Int = 1, loss: ([Float]) -> Double) -> Double {
    var worst = 0.0, maxDiff = 0.0
    for i in Swift.stride(from: 0, to: values.count, by: stride) {
        let orig = values[i]
        values[i] = orig + h
        let lp = loss(values)
        values[i] = orig - h
        let lm = loss(values)
        values[i] = orig
        let fd = (lp - lm) / (2 * Double(h))
        let diff = abs(fd - Double(analytic[i]))
        maxDiff = max(maxDiff, diff)
        worst = max(worst, diff / (2e-3 + 1e-2 * abs(fd)))
    }
    print("FD \(name.padding(toLength: 28, withPad: " ", startingAt: 0)) max|fd − analytic| = \(String(format: "%.2e", maxDiff))")
    return worst
}

@Suite struct KernelGradientTests {
    @Test func linear() {
        let M = 5, IC = 7, OC = 4
        var x = randomArray(M * IC, seed: 1), w = randomArray(OC * IC, seed: 2, scale: 0.5), b = randomArray(OC, seed: 3)
        let dy = randomArray(M * OC, seed: 4)
        func run(_ x: [Float], _ w: [Float], _ b: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: M * OC)
            linearForward(out: &out, inp: x, weight: w, bias: b, M: M, IC: IC, OC: OC)
            return out
        }
        var dx = [Float](repeating: 0, count: M * IC), dw = [Float](repeating: 0, count: OC * IC), db = [Float](repeating: 0, count: OC)
        linearBackward(dInp: &dx, dWeight: &dw, dBias: &db, dOut: dy, inp: x, weight: w, M: M, IC: IC, OC: OC)
        let (w0, b0, x0) = (w, b, x)
        #expect(finiteDifferenceCheck("linear dInp", values: &x, analytic: dx) { weightedSum(run($0, w0, b0), dy) } <= 1)
        #expect(finiteDifferenceCheck("linear dWeight", values: &w, analytic: dw) { weightedSum(run(x0, $0, b0), dy) } <= 1)
        #expect(finiteDifferenceCheck("linear dBias", values: &b, analytic: db) { weightedSum(run(x0, w0, $0), dy) } <= 1)
    }

    @Test func layerNormModulate() {
        let N = 2, T = 3, D = 8
        var x = randomArray(N * T * D, seed: 5, scale: 2)
        var mod = randomArray(N * 2 * D, seed: 6, scale: 0.5)  // per sample: shift (D), scale (D)
        let dy = randomArray(N * T * D, seed: 7)
        func run(_ x: [Float], _ mod: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: N * T * D), mean = [Float](repeating: 0, count: N * T), rstd = mean
            mod.withUnsafeBufferPointer { m in
                layerNormModulateForward(out: &out, mean: &mean, rstd: &rstd, inp: x, shift: m.baseAddress!,
                                         scale: m.baseAddress! + D, modStride: 2 * D, N: N, T: T, D: D)
            }
            return out
        }
        var out = [Float](repeating: 0, count: N * T * D), mean = [Float](repeating: 0, count: N * T), rstd = mean
        mod.withUnsafeBufferPointer { m in
            layerNormModulateForward(out: &out, mean: &mean, rstd: &rstd, inp: x, shift: m.baseAddress!,
                                     scale: m.baseAddress! + D, modStride: 2 * D, N: N, T: T, D: D)
        }
        var dx = [Float](repeating: 0, count: N * T * D), dmod = [Float](repeating: 0, count: N * 2 * D)
        mod.withUnsafeBufferPointer { m in
            dmod.withUnsafeMutableBufferPointer { dm in
                layerNormModulateBackward(dInp: &dx, dShift: dm.baseAddress!, dScale: dm.baseAddress! + D, dOut: dy, inp: x,
                                          mean: mean, rstd: rstd, scale: m.baseAddress! + D, modStride: 2 * D, N: N, T: T, D: D)
            }
        }
        let (x0, m0) = (x, mod)
        #expect(finiteDifferenceCheck("layernorm+modulate dInp", values: &x, analytic: dx, h: 1e-3) { weightedSum(run($0, m0), dy) } <= 1)
        #expect(finiteDifferenceCheck("layernorm+modulate dShift/dScale", values: &mod, analytic: dmod) { weightedSum(run(x0, $0), dy) } <= 1)
    }

    @Test func geluAndSilu() {
        let n = 40
        var x = randomArray(n, seed: 8, scale: 4)
        let dy = randomArray(n, seed: 9)
        var dg = [Float](repeating: 0, count: n), ds = dg
        geluBackward(dInp: &dg, dOut: dy, inp: x, count: n)
        siluBackward(dInp: &ds, dOut: dy, inp: x, count: n)
        var inPlace = dy
        geluBackwardInPlace(&inPlace, inp: x, count: n)
        #expect(inPlace == dg)
        #expect(finiteDifferenceCheck("gelu_tanh", values: &x, analytic: dg, h: 1e-3) { v in
            var o = [Float](repeating: 0, count: n); geluForward(out: &o, inp: v, count: n); return weightedSum(o, dy) } <= 1)
        #expect(finiteDifferenceCheck("silu", values: &x, analytic: ds, h: 1e-3) { v in
            var o = [Float](repeating: 0, count: n); siluForward(out: &o, inp: v, count: n); return weightedSum(o, dy) } <= 1)
        // The tanh form itself, against the formula in double.
        var o = [Float](repeating: 0, count: n)
        geluForward(out: &o, inp: x, count: n)
        for i in 0..<n {
            let v = Double(x[i])
            let ref = 0.5 * v * (1 + tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v)))
            #expect(abs(Double(o[i]) - ref) < 1e-5)
        }
    }

    @Test func gatedResidual() {
        let N = 2, T = 3, D = 4
        let res = randomArray(N * T * D, seed: 10)
        var y = randomArray(N * T * D, seed: 11), gate = randomArray(N * D, seed: 12)
        let dOut = randomArray(N * T * D, seed: 13)
        func run(_ y: [Float], _ g: [Float]) -> [Float] {
            var o = [Float](repeating: 0, count: N * T * D)
            gatedResidualForward(out: &o, res: res, y: y, gate: g, modStride: D, N: N, T: T, D: D)
            return o
        }
        var dy = [Float](repeating: 0, count: N * T * D), dg = [Float](repeating: 0, count: N * D)
        gatedResidualBackward(dY: &dy, dGate: &dg, dOut: dOut, y: y, gate: gate, modStride: D, N: N, T: T, D: D)
        let (y0, g0) = (y, gate)
        #expect(finiteDifferenceCheck("gate dY", values: &y, analytic: dy) { weightedSum(run($0, g0), dOut) } <= 1)
        #expect(finiteDifferenceCheck("gate dGate", values: &gate, analytic: dg) { weightedSum(run(y0, $0), dOut) } <= 1)
    }

    @Test func attention() {
        let N = 2, T = 5, D = 6, H = 2
        var qkv = randomArray(N * T * 3 * D, seed: 14, scale: 1.5)
        let dOut = randomArray(N * T * D, seed: 15)
        func run(_ qkv: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: N * T * D), probs = [Float](repeating: 0, count: N * H * T * T)
            attentionForward(out: &out, probs: &probs, qkv: qkv, N: N, T: T, D: D, H: H)
            return out
        }
        var out = [Float](repeating: 0, count: N * T * D), probs = [Float](repeating: 0, count: N * H * T * T)
        attentionForward(out: &out, probs: &probs, qkv: qkv, N: N, T: T, D: D, H: H)
        // Rows of P sum to one.
        for r in 0..<(N * H * T) { #expect(abs(probs[(r * T)..<(r * T + T)].reduce(0, +) - 1) < 1e-5) }
        var dqkv = [Float](repeating: 0, count: N * T * 3 * D)
        var scratch = [Float](repeating: 0, count: Parallel.workers * T * T)
        attentionBackward(dQKV: &dqkv, scratch: &scratch, scratchWorkers: Parallel.workers, dOut: dOut, probs: &probs, qkv: qkv, N: N, T: T, D: D, H: H)
        #expect(finiteDifferenceCheck("attention dQKV", values: &qkv, analytic: dqkv, h: 1e-3) { weightedSum(run($0), dOut) } <= 1)
    }

    @Test func patchifyUnpatchify() {
        let N = 2, C = 2, S = 4, p = 2, g = S / p
        // patchify puts pixel (c, gi·p+i, gj·p+j) at token gi·g+gj, feature (c·p + i)·p + j.
        let img = (0..<(N * C * S * S)).map(Float.init)
        var patches = [Float](repeating: 0, count: N * g * g * C * p * p)
        patchify(out: &patches, images: img, N: N, C: C, S: S, p: p)
        let (n, c, gi, gj, i, j) = (1, 1, 1, 0, 1, 1)
        #expect(patches[((n * g * g) + gi * g + gj) * C * p * p + (c * p + i) * p + j]
                == img[((n * C + c) * S + gi * p + i) * S + gj * p + j])
        // unpatchify puts token feature (i·p + j)·OC + c at pixel (c, gi·p+i, gj·p+j); its
        // backward is the inverse permutation, so a round trip is the identity, and FD of
        // L = Σ w ⊙ unpatchify(x) equals unpatchifyBackward(w).
        let OC = 3
        var tokens = randomArray(N * g * g * p * p * OC, seed: 16)
        let w = randomArray(tokens.count, seed: 17)
        var dTok = [Float](repeating: 0, count: tokens.count)
        unpatchifyBackward(dTokens: &dTok, dImages: w, N: N, OC: OC, S: S, p: p)
        #expect(finiteDifferenceCheck("unpatchify", values: &tokens, analytic: dTok) { v in
            var o = [Float](repeating: 0, count: v.count); unpatchify(out: &o, tokens: v, N: N, OC: OC, S: S, p: p); return weightedSum(o, w) } <= 1)
    }

    @Test func embeddingsAndPositions() {
        // Label table: gradient goes to the used rows (incl. the null row K), others stay zero.
        let K = 3, D = 4
        var table = randomArray((K + 1) * D, seed: 18)
        let labels = [2, 3, 2]  // 3 = null class
        let dOut = randomArray(labels.count * D, seed: 19)
        var dTable = [Float](repeating: 0, count: table.count)
        embeddingBackward(dTable: &dTable, dOut: dOut, labels: labels, D: D)
        #expect(dTable[0..<D].allSatisfy { $0 == 0 })
        #expect(finiteDifferenceCheck("label table", values: &table, analytic: dTable) { t in
            var o = [Float](repeating: 0, count: labels.count * D); embeddingForward(out: &o, table: t, labels: labels, D: D); return weightedSum(o, dOut) } <= 1)
        // Timestep features: [cos | sin], max period 10000.
        var f = [Float](repeating: 0, count: 2 * 256)
        timestepFrequencies(out: &f, t: [0, 10], dim: 256)
        #expect(f[0] == 1 && f[128] == 0)
        #expect(abs(f[256 + 1] - Float(cos(10 * exp(-log(10000.0) / 128)))) < 1e-5)
        #expect(abs(f[256 + 128 + 1] - Float(sin(10 * exp(-log(10000.0) / 128)))) < 1e-5)
        // Positions: first D/2 channels encode the column, each half [sin | cos].
        let pe = sinCosPositionTable(D: 8, grid: 3)
        let token = 1 * 3 + 2  // row 1, column 2
        #expect(abs(pe[token * 8 + 0] - Float(sin(2.0))) < 1e-7)
        #expect(abs(pe[token * 8 + 2] - Float(cos(2.0))) < 1e-7)
        #expect(abs(pe[token * 8 + 4] - Float(sin(1.0))) < 1e-7)
    }
}

@Suite struct FastMathTests {
    /// The vectorized exp against libm, and GELU (computed as x·σ(2u)) and its slope against
    /// the tanh formula in double, over their whole useful range.
    @Test func accuracy() {
        var worstExp = 0.0, worstGelu = 0.0, worstSlope = 0.0
        var x: Float = -87
        while x < 88 {
            let e = Double(fastExp(x)), ref = exp(Double(x))
            worstExp = max(worstExp, abs(e - ref) / ref)
            x += 0.0137
        }
        let n = 40_000
        let xs = (0..<n).map { Float(-20 + 40 * Double($0) / Double(n)) }
        var g = [Float](repeating: 0, count: n), slope = [Float](repeating: 1, count: n)
        geluForward(out: &g, inp: xs, count: n)
        geluBackwardInPlace(&slope, inp: xs, count: n)
        let k = (2 / Double.pi).squareRoot()
        for i in 0..<n {
            let v = Double(xs[i])
            let th = tanh(k * (v + 0.044715 * v * v * v))
            let ref = 0.5 * v * (1 + th)
            let dref = 0.5 * (1 + th) + 0.5 * v * (1 - th * th) * k * (1 + 3 * 0.044715 * v * v)
            worstGelu = max(worstGelu, abs(Double(g[i]) - ref) / max(1, abs(ref)))
            worstSlope = max(worstSlope, abs(Double(slope[i]) - dref))
        }
        print("fastExp max rel err \(worstExp), gelu max err \(worstGelu), gelu′ max abs err \(worstSlope)")
        #expect(worstExp < 5e-7)
        #expect(worstGelu < 1e-6)
        #expect(worstSlope < 5e-6)  // float rounding of s + 2x·s(1−s)·u′ at |x| ≈ 3
        var zero = [Float](repeating: 1, count: 1)
        geluForward(out: &zero, inp: [0], count: 1)
        #expect(zero[0] == 0)
    }

    /// The fused epilogues compute exactly what the separate passes compute.
    @Test func fusedGeluEpilogues() {
        let M = 37, IC = 24, OC = 40
        let x = randomArray(M * IC, seed: 21), w = randomArray(OC * IC, seed: 22), b = randomArray(OC, seed: 23)
        var pre = [Float](repeating: 0, count: M * OC), act = pre, pre2 = pre, act2 = pre
        Parallel.withWorkers(2) {
            pre.withUnsafeMutableBufferPointer { p in
                act.withUnsafeMutableBufferPointer { a in
                    linearForward(out: p.baseAddress!, inp: x, weight: w, bias: b, M: M, IC: IC, OC: OC,
                                  epilogue: .gelu(act: a.baseAddress!))
                }
            }
            linearForward(out: &pre2, inp: x, weight: w, bias: b, M: M, IC: IC, OC: OC)
            geluForward(out: &act2, inp: pre2, count: M * OC)
        }
        #expect(pre == pre2)
        #expect(act == act2)

        let dy = randomArray(M * OC, seed: 24)
        var dx = [Float](repeating: 0, count: M * IC), dx2 = dx
        var dw = [Float](repeating: 0, count: OC * IC), dw2 = dw
        let preIn = randomArray(M * IC, seed: 25)
        Parallel.withWorkers(2) {
            linearBackward(dInp: &dx, dWeight: &dw, dBias: nil, dOut: dy, inp: x, weight: w, M: M, IC: IC, OC: OC,
                           overwriteInput: true, inputEpilogue: .geluBackward(preact: preIn))
            linearBackward(dInp: &dx2, dWeight: &dw2, dBias: nil, dOut: dy, inp: x, weight: w, M: M, IC: IC, OC: OC,
                           overwriteInput: true)
            geluBackwardInPlace(&dx2, inp: preIn, count: M * IC)
        }
        #expect(dx == dx2)
        #expect(dw == dw2)
    }
}

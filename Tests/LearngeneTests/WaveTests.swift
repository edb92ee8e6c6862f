import Foundation
import Testing
import DiT
import Formats
import Tensors
@testable import Learngene

// WAVE (methods.md §4): the Kronecker-by-reshape kernels, gradients, the DiT hook, the Van
// Loan–Pitsianis initialization, TLEG as a special case, and files.

private func waveRandom(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var rng = RandomStream(seed: seed)
    var a = [Float](repeating: 0, count: n)
    a.withUnsafeMutableBufferPointer { rng.fillUniform($0.baseAddress!, count: n, low: -scale, high: scale) }
    return a
}

private func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// The explicit Kronecker product A (p×q) ⊗ B (r×s): block (i, j) is A[i, j]·B.
private func kron(_ A: [Float], _ p: Int, _ q: Int, _ B: [Float], _ r: Int, _ s: Int) -> [Float] {
    var out = [Float](repeating: 0, count: p * r * q * s)
    for i in 0..<p { for j in 0..<q { for k in 0..<r { for l in 0..<s {
        out[(i * r + k) * (q * s) + j * s + l] = A[i * q + j] * B[k * s + l]
    } } } }
    return out
}

/// |analytic − central difference| ≤ 2e-3 + 1e-2·|fd| for every checked entry (ratio ≤ 1 passes).
private func fdWorst(_ values: inout [Float], _ analytic: [Float], indices: [Int], h: Float = 1e-2, loss: ([Float]) -> Double) -> Double {
    var worst = 0.0
    for i in indices {
        let orig = values[i]
        values[i] = orig + h
        let lp = loss(values)
        values[i] = orig - h
        let lm = loss(values)
        values[i] = orig
        let fd = (lp - lm) / (2 * Double(h))
        worst = max(worst, abs(fd - Double(analytic[i])) / (2e-3 + 1e-2 * abs(fd)))
    }
    return worst
}

/// A tiny DiT: hidden 8 (qkv 24×8, proj 8×8, fc1 32×8, fc2 8×32, adaLN 48×8), 4 tokens.
let waveTinyConfig = DiTConfig(inputSize: 4, patchSize: 2, inChannels: 1, hiddenSize: 8, depth: 2, numHeads: 2, numClasses: 3)

@Suite struct WaveKroneckerTests {
    @Test(arguments: [
        (6, 4, 2, 2, 1), (6, 8, 3, 2, 3), (4, 6, 4, 3, 2), (5, 7, 1, 7, 2), (4, 6, 4, 6, 2), (6, 4, 1, 1, 3),
    ])
    func reshapeEqualsExplicitKronecker(_ dims: (Int, Int, Int, Int, Int)) {
        let (m1, m2, w1, w2, N) = dims
        let s = KroneckerShape(rows: m1, cols: m2, tileRows: w1, tileCols: w2, count: N)
        let (A, C) = (s.gridRows, s.gridCols)
        let S = waveRandom(N * A * C, seed: 1), T = waveRandom(N * w1 * w2, seed: 2)
        var expected = [Float](repeating: 0, count: m1 * m2)
        for t in 0..<N {
            let k = kron(Array(S[(t * A * C)..<((t + 1) * A * C)]), A, C, Array(T[(t * w1 * w2)..<((t + 1) * w1 * w2)]), w1, w2)
            for i in 0..<k.count { expected[i] += k[i] }
        }
        var W = [Float](repeating: .nan, count: m1 * m2), R = W
        kroneckerSumForward(out: &W, scratch: &R, scalers: S, templates: T, shape: s)
        #expect(maxAbsDiff(W, expected) < 1e-5, "W \(m1)×\(m2), tiles \(w1)×\(w2), N \(N)")

        // Backward against the naive sums: dS_t[a,c] = Σ_bd dW[a,b,c,d] T_t[b,d], dT_t[b,d] = Σ_ac S_t[a,c] dW[a,b,c,d].
        let dW = waveRandom(m1 * m2, seed: 3)
        var dS = [Float](repeating: 0.5, count: S.count), dT = [Float](repeating: -0.25, count: T.count)
        kroneckerSumBackward(dScalers: &dS, dTemplates: &dT, scratch: &R, dOut: dW, scalers: S, templates: T, shape: s)
        var eS = [Float](repeating: 0.5, count: S.count), eT = [Float](repeating: -0.25, count: T.count)
        for t in 0..<N { for a in 0..<A { for b in 0..<w1 { for c in 0..<C { for d in 0..<w2 {
            let g = dW[(a * w1 + b) * m2 + c * w2 + d]
            eS[t * A * C + a * C + c] += g * T[t * w1 * w2 + b * w2 + d]
            eT[t * w1 * w2 + b * w2 + d] += g * S[t * A * C + a * C + c]
        } } } } }
        #expect(maxAbsDiff(dS, eS) < 1e-4 && maxAbsDiff(dT, eT) < 1e-4, "backward \(m1)×\(m2), tiles \(w1)×\(w2), N \(N)")
    }

    /// TLEG (θ_l = s1·θ_A + s2·θ_B) is WAVE with N = 2 full-size templates and 1×1 scalers.
    @Test func tlegIsTheTwoFullTemplateCase() throws {
        let c = waveTinyConfig
        let settings = WaveSettings { m in let (o, i) = m.shape(c); return WaveTemplateShape(rows: o, cols: i, count: 2) }
        let w = try WaveParameterization(config: c, settings: settings)
        w.initializeRandom(seed: 4)
        for m in BlockMatrix.allCases {
            let (o, i) = m.shape(c)
            #expect(w.tensors.first { $0.name == "scalers.\(m.shortName)" }?.shape == [c.depth, 2, 1, 1])
            let thetaA = Array(UnsafeBufferPointer(start: w.templates(m), count: o * i))
            let thetaB = Array(UnsafeBufferPointer(start: w.templates(m) + o * i, count: o * i))
            for l in 0..<c.depth {
                let s = w.scalers(m, layer: l)
                s[0] = Float(l) + 0.5; s[1] = 1 - 0.75 * Float(l)  // the TLEG coefficients of layer l
                var W = [Float](repeating: 0, count: o * i)
                w.denseWeight(m, layer: l, into: &W)
                let expected = (0..<(o * i)).map { s[0] * thetaA[$0] + s[1] * thetaB[$0] }
                #expect(maxAbsDiff(W, expected) < 1e-6, "\(m.shortName) layer \(l)")
            }
        }
    }
}

@Suite struct WaveParameterizationTests {
    /// Finite differences of dS, dT and dx through one WAVE-served linear (fc1 of layer 1,
    /// non-square 4×2 tiles, N = 3). Perturbing `params` in place also checks that the dense
    /// cache notices every change.
    @Test func gradientsMatchFiniteDifferences() throws {
        let c = waveTinyConfig
        let w = try WaveParameterization(config: c, settings: WaveSettings(templateRows: 4, templateCols: 2, count: 3))
        w.initializeRandom(seed: 7)
        let m = BlockMatrix.fc1, layer = 1
        let (OC, IC) = m.shape(c), M = 5
        var x = waveRandom(M * IC, seed: 8)
        let dy = waveRandom(M * OC, seed: 9)
        func loss(_ x: [Float]) -> Double {
            var out = [Float](repeating: 0, count: M * OC)
            w.forward(m, layer: layer, out: &out, inp: x, rows: M, rowsPerSample: 1, labels: Array(repeating: 0, count: M))
            return zip(out, dy).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        _ = loss(x)
        w.zeroGrad()
        var dx = [Float](repeating: 0, count: M * IC)
        w.backward(m, layer: layer, dInp: &dx, dOut: dy, inp: x, rows: M, rowsPerSample: 1, labels: Array(repeating: 0, count: M), overwriteInput: true)
        let x0 = x
        #expect(fdWorst(&x, dx, indices: Array(0..<x.count), loss: loss) <= 1)

        var p = w.params.toArray()
        let g = w.grads.toArray()
        let tRange = w.templateRange(m), sRange = w.scalerRange(m, layer)
        let other = w.scalerRange(m, 0)  // another layer's scalers: zero gradient
        let lossP: ([Float]) -> Double = { v in
            v.withUnsafeBufferPointer { w.params.data.update(from: $0.baseAddress!, count: v.count) }
            return loss(x0)
        }
        #expect(fdWorst(&p, g, indices: Array(tRange), loss: lossP) <= 1, "dTemplates")
        #expect(fdWorst(&p, g, indices: Array(sRange), loss: lossP) <= 1, "dScalers")
        #expect(fdWorst(&p, g, indices: Array(other), loss: lossP) <= 1, "other layer")
        #expect(g[other].allSatisfy { $0 == 0 })
        #expect(g[tRange].contains { $0 != 0 } && g[sRange].contains { $0 != 0 })
    }

    /// The cache is rebuilt exactly when the factors of a (type, layer) change.
    @Test func cacheRebuildsOnlyWhatChanged() throws {
        let c = waveTinyConfig
        let w = try WaveParameterization(config: c, settings: WaveSettings(templateSize: 4, count: 2))
        w.initializeRandom(seed: 1)
        let x = waveRandom(4 * 8, seed: 2)
        var out = [Float](repeating: 0, count: 4 * 8)
        func run() { w.forward(.proj, layer: 0, out: &out, inp: x, rows: 4, rowsPerSample: 4, labels: [0]); w.forward(.proj, layer: 1, out: &out, inp: x, rows: 4, rowsPerSample: 4, labels: [0]) }
        run(); #expect(w.denseBuilds == 2)
        run(); #expect(w.denseBuilds == 2)
        w.scalers(.proj, layer: 1)[0] += 1
        run(); #expect(w.denseBuilds == 3)
        w.templates(.proj)[0] += 1
        run(); #expect(w.denseBuilds == 5)
        w.templates(.fc1)[0] += 1  // another type's bank
        run(); #expect(w.denseBuilds == 5)
    }

    /// A WAVE-hooked DiT computes what the dense DiT with the materialized weights computes,
    /// and its factor gradients are the dense dW mapped through the Kronecker backward.
    @Test func hookedModelMatchesDenseModel() throws {
        let c = waveTinyConfig
        let dense = DiTModel(config: c)
        dense.initializeWeights(seed: 3)
        var rng = RandomStream(seed: 5)
        rng.fillNormal(dense.params, std: 0.2)  // every parameter non-zero (adaLN and final layer too)
        let w = try WaveParameterization(config: c, settings: WaveSettings(templateRows: 4, templateCols: 2, count: 2))
        w.initializeRandom(seed: 6)
        rng.fillNormal(w.scalers(.adaLN, layer: 0), count: c.depth * w.shapes[BlockMatrix.adaLN.rawValue].count * w.shapes[BlockMatrix.adaLN.rawValue].scalerSize, std: 0.5)
        w.writeDenseWeights(into: dense)
        let hooked = DiTModel(config: c)
        hooked.params.copy(from: dense.params)
        for l in 0..<c.depth {
            for m in BlockMatrix.allCases {
                let (o, i) = m.shape(c)
                hooked.parameter("blocks.\(l).\(m.weightName)").update(repeating: .nan, count: o * i)  // never read
            }
        }
        hooked.blockWeights = w
        let N = 3, n = N * c.inChannels * c.inputSize * c.inputSize
        let x = waveRandom(n, seed: 7), t = [5, 500, 999], y = [0, 2, 3]
        var od = [Float](repeating: 0, count: 2 * n), oh = od
        dense.forward(x: x, t: t, y: y, out: &od)
        hooked.forward(x: x, t: t, y: y, out: &oh)
        let scale = od.reduce(0) { max($0, abs($1)) }
        #expect(scale > 0.1)
        #expect(maxAbsDiff(od, oh) <= 1e-5 * scale, "max |dense − hooked| = \(maxAbsDiff(od, oh))")

        let dOut = waveRandom(2 * n, seed: 8)
        dense.zeroGrad(); hooked.zeroGrad(); w.zeroGrad()
        dense.backward(dOut: dOut)
        hooked.backward(dOut: dOut)
        var expected = [Float](repeating: 0, count: w.params.count)
        for l in 0..<c.depth {
            for m in BlockMatrix.allCases {
                let s = w.shapes[m.rawValue]
                var scratch = [Float](repeating: 0, count: s.rows * s.cols)
                expected.withUnsafeMutableBufferPointer { e in
                    kroneckerSumBackward(dScalers: e.baseAddress! + w.scalerOffset(m, l), dTemplates: e.baseAddress! + w.templateOffsets[m.rawValue],
                                         scratch: &scratch, dOut: dense.gradient("blocks.\(l).\(m.weightName)"),
                                         scalers: w.scalers(m, layer: l), templates: w.templates(m), shape: s)
                }
            }
        }
        let g = w.grads.toArray(), gScale = expected.reduce(0) { max($0, abs($1)) }
        #expect(maxAbsDiff(g, expected) <= 1e-4 * gScale, "factor gradients: max diff \(maxAbsDiff(g, expected)) of \(gScale)")
        for e in dense.layout.entries where !(e.name.hasPrefix("blocks.") && e.name.hasSuffix(".weight")) {
            let a = Array(UnsafeBufferPointer(start: dense.grads.data + e.offset, count: e.count))
            let b = Array(UnsafeBufferPointer(start: hooked.grads.data + e.offset, count: e.count))
            let s = max(a.reduce(0) { max($0, abs($1)) }, 1e-3)
            #expect(maxAbsDiff(a, b) <= 1e-4 * s, "\(e.name)")
        }
    }

    @Test func templateSizeMustDivideEveryMatrix() {
        let c = waveTinyConfig  // hidden 8: proj 8×8, fc2 8×32
        #expect(WaveSettings(templateSize: 4, count: 1).problems(for: c).isEmpty)
        let p = WaveSettings(templateRows: 3, templateCols: 4, count: 1).problems(for: c)
        #expect(p.count == 3)  // proj, fc2 (8 rows), fc1 (32 rows); qkv 24 and adaLN 48 are fine
        #expect(p.first { $0.contains("proj") }?.contains("does not divide the 8×8 matrix") == true)
        #expect(throws: LearngeneError.self) { try WaveParameterization(config: c, settings: WaveSettings(templateSize: 3, count: 1)) }
    }
}

@Suite struct WaveInitTests {
    /// Weights that are exactly Σ_t S_t ⊗ T_t with templates shared over the layers are
    /// recovered by Van Loan–Pitsianis, and the error function says so.
    @Test func vanLoanRecoversExactSharedTemplateWeights() throws {
        let c = DiTConfig(inputSize: 4, patchSize: 2, inChannels: 1, hiddenSize: 16, depth: 3, numHeads: 2, numClasses: 3)
        let settings = WaveSettings(templateRows: 8, templateCols: 4, count: 2)
        let truth = try WaveParameterization(config: c, settings: settings)
        truth.initializeRandom(seed: 11)
        var rng = RandomStream(seed: 12)
        let ada = truth.shapes[BlockMatrix.adaLN.rawValue]
        rng.fillNormal(truth.scalers(.adaLN, layer: 0), count: c.depth * ada.count * ada.scalerSize)
        let model = DiTModel(config: c)
        model.initializeWeights(seed: 1)
        truth.writeDenseWeights(into: model)
        #expect(truth.approximationError(to: model).total == 0)
        let w = try WaveParameterization.condense(from: model, settings: settings)
        let err = w.approximationError(to: model)
        print("WAVE Van Loan on exact N=2 weights: \(err)")
        #expect(err.total < 1e-5)
        for m in BlockMatrix.allCases { #expect(err.perMatrix[m]! < 1e-5, "\(m.shortName)") }

        // With one template too few, the error is clearly not zero.
        let short = try WaveParameterization.condense(from: model, settings: WaveSettings(templateRows: 8, templateCols: 4, count: 1))
        #expect(short.approximationError(to: model).total > 1e-2)
    }

    /// For unstructured weights the best shared-template approximation improves with N, and
    /// with N = min(L·A·C, B·D) it is exact.
    @Test func vanLoanErrorDecreasesWithTemplateCount() throws {
        let c = DiTConfig(inputSize: 4, patchSize: 2, inChannels: 1, hiddenSize: 8, depth: 2, numHeads: 2, numClasses: 3)
        let model = DiTModel(config: c)
        model.initializeWeights(seed: 2)
        var rng = RandomStream(seed: 3)
        for l in 0..<c.depth {
            let (o, i) = BlockMatrix.adaLN.shape(c)
            rng.fillNormal(model.parameter("blocks.\(l).\(BlockMatrix.adaLN.weightName)"), count: o * i, std: 0.1)
        }
        var errors: [Double] = []
        for n in [1, 2, 4, 8] {
            let w = try WaveParameterization.condense(from: model, settings: WaveSettings(templateSize: 4, count: n))
            errors.append(w.approximationError(to: model).total)
        }
        print("WAVE Van Loan on random weights, N = 1, 2, 4, 8: \(errors.map { String(format: "%.4f", $0) })")
        for k in 1..<errors.count { #expect(errors[k] < errors[k - 1]) }
        #expect(errors[0] > 0.3)
        // proj 8×8 with 4×4 tiles: L·A·C = 2·2·2 = 8 rows, so N = 8 is a full SVD.
        let full = try WaveParameterization.condense(from: model, settings: WaveSettings(templateSize: 4, count: 8))
        #expect(full.approximationError(to: model).perMatrix[.proj]! < 1e-5)
    }

    /// A freshly initialized ancestry has zero adaLN weights: they are reproduced exactly
    /// (zero scalers) and the templates stay random, so the scalers can learn.
    @Test func zeroWeightsGiveZeroScalersAndRandomTemplates() throws {
        let c = waveTinyConfig
        let model = DiTModel(config: c)
        model.initializeWeights(seed: 4)
        let w = try WaveParameterization.condense(from: model, settings: WaveSettings(templateSize: 4, count: 2), seed: 9)
        let ada = w.shapes[BlockMatrix.adaLN.rawValue]
        #expect(UnsafeBufferPointer(start: w.scalers(.adaLN, layer: 0), count: c.depth * ada.count * ada.scalerSize).allSatisfy { $0 == 0 })
        #expect(UnsafeBufferPointer(start: w.templates(.adaLN), count: ada.count * ada.templateSize).contains { $0 != 0 })
        #expect(w.approximationError(to: model).perMatrix[.adaLN] == 0)
    }
}

@Suite struct WaveFileTests {
    @Test func saveLoadRoundTripAndRefusals() throws {
        let c = waveTinyConfig
        let w = try WaveParameterization(config: c, settings: WaveSettings(templateRows: 4, templateCols: 2, count: 3))
        w.initializeRandom(seed: 2)
        let bytes = SafeTensors.serialize(w.file(extra: ["stage": "condense"]))
        let back = try WaveParameterization.load(from: try SafeTensors.parse(bytes, name: "wave"))
        #expect(back.params.toArray() == w.params.toArray())
        #expect(back.settings == w.settings && back.config == w.config)
        #expect(back.learngeneRanges == w.learngeneRanges && back.sizeSpecificRanges == w.sizeSpecificRanges)
        #expect(w.learngeneCount == BlockMatrix.allCases.count * 3 * 8)

        func message(_ f: SafeTensors.File) -> String {
            do { _ = try WaveParameterization.load(from: f); return "" } catch { return "\(error)" }
        }
        var f = w.file()
        f.tensors["scalers.fc1"] = .f32([Float](repeating: 0, count: 2 * 3 * 4 * 4), shape: [2, 3, 4, 4])
        #expect(message(f).contains("scalers.fc1") && message(f).contains("[2, 3, 8, 4]"))
        f = w.file(); f.tensors["templates.qkv"] = nil
        #expect(message(f).contains("lacks tensor templates.qkv"))
        f = w.file(); f.tensors["extra"] = .f32([1], shape: [1])
        #expect(message(f).contains("unexpected tensor extra"))
        f = w.file(); f.metadata["learngene.method"] = "fine"
        #expect(message(f).contains("a FINE learngene, not a WAVE one"))
        let other = DiTConfig(inputSize: 4, patchSize: 2, inChannels: 1, hiddenSize: 8, depth: 3, numHeads: 2, numClasses: 3)
        #expect(throws: LearngeneError.self) { try WaveParameterization.load(from: w.file(), config: other) }
    }
}

import Foundation
import Formats
import Tensors
import Testing
@testable import DiT

// Gaussian diffusion (Sources/DiT/Diffusion*.swift) against DiT's `diffusion/` package:
// the reference fixtures (Tests/DiTTests/Fixtures/dit-ref-{a,b}.safetensors, see
// README-dit-reference.md there) and independent float64 re-implementations written here from
// the README's conventions. Every comparison prints its max abs / max rel difference.

// MARK: - helpers (private to this file; names prefixed to stay clear of other test files)

private enum DF {
    static func load(_ name: String) throws -> SafeTensors.File {
        guard let path = Bundle.module.path(forResource: name, ofType: "safetensors", inDirectory: "Fixtures") else {
            struct MissingFixture: Error { var name: String }
            throw MissingFixture(name: name)
        }
        return try SafeTensors.read(contentsOf: path)
    }

    static func floats(_ f: SafeTensors.File, _ k: String) -> [Float] { f[k]!.floats() }
    static func doubles(_ f: SafeTensors.File, _ k: String) -> [Double] { f[k]!.doubles() }
    static func ints(_ f: SafeTensors.File, _ k: String) -> [Int] { f[k]!.ints() }

    struct Stat { var maxAbs = 0.0, maxRel = 0.0, refMax = 0.0, ok = true }

    /// Compares elementwise with |Δ| ≤ atol + rtol·|ref|; prints max|Δ|, max rel (|Δ|/max(|ref|, 1e-12)).
    @discardableResult
    static func check(_ name: String, _ ours: [Double], _ ref: [Double], atol: Double, rtol: Double,
                      sourceLocation: SourceLocation = #_sourceLocation) -> Stat {
        #expect(ours.count == ref.count, "\(name): \(ours.count) vs \(ref.count) values", sourceLocation: sourceLocation)
        var s = Stat()
        for i in 0..<min(ours.count, ref.count) {
            let d = abs(ours[i] - ref[i])
            s.maxAbs = max(s.maxAbs, d)
            s.maxRel = max(s.maxRel, d / max(abs(ref[i]), 1e-12))
            s.refMax = max(s.refMax, abs(ref[i]))
            if !(d <= atol + rtol * abs(ref[i])) { s.ok = false }
        }
        print("DiffusionTests \(name.padding(toLength: 46, withPad: " ", startingAt: 0)) max|Δ|=\(String(format: "%.3e", s.maxAbs))  max rel=\(String(format: "%.3e", s.maxRel))  max|ref|=\(String(format: "%.3e", s.refMax))  max|Δ|/max|ref|=\(String(format: "%.3e", s.maxAbs / max(s.refMax, 1e-300)))")
        #expect(s.ok, "\(name): max|Δ| \(s.maxAbs) exceeds atol \(atol) + rtol \(rtol)·|ref|", sourceLocation: sourceLocation)
        return s
    }

    @discardableResult
    static func check(_ name: String, _ ours: [Float], _ ref: [Float], atol: Double, rtol: Double,
                      sourceLocation: SourceLocation = #_sourceLocation) -> Stat {
        check(name, ours.map(Double.init), ref.map(Double.init), atol: atol, rtol: rtol, sourceLocation: sourceLocation)
    }
}

/// Independent float64 re-implementation of DiT's diffusion maths from the README conventions,
/// driven by the fixture's own float64 schedule arrays (no code shared with Sources/DiT).
private struct Ref64 {
    let betas: [Double], acp: [Double], plvc: [Double]
    let acpPrev: [Double], c1: [Double], c2: [Double]

    init(betas: [Double], acp: [Double], plvc: [Double]) {
        self.betas = betas; self.acp = acp; self.plvc = plvc
        let prev = [1.0] + acp.dropLast()
        acpPrev = prev
        c1 = betas.indices.map { betas[$0] * prev[$0].squareRoot() / (1 - acp[$0]) }
        c2 = betas.indices.map { (1 - prev[$0]) * (1 - betas[$0]).squareRoot() / (1 - acp[$0]) }
    }

    init(fixture f: SafeTensors.File, prefix: String) {
        self.init(betas: DF.doubles(f, "\(prefix)/betas"), acp: DF.doubles(f, "\(prefix)/alphas_cumprod"),
                  plvc: DF.doubles(f, "\(prefix)/posterior_log_variance_clipped"))
    }

    func coef1(_ t: Int) -> Double { c1[t] }
    func coef2(_ t: Int) -> Double { c2[t] }

    static func cdf(_ z: Double) -> Double { 0.5 * (1 + tanh((2 / Double.pi).squareRoot() * (z + 0.044715 * z * z * z))) }

    /// p_mean_variance from a model output (N, 2C, H, W) at x_t; t indexes this schedule.
    func pmv(_ out: [Double], _ xt: [Double], _ t: [Int], clip: Bool)
        -> (mean: [Double], variance: [Double], logVariance: [Double], predXstart: [Double]) {
        let n = t.count, m = xt.count / n
        var mean = xt, v = xt, lv = xt, px = xt
        for s in 0..<n {
            let tt = t[s]
            for j in 0..<m {
                let i = s * m + j
                let eps = out[s * 2 * m + j], vv = out[s * 2 * m + m + j]
                var p = (1 / acp[tt]).squareRoot() * xt[i] - (1 / acp[tt] - 1).squareRoot() * eps
                if clip { p = min(max(p, -1), 1) }
                let frac = (vv + 1) / 2
                lv[i] = frac * log(betas[tt]) + (1 - frac) * plvc[tt]
                v[i] = exp(lv[i])
                px[i] = p
                mean[i] = coef1(tt) * p + coef2(tt) * xt[i]
            }
        }
        return (mean, v, lv, px)
    }

    /// training_losses with the VB evaluated on `epsFrozen` (DiT's `frozen_out`), so that its
    /// derivative w.r.t. `out` is DiT's stop-gradient gradient and can be finite-differenced.
    func losses(x0: [Double], noise: [Double], t: [Int], out: [Double], epsFrozen: [Double])
        -> (xt: [Double], mse: [Double], vb: [Double], loss: [Double], mean: Double) {
        let n = t.count, m = x0.count / n
        var xt = x0, mse = [Double](repeating: 0, count: n), vb = mse
        for s in 0..<n {
            let tt = t[s]
            var sm = 0.0, sv = 0.0
            for j in 0..<m {
                let i = s * m + j
                xt[i] = acp[tt].squareRoot() * x0[i] + (1 - acp[tt]).squareRoot() * noise[i]
                let eps = out[s * 2 * m + j], vv = out[s * 2 * m + m + j]
                sm += (noise[i] - eps) * (noise[i] - eps)
                let p = (1 / acp[tt]).squareRoot() * xt[i] - (1 / acp[tt] - 1).squareRoot() * epsFrozen[i]
                let mu = coef1(tt) * p + coef2(tt) * xt[i]
                let frac = (vv + 1) / 2
                let lv = frac * log(betas[tt]) + (1 - frac) * plvc[tt]
                if tt > 0 {
                    let trueMu = coef1(tt) * x0[i] + coef2(tt) * xt[i]
                    let lt = plvc[tt]
                    sv += 0.5 * (-1 + lv - lt + exp(lt - lv) + (trueMu - mu) * (trueMu - mu) * exp(-lv))
                } else {
                    let inv = exp(-0.5 * lv), cx = x0[i] - mu
                    let cp = Ref64.cdf(inv * (cx + 1 / 255.0)), cm = Ref64.cdf(inv * (cx - 1 / 255.0))
                    let lp = x0[i] < -0.999 ? log(max(cp, 1e-12)) : x0[i] > 0.999 ? log(max(1 - cm, 1e-12)) : log(max(cp - cm, 1e-12))
                    sv += -lp
                }
            }
            mse[s] = sm / Double(m)
            vb[s] = sv / Double(m) / log(2.0)
        }
        let loss = (0..<n).map { mse[$0] + vb[$0] }
        return (xt, mse, vb, loss, loss.reduce(0, +) / Double(n))
    }

    /// Central finite differences (h = 1e-6) of mean loss w.r.t. every model-output entry,
    /// holding the VB's ε at `out`'s ε.
    func finiteDifferenceGradient(x0: [Double], noise: [Double], t: [Int], out: [Double]) -> [Double] {
        let n = t.count, m = x0.count / n
        var epsFrozen = [Double](repeating: 0, count: x0.count)
        for s in 0..<n { for j in 0..<m { epsFrozen[s * m + j] = out[s * 2 * m + j] } }
        var o = out, g = out
        let h = 1e-6
        for k in 0..<out.count {
            o[k] = out[k] + h
            let lp = losses(x0: x0, noise: noise, t: t, out: o, epsFrozen: epsFrozen).mean
            o[k] = out[k] - h
            let lm = losses(x0: x0, noise: noise, t: t, out: o, epsFrozen: epsFrozen).mean
            o[k] = out[k]
            g[k] = (lp - lm) / (2 * h)
        }
        return g
    }
}

private let fixtureNames = ["dit-ref-a", "dit-ref-b"]

// MARK: - schedules and respacing

@Suite("Diffusion")
struct DiffusionTests {
    @Test("schedule/* and schedule10/* (float64) match DiT's numpy arrays", arguments: fixtureNames)
    func schedules(_ name: String) throws {
        let f = try DF.load(name)
        let full = try GaussianDiffusion()
        let ten = try GaussianDiffusion(respacing: "10")
        for (prefix, d) in [("schedule", full), ("schedule10", ten)] {
            let ours: [(String, [Double])] = [
                ("betas", d.betas), ("alphas_cumprod", d.alphasCumprod),
                ("posterior_variance", d.posteriorVariance),
                ("posterior_log_variance_clipped", d.posteriorLogVarianceClipped),
            ]
            for (k, v) in ours {
                DF.check("\(name) \(prefix)/\(k)", v, DF.doubles(f, "\(prefix)/\(k)"), atol: 0, rtol: 4e-15)
            }
        }
        let map = DF.ints(f, "sample10/timestep_map")
        print("DiffusionTests \(name) sample10/timestep_map ours \(ten.timestepMap) ref \(map)")
        #expect(ten.timestepMap == map)
        #expect(full.timestepMap == Array(0..<1000))
        // linspace: schedule/betas differs from np.linspace by <= 1.7e-16 (README)
        let lin = GaussianDiffusion.linearBetas(steps: 1000)
        let dev = zip(lin, full.betas).map { abs($0 - $1) }.max()!
        print("DiffusionTests linspace vs recomputed betas max|Δ|=\(dev)")
        #expect(lin[0] == 1e-4 && lin[999] == 0.02 && dev <= 1.7e-16)
    }

    @Test("space_timesteps as respace.py (Python round-half-even, sections, ddimN)")
    func spaceTimesteps() throws {
        let s250 = try GaussianDiffusion.spaceTimesteps(1000, "250")
        #expect(s250.count == 250 && Array(s250.prefix(12)) == [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44])
        #expect(Array(s250.suffix(6)) == [979, 983, 987, 991, 995, 999] && s250.reduce(0, +) == 124_875)
        #expect(try GaussianDiffusion.spaceTimesteps(1000, "7") == [0, 166, 333, 500, 666, 832, 999])  // 166.5 -> 166, 832.5 -> 832
        #expect(try GaussianDiffusion.spaceTimesteps(100, "3,4,5") == [0, 16, 33, 34, 45, 55, 66, 67, 75, 83, 91, 99])
        let s3 = try GaussianDiffusion.spaceTimesteps(1000, "10,20,30")
        #expect(s3.count == 60 && s3.reduce(0, +) == 36_655 && s3[9] == 333 && s3[10] == 334)
        #expect(try GaussianDiffusion.spaceTimesteps(1000, "ddim50") == Array(stride(from: 0, to: 1000, by: 20)))
        #expect(throws: DiffusionError.self) { try GaussianDiffusion.spaceTimesteps(1000, "1001") }
        #expect(throws: DiffusionError.self) { try GaussianDiffusion.spaceTimesteps(1000, "abc") }
        // a respaced process's ᾱ equals the original ᾱ at the kept timesteps
        let base = try GaussianDiffusion()
        let r = try base.respaced("25")
        let d = zip(r.alphasCumprod, r.timestepMap.map { base.alphasCumprod[$0] }).map { abs($0 - $1) / $1 }.max()!
        #expect(d < 1e-13)
        #expect(r.modelTimesteps([0, 24]) == [0, 999])
    }

    // MARK: - q_sample and training_losses

    @Test("q_sample reproduces inter/loss_x_t", arguments: fixtureNames)
    func qSample(_ name: String) throws {
        let f = try DF.load(name)
        let d = try GaussianDiffusion()
        let xt = d.qSample(xStart: DF.floats(f, "input/x"), noise: DF.floats(f, "input/noise"), t: DF.ints(f, "input/t"))
        DF.check("\(name) inter/loss_x_t", xt, DF.floats(f, "inter/loss_x_t"), atol: 1e-6, rtol: 1e-6)
    }

    @Test("training_losses from inter/loss_model_output matches output/loss*", arguments: fixtureNames)
    func losses(_ name: String) throws {
        let f = try DF.load(name)
        let d = try GaussianDiffusion()
        let (terms, _) = d.trainingLosses(xStart: DF.floats(f, "input/x"), noise: DF.floats(f, "input/noise"),
                                          t: DF.ints(f, "input/t"), modelOutput: DF.floats(f, "inter/loss_model_output"))
        DF.check("\(name) output/loss_mse", terms.mse, DF.floats(f, "output/loss_mse"), atol: 1e-5, rtol: 1e-4)
        DF.check("\(name) output/loss_vb", terms.vb, DF.floats(f, "output/loss_vb"), atol: 1e-5, rtol: 1e-4)
        DF.check("\(name) output/loss", terms.loss, DF.floats(f, "output/loss"), atol: 1e-5, rtol: 1e-4)
        DF.check("\(name) output/loss_mean", [terms.lossMean], DF.floats(f, "output/loss_mean"), atol: 1e-5, rtol: 1e-4)
        // the independent float64 reference agrees too (and with the fixture: README's observed ≤ 5e-6)
        let r = Ref64(fixture: f, prefix: "schedule")
        let out = DF.floats(f, "inter/loss_model_output").map(Double.init)
        let n = DF.ints(f, "input/t").count, m = out.count / (2 * n)
        let epsF = (0..<(n * m)).map { out[($0 / m) * 2 * m + $0 % m] }
        let ref = r.losses(x0: DF.floats(f, "input/x").map(Double.init), noise: DF.floats(f, "input/noise").map(Double.init),
                           t: DF.ints(f, "input/t"), out: out, epsFrozen: epsF)
        DF.check("\(name) float64 ref vs fixture output/loss", ref.loss, DF.floats(f, "output/loss").map(Double.init), atol: 1e-5, rtol: 1e-4)
    }

    @Test("d(loss_mean)/d(model output) equals float64 finite differences (VB's ε frozen)", arguments: fixtureNames)
    func gradientFixture(_ name: String) throws {
        let f = try DF.load(name)
        let d = try GaussianDiffusion()
        let x0 = DF.floats(f, "input/x"), noise = DF.floats(f, "input/noise"), t = DF.ints(f, "input/t")
        let out = DF.floats(f, "inter/loss_model_output")
        let (_, grad) = d.trainingLosses(xStart: x0, noise: noise, t: t, modelOutput: out)
        let r = Ref64(fixture: f, prefix: "schedule")
        let fd = r.finiteDifferenceGradient(x0: x0.map(Double.init), noise: noise.map(Double.init), t: t, out: out.map(Double.init))
        let scale = fd.map(abs).max()!
        DF.check("\(name) d loss_mean/d model_output (vs FD64)", grad.map(Double.init), fd, atol: 1e-4 * scale, rtol: 1e-4)
        do {  // per sample and half, to show where float32 differs most (t = 0: the decoder NLL)
            let n = t.count, m = x0.count / n
            for s in 0..<n {
                for (half, off) in [("eps", 0), ("v", m)] {
                    let lo = s * 2 * m + off
                    DF.check("\(name)   sample \(s) (t=\(t[s])) d/d\(half)", grad[lo..<(lo + m)].map(Double.init), Array(fd[lo..<(lo + m)]),
                             atol: 1e-4 * scale, rtol: 1e-4)
                }
            }
        }
        // the ε half is exactly the mse gradient, the v half never depends on the mse
        let n = t.count, m = x0.count / n
        var maxEpsErr = 0.0
        for s in 0..<n { for j in 0..<m {
            let want = 2.0 * (Double(out[s * 2 * m + j]) - Double(noise[s * m + j])) / Double(n * m)
            maxEpsErr = max(maxEpsErr, abs(Double(grad[s * 2 * m + j]) - want))
        } }
        #expect(maxEpsErr < 1e-9)
    }

    @Test("gradient on a tiny case covering t = 0 edges (x = ±1) and t > 0, FD in float64")
    func gradientTiny() throws {
        let d = try GaussianDiffusion()
        // N = 3, C = 1, H = W = 2 (M = 4); t = 0 exercises all three decoder branches
        let t = [0, 1, 700]
        let x0: [Float] = [-1, 1, 0.3, -0.5, 0.9, -0.2, 1, -1, 0.1, 0.7, -0.9, 0.4]
        let noise: [Float] = [0.5, -1.2, 0.3, 0.8, -0.4, 1.1, 0.2, -0.7, 1.5, -0.3, 0.6, -1.0]
        let u: [Float] = [0.3, -0.2, 0.1, -0.25, 0.15, 0.05, -0.3, 0.2, -0.1, 0.35, -0.05, 0.1]
        var out = [Float](repeating: 0, count: 24)
        let vs: [Float] = [-0.8, 0.3, 0.9, -0.1, 0.5, -0.6, 0.0, 1.1, -1.2, 0.4, 0.7, -0.3]
        for s in 0..<3 { for j in 0..<4 {
            out[s * 8 + j] = noise[s * 4 + j] + u[s * 4 + j]
            out[s * 8 + 4 + j] = vs[s * 4 + j]
        } }
        let (terms, grad) = d.trainingLosses(xStart: x0, noise: noise, t: t, modelOutput: out)
        let r = Ref64(betas: d.betas, acp: d.alphasCumprod, plvc: d.posteriorLogVarianceClipped)
        let epsF = (0..<12).map { Double(out[($0 / 4) * 8 + $0 % 4]) }
        let ref = r.losses(x0: x0.map(Double.init), noise: noise.map(Double.init), t: t, out: out.map(Double.init), epsFrozen: epsF)
        DF.check("tiny loss (vs float64 ref)", terms.loss.map(Double.init), ref.loss, atol: 1e-5, rtol: 1e-4)
        let fd = r.finiteDifferenceGradient(x0: x0.map(Double.init), noise: noise.map(Double.init), t: t, out: out.map(Double.init))
        DF.check("tiny d loss_mean/d model_output (vs FD64)", grad.map(Double.init), fd, atol: 1e-4 * fd.map(abs).max()!, rtol: 1e-4)
        #expect(grad.allSatisfy { $0.isFinite })
    }

    // MARK: - p_mean_variance

    /// The fixture stores p_mean_variance's outputs but not the model output at sample/x_t. That
    /// model output can be recovered from them: v from log_variance (LEARNED_RANGE is affine in v)
    /// and ε from pred_xstart where it is not clipped (where it is, any ε beyond the clip does:
    /// we take the ε whose unclipped x̂0 is 2·sign). Feeding it back must reproduce all four
    /// stored outputs, which checks `pMeanVariance` against DiT's own numbers.
    @Test("pMeanVariance reproduces sample/* and sample10/* from the recovered model output", arguments: fixtureNames)
    func pMeanVarianceFixture(_ name: String) throws {
        let f = try DF.load(name)
        let full = try GaussianDiffusion(), ten = try GaussianDiffusion(respacing: "10")
        for (pre, d, sched) in [("sample", full, "schedule"), ("sample10", ten, "schedule10")] {
            let r = Ref64(fixture: f, prefix: sched)
            let xt = DF.floats(f, "\(pre)/x_t"), t = DF.ints(f, "\(pre)/t")
            let px = DF.floats(f, "\(pre)/pred_xstart"), lv = DF.floats(f, "\(pre)/log_variance")
            let n = t.count, m = xt.count / n
            var out = [Float](repeating: 0, count: 2 * n * m)
            var clipped = 0
            for s in 0..<n {
                let tt = t[s], a = (1 / r.acp[tt]).squareRoot(), b = (1 / r.acp[tt] - 1).squareRoot()
                let maxLog = log(r.betas[tt]), minLog = r.plvc[tt]
                for j in 0..<m {
                    let i = s * m + j
                    var target = Double(px[i])
                    if abs(target) >= 1 { target *= 2; clipped += 1 }
                    out[s * 2 * m + j] = Float((a * Double(xt[i]) - target) / b)
                    out[s * 2 * m + m + j] = Float(2 * (Double(lv[i]) - minLog) / (maxLog - minLog) - 1)
                }
            }
            print("DiffusionTests \(name) \(pre): t=\(t), \(clipped)/\(n * m) pred_xstart entries clipped")
            let ours = d.pMeanVariance(modelOutput: out, xT: xt, t: t)
            DF.check("\(name) \(pre)/mean", ours.mean, DF.floats(f, "\(pre)/mean"), atol: 1e-5, rtol: 1e-4)
            DF.check("\(name) \(pre)/variance", ours.variance, DF.floats(f, "\(pre)/variance"), atol: 1e-9, rtol: 1e-4)
            DF.check("\(name) \(pre)/log_variance", ours.logVariance, lv, atol: 1e-5, rtol: 1e-5)
            DF.check("\(name) \(pre)/pred_xstart", ours.predXstart, px, atol: 1e-5, rtol: 1e-4)
        }
    }

    @Test("pMeanVariance vs an independent float64 computation on a synthetic model output", arguments: fixtureNames)
    func pMeanVarianceSynthetic(_ name: String) throws {
        let f = try DF.load(name)
        let full = try GaussianDiffusion(), ten = try GaussianDiffusion(respacing: "10")
        var rng = RandomStream(seed: 1234)
        for (pre, d, sched) in [("sample", full, "schedule"), ("sample10", ten, "schedule10")] {
            let xt = DF.floats(f, "\(pre)/x_t"), t = DF.ints(f, "\(pre)/t")
            let n = t.count, m = xt.count / n
            // ε ~ N(0, 1), v ~ U(−1.2, 1.2) (outside [−1, 1] too: LEARNED_RANGE extrapolates);
            // ε is scaled so that x̂0 is mostly unclipped except at t = 999
            var eps = [Float](repeating: 0, count: n * m), v = eps
            eps.withUnsafeMutableBufferPointer { rng.fillNormal($0.baseAddress!, count: n * m) }
            v.withUnsafeMutableBufferPointer { rng.fillUniform($0.baseAddress!, count: n * m, low: -1.2, high: 1.2) }
            var out = [Float](repeating: 0, count: 2 * n * m)
            for s in 0..<n { for j in 0..<m {
                out[s * 2 * m + j] = eps[s * m + j]
                out[s * 2 * m + m + j] = v[s * m + j]
            } }
            let r = Ref64(fixture: f, prefix: sched)
            for clip in [true, false] {
                let ours = d.pMeanVariance(modelOutput: out, xT: xt, t: t, clipDenoised: clip)
                let ref = r.pmv(out.map(Double.init), xt.map(Double.init), t, clip: clip)
                let tag = "\(name) \(pre) synthetic clip=\(clip)"
                DF.check("\(tag) mean", ours.mean.map(Double.init), ref.mean, atol: 1e-4, rtol: 1e-4)
                DF.check("\(tag) variance", ours.variance.map(Double.init), ref.variance, atol: 1e-9, rtol: 1e-4)
                DF.check("\(tag) log_variance", ours.logVariance.map(Double.init), ref.logVariance, atol: 1e-5, rtol: 1e-5)
                DF.check("\(tag) pred_xstart", ours.predXstart.map(Double.init), ref.predXstart, atol: 1e-4, rtol: 1e-4)
            }
        }
    }

    // MARK: - sampling

    /// The model of a data distribution that is a single point x0 (per channel, per label):
    /// the exact ε-prediction is (x_t − sqrt(ᾱ_t)·x0)/sqrt(1 − ᾱ_t), ᾱ of the original process at
    /// the original-scale timestep the model receives. v = `v`.
    private static func pointModel(_ base: GaussianDiffusion, channels c: Int, spatial hw: Int,
                                   x0: @escaping (_ label: Int, _ channel: Int) -> Double, v: Float = 0) -> DenoiserFn {
        return { x, t, y, out in
            let m = c * hw
            for s in 0..<t.count {
                let ab = base.alphasCumprod[t[s]]
                for ch in 0..<c { for k in 0..<hw {
                    let j = ch * hw + k
                    let e = (Double(x[s * m + j]) - ab.squareRoot() * x0(y[s], ch)) / (1 - ab).squareRoot()
                    out[s * 2 * m + j] = Float(e)
                    out[s * 2 * m + m + j] = v
                } }
            }
        }
    }

    @Test("DDIM (η = 0) and DDPM with the exact ε of a one-point distribution return that point")
    func samplingReturnsPoint() throws {
        let base = try GaussianDiffusion()
        let c = 2, hw = 6
        let points: [[Double]] = [[0.5, -0.25], [0.9, -0.7]]
        let model = DiffusionTests.pointModel(base, channels: c, spatial: hw, x0: { y, ch in points[y][ch] })
        for (sampler, steps) in [(DiffusionSampler.ddim(eta: 0), 50), (.ddim(eta: 0), 1000), (.ddpm, 250), (.ddim(eta: 1), 25)] {
            var rng = RandomStream(seed: 99)
            let x = try base.sample(model: model, shape: [2, c, 2, 3], labels: [0, 1], steps: steps, sampler: sampler,
                                    guidance: 1, nullClass: 2, rng: &rng)
            var worst = 0.0
            for s in 0..<2 { for ch in 0..<c { for k in 0..<hw {
                worst = max(worst, abs(Double(x[s * c * hw + ch * hw + k]) - points[s][ch]))
            } } }
            print("DiffusionTests one-point \(sampler) \(steps) steps: max|x − x0| = \(String(format: "%.3e", worst))")
            #expect(worst < 1e-5)
        }
    }

    @Test("sampling is a function of the seed (same seed → same bits), output in [−1, 1], model called as DiT does")
    func samplingDeterminism() throws {
        let base = try GaussianDiffusion()
        var calls: [(rows: Int, t: Int, y: [Int])] = []
        let model: DenoiserFn = { x, t, y, out in
            calls.append((t.count, t[0], y))
            let m = 3 * 16
            for s in 0..<t.count { for j in 0..<m {
                let xv = x[s * m + j]
                out[s * 2 * m + j] = 0.8 * Foundation.tanh(xv) + 0.05 * Float(y[s]) + Float(t[s]) * 1e-4
                out[s * 2 * m + m + j] = Foundation.sin(xv + Float(y[s]))
            } }
        }
        func run(_ seed: UInt64, _ sampler: DiffusionSampler, _ mode: GuidanceMode) throws -> [Float] {
            var rng = RandomStream(seed: seed)
            return try base.sample(model: model, shape: [2, 3, 4, 4], labels: [1, 3], steps: 10, sampler: sampler,
                                   guidance: 4, cfgMode: mode, nullClass: 5, rng: &rng).toArray()
        }
        for sampler in [DiffusionSampler.ddpm, .ddim(eta: 0), .ddim(eta: 0.5)] {
            for mode in [GuidanceMode.standard, .ditFirstThreeChannels] {
                calls = []
                let a = try run(7, sampler, mode)
                #expect(calls.count == 10)
                #expect(calls.map(\.t) == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0])
                #expect(calls.allSatisfy { $0.rows == 4 && $0.y == [1, 3, 5, 5] })
                let b = try run(7, sampler, mode)
                #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "\(sampler) \(mode): same seed, different bits")
                #expect(a.allSatisfy { $0 >= -1 && $0 <= 1 })
                if sampler != .ddim(eta: 0) {
                    #expect(try run(8, sampler, mode) != a)
                }
            }
        }
        // guidance 1: a single N-row conditional call per step
        calls = []
        var rng = RandomStream(seed: 1)
        _ = try base.sample(model: model, shape: [2, 3, 4, 4], labels: [1, 3], steps: 4, guidance: 1, nullClass: 5, rng: &rng)
        #expect(calls.count == 4 && calls.allSatisfy { $0.rows == 2 && $0.y == [1, 3] })
    }

    @Test("loss, gradient and sampling do not depend on the worker count")
    func workerCountIndependence() throws {
        let f = try DF.load("dit-ref-a")
        let d = try GaussianDiffusion()
        func lossBits() -> [UInt32] {
            let (terms, grad) = d.trainingLosses(xStart: DF.floats(f, "input/x"), noise: DF.floats(f, "input/noise"),
                                                 t: DF.ints(f, "input/t"), modelOutput: DF.floats(f, "inter/loss_model_output"))
            return (terms.loss + [terms.lossMean] + grad).map(\.bitPattern)
        }
        // large enough (N·M = 2·3·32·32) that the elementwise loops really split
        let model: DenoiserFn = { x, t, y, out in
            let m = 3 * 32 * 32
            for s in 0..<t.count { for j in 0..<m {
                out[s * 2 * m + j] = 0.7 * Foundation.tanh(x[s * m + j]) + 0.1 * Float(y[s])
                out[s * 2 * m + m + j] = Foundation.cos(x[s * m + j])
            } }
        }
        func sampleBits(_ sampler: DiffusionSampler) throws -> [UInt32] {
            var rng = RandomStream(seed: 3)
            return try d.sample(model: model, shape: [2, 3, 32, 32], labels: [0, 1], steps: 4, sampler: sampler,
                                guidance: 2, cfgMode: .standard, nullClass: 2, rng: &rng).toArray().map(\.bitPattern)
        }
        let one = Parallel.withWorkers(1) { lossBits() }
        for w in [2, 3] { #expect(Parallel.withWorkers(w) { lossBits() } == one, "loss with \(w) workers") }
        for sampler in [DiffusionSampler.ddpm, .ddim(eta: 0.3)] {
            let ref = try Parallel.withWorkers(1) { try sampleBits(sampler) }
            for w in [2, 3] { #expect(try Parallel.withWorkers(w) { try sampleBits(sampler) } == ref, "\(sampler) with \(w) workers") }
        }
    }

    @Test("guidance forms: standard guides ε; DiT's form guides output channels [0, 3) literally", arguments: [1, 2, 3, 4])
    func guidanceChannels(_ c: Int) {
        let n = 2, hw = 3, per = 2 * c * hw
        // cond row s, channel k: 10·s + k; uncond row: −(10·s + k) − 1
        var out = [Float](repeating: 0, count: 2 * n * per)
        for s in 0..<n { for ch in 0..<(2 * c) { for k in 0..<hw {
            out[s * per + ch * hw + k] = Float(10 * s + ch)
            out[(n + s) * per + ch * hw + k] = -Float(10 * s + ch) - 1
        } } }
        let scale: Float = 1.5
        for mode in [GuidanceMode.standard, .ditFirstThreeChannels] {
            var g = [Float](repeating: .nan, count: n * per)
            out.withUnsafeBufferPointer { o in
                g.withUnsafeMutableBufferPointer { gp in
                    GaussianDiffusion.applyGuidance(modelOutput: o.baseAddress!, batch: n, channels: c, spatial: hw,
                                                    scale: scale, mode: mode, out: gp.baseAddress!)
                }
            }
            let guidedChannels = mode == .standard ? c : min(3, 2 * c)
            for s in 0..<n { for ch in 0..<(2 * c) { for k in 0..<hw {
                let cond = Float(10 * s + ch), uncond = -cond - 1
                let want = ch < guidedChannels ? uncond + scale * (cond - uncond) : cond
                #expect(g[s * per + ch * hw + k] == want, "C=\(c) \(mode) row \(s) channel \(ch)")
            } } }
        }
        if c == 1 { print("DiffusionTests C=1: DiT's form guides both output channels (ε and v); standard guides ε only") }
    }

    @Test("CFG end to end: guided one-point models converge to uncond + s·(cond − uncond) on the guided channels")
    func guidanceEndToEnd() throws {
        let base = try GaussianDiffusion()
        let hw = 4, s: Float = 1.5
        let cond: [Double] = [0.3, -0.2, 0.1, 0.4], uncond: [Double] = [0.1, 0.2, -0.3, -0.4]
        for (c, mode) in [(4, GuidanceMode.standard), (4, .ditFirstThreeChannels), (1, .ditFirstThreeChannels), (2, .standard)] {
            let model = DiffusionTests.pointModel(base, channels: c, spatial: hw, x0: { y, ch in y == 9 ? uncond[ch] : cond[ch] })
            var rng = RandomStream(seed: 5)
            let x = try base.sample(model: model, shape: [1, c, 2, 2], labels: [0], steps: 20, sampler: .ddim(eta: 0),
                                    guidance: s, cfgMode: mode, nullClass: 9, rng: &rng)
            let guided = mode == .standard ? c : min(3, 2 * c)
            var worst = 0.0
            for ch in 0..<c {
                let want = ch < guided ? uncond[ch] + Double(s) * (cond[ch] - uncond[ch]) : cond[ch]
                for k in 0..<hw { worst = max(worst, abs(Double(x[ch * hw + k]) - want)) }
            }
            print("DiffusionTests CFG C=\(c) \(mode): max|x − expected| = \(String(format: "%.3e", worst))")
            #expect(worst < 1e-5)
        }
    }
}

import Foundation
import Tensors

// Training loss of DiT (gaussian_diffusion.py `training_losses` with LossType.MSE,
// ModelMeanType.EPSILON, ModelVarType.LEARNED_RANGE) and the pieces it shares with sampling:
// `q_sample`, `p_mean_variance`, `normal_kl`, `discretized_gaussian_log_likelihood`.
//
// Layouts (all float32, row-major, as in DiT):
//   x_start, noise, x_t : (N, C, H, W)   -> M = C·H·W floats per sample
//   model output        : (N, 2C, H, W)  -> per sample, the first M floats are ε (channels [0, C)),
//                                           the next M are the variance values v (channels [C, 2C))
// Only M matters for everything in this file: every operation is elementwise within a sample and
// the per-sample reductions are means over all M elements (`mean_flat`).

/// Per-sample training loss terms (`terms` of `training_losses`) and their batch mean.
public struct DiffusionLossTerms: Sendable, Equatable {
    /// `terms["mse"]`: mean over C,H,W of (noise − ε)².
    public var mse: [Float]
    /// `terms["vb"]`: the VB term in bits/dim (KL for t > 0, decoder NLL for t = 0).
    public var vb: [Float]
    /// `terms["loss"]` = mse + vb.
    public var loss: [Float]
    /// `terms["loss"].mean()`, the scalar DiT's train.py backpropagates.
    public var lossMean: Float
}

/// `p_mean_variance`'s outputs for a batch, each (N, C, H, W).
public struct PMeanVariance: Sendable, Equatable {
    public var mean: [Float]
    public var variance: [Float]
    public var logVariance: [Float]
    public var predXstart: [Float]
}

extension GaussianDiffusion {
    // MARK: - elementwise formulas (float32, operation order as DiT's torch code)

    /// `q_sample`: x_t = sqrt(ᾱ_t)·x_0 + sqrt(1 − ᾱ_t)·noise (two products, then the sum).
    @inline(__always)
    static func qSampleElement(_ c: StepCoefficients, _ x0: Float, _ noise: Float) -> Float {
        c.sqrtAlphaBar * x0 + c.sqrtOneMinusAlphaBar * noise
    }

    /// LEARNED_RANGE (`p_mean_variance`): v ∈ [−1, 1] interpolates the log-variance between the
    /// posterior's (min_log, v = −1) and β_t's (max_log, v = +1); v is not clamped.
    @inline(__always)
    static func modelLogVariance(_ c: StepCoefficients, _ v: Float) -> Float {
        let frac = (v + 1) / 2
        return frac * c.logBeta + (1 - frac) * c.posteriorLogVarianceClipped
    }

    /// `_predict_xstart_from_eps`, then `process_xstart` (clamp to [−1, 1] if `clip`).
    @inline(__always)
    static func predXstart(_ c: StepCoefficients, _ xt: Float, _ eps: Float, clip: Bool) -> Float {
        let x0 = c.sqrtRecipAlphaBar * xt - c.sqrtRecipm1AlphaBar * eps
        return clip ? Swift.min(Swift.max(x0, -1), 1) : x0
    }

    /// `q_posterior_mean_variance`'s mean: coef1·x̂0 + coef2·x_t.
    @inline(__always)
    static func posteriorMean(_ c: StepCoefficients, _ x0: Float, _ xt: Float) -> Float {
        c.posteriorMeanCoef1 * x0 + c.posteriorMeanCoef2 * xt
    }

    /// diffusion_utils.py `approx_standard_normal_cdf`: 0.5·(1 + tanh(sqrt(2/π)·(z + 0.044715·z³))),
    /// and its derivative (needed for the decoder-NLL gradient), both from the same tanh.
    @inline(__always)
    static func approxCdf(_ z: Float) -> (cdf: Float, pdf: Float) {
        let k = Float((2.0 / Double.pi).squareRoot())
        let th = Foundation.tanh(k * (z + Float(0.044715) * (z * z * z)))
        let cdf = Float(0.5) * (1 + th)
        let pdf = Float(0.5) * (1 - th * th) * k * (1 + Float(3 * 0.044715) * (z * z))
        return (cdf, pdf)
    }

    // MARK: - q_sample

    /// `q_sample(x_start, t, noise)` into `out` (N·M floats; N = t.count). `out` may alias
    /// `xStart` or `noise`.
    public func qSample(xStart: UnsafePointer<Float>, noise: UnsafePointer<Float>, t: [Int],
                        out: UnsafeMutablePointer<Float>, elementsPerSample m: Int) {
        let cs = t.map { coefficients[$0] }
        Parallel.forRanges(t.count * m, costPerItem: 3) { r in
            var i = r.lowerBound
            while i < r.upperBound {
                let n = i / m, end = Swift.min(r.upperBound, (n + 1) * m), c = cs[n]
                for j in i..<end { out[j] = GaussianDiffusion.qSampleElement(c, xStart[j], noise[j]) }
                i = end
            }
        }
    }

    /// Array form of `qSample` (tests, tools).
    public func qSample(xStart: [Float], noise: [Float], t: [Int]) -> [Float] {
        precondition(xStart.count == noise.count && !t.isEmpty && xStart.count % t.count == 0)
        var out = [Float](repeating: 0, count: xStart.count)
        out.withUnsafeMutableBufferPointer { o in
            qSample(xStart: xStart, noise: noise, t: t, out: o.baseAddress!, elementsPerSample: xStart.count / t.count)
        }
        return out
    }

    // MARK: - training_losses

    /// gaussian_diffusion.py `training_losses` (MSE + LEARNED_RANGE) given the model output at
    /// x_t = q_sample(x_start, t, noise); x_t is recomputed here with the same float32 formula,
    /// so it is bit-identical to what `qSample` gave the model.
    ///
    /// - mse_n = mean((noise − ε)²)
    /// - vb_n  = `_vb_terms_bpd` on `frozen_out = cat([ε.detach(), v])` with clip_denoised=False:
    ///   t > 0: mean(normal_kl(μ̃, logσ̃², μ, logσ²)) / ln 2   (KL(q(x_{t−1}|x_t,x_0) ‖ p(x_{t−1}|x_t)))
    ///   t = 0: mean(−discretized_gaussian_log_likelihood(x_0; μ, ½logσ²)) / ln 2
    /// - loss_n = mse_n + vb_n; lossMean = mean_n(loss_n)
    ///
    /// If `gradOutput` is given, it receives d(lossMean)/d(model output), (N, 2C, H, W), with
    /// DiT's stop-gradient: the ε half gets only the mse gradient, 2(ε − noise)/(N·M); the v half
    /// only the vb gradient, (∂vb_elem/∂logσ²)·(max_log − min_log)/2 / (N·M·ln 2). (μ depends on ε
    /// only, which is detached inside the VB, so v reaches the loss through logσ² alone.)
    ///
    /// Per-sample sums are accumulated in float64 in a fixed order (the float32 elementwise values
    /// are DiT's); samples run in parallel, so results do not depend on the thread count.
    ///
    /// `mseWeights` (one per sample; nil = 1, DiT's loss) weight the ε-MSE term:
    /// loss_n = w_n·mse_n + vb_n, and the ε gradient is scaled by w_n (Min-SNR-γ). `mse` in the
    /// result stays the unweighted mean square error.
    public func trainingLosses(xStart: UnsafePointer<Float>, noise: UnsafePointer<Float>, t: [Int],
                               modelOutput: UnsafePointer<Float>, elementsPerSample m: Int,
                               gradOutput: UnsafeMutablePointer<Float>?, mseWeights: [Float]? = nil) -> DiffusionLossTerms {
        let n = t.count
        precondition(n > 0 && m > 0)
        precondition(mseWeights == nil || mseWeights!.count == n, "one MSE weight per sample")
        precondition(t.allSatisfy { $0 >= 0 && $0 < numTimesteps }, "timestep out of range")
        let cs = t.map { coefficients[$0] }
        var mse = [Float](repeating: 0, count: n), vb = mse
        let ln2 = Float(Foundation.log(2.0))
        // d lossMean / d mse_n = 1/N; d mse_n / d ε = 2(ε − noise)/M; vb_n = Σkl/(M·ln2).
        let gEps = Float(2.0 / Double(n * m))
        let gVbBase = 1.0 / (Double(n * m) * Foundation.log(2.0))
        let halfBin = Float(1.0 / 255.0), lo = Float(-0.999), hi = Float(0.999), floor12 = Float(1e-12)

        mse.withUnsafeMutableBufferPointer { mseP in
            vb.withUnsafeMutableBufferPointer { vbP in
                Parallel.forRanges(n, costPerItem: m * 60) { r in
                    for s in r {
                        let c = cs[s]
                        let x0 = xStart + s * m, nz = noise + s * m
                        let eps = modelOutput + s * 2 * m, v = eps + m
                        let gradV = gradOutput.map { $0 + s * 2 * m + m }
                        let gradE = gradOutput.map { $0 + s * 2 * m }
                        let gEpsS = mseWeights.map { gEps * $0[s] } ?? gEps
                        // d(loss)/d(logσ²) -> d/dv: dlogσ²/dv = (max_log − min_log)/2
                        let gV = Float(gVbBase * 0.5 * Double(c.logBeta - c.posteriorLogVarianceClipped))
                        let lvTrue = c.posteriorLogVarianceClipped
                        var sumMse = 0.0, sumVb = 0.0
                        for j in 0..<m {
                            let xt = GaussianDiffusion.qSampleElement(c, x0[j], nz[j])
                            let d = nz[j] - eps[j]
                            sumMse += Double(d * d)
                            if let gE = gradE { gE[j] = gEpsS * (eps[j] - nz[j]) }

                            // p_mean_variance on frozen_out, clip_denoised=False
                            let lv = GaussianDiffusion.modelLogVariance(c, v[j])
                            let px = GaussianDiffusion.predXstart(c, xt, eps[j], clip: false)
                            let mu = GaussianDiffusion.posteriorMean(c, px, xt)
                            var dLv: Float  // d(kl or nll of this element)/d(logσ²)
                            if t[s] > 0 {
                                // normal_kl(true_mean, true_logvar, mean, logvar)
                                let trueMu = GaussianDiffusion.posteriorMean(c, x0[j], xt)
                                let dm = trueMu - mu
                                let e1 = Foundation.exp(lvTrue - lv), e2 = Foundation.exp(-lv)
                                let kl = Float(0.5) * (-1 + lv - lvTrue + e1 + dm * dm * e2)
                                sumVb += Double(kl)
                                dLv = Float(0.5) * (1 - e1 - dm * dm * e2)
                            } else {
                                // discretized_gaussian_log_likelihood(x_0, means=μ, log_scales=½logσ²)
                                let cx = x0[j] - mu
                                let inv = Foundation.exp(-(Float(0.5) * lv))
                                let zp = inv * (cx + halfBin), zm = inv * (cx - halfBin)
                                let (cdfP, pdfP) = GaussianDiffusion.approxCdf(zp)
                                let (cdfM, pdfM) = GaussianDiffusion.approxCdf(zm)
                                // dz/dlogσ² = −z/2 (inv = exp(−logσ²/2)); clamp(min=1e-12) passes no
                                // gradient below the floor (torch's clamp backward).
                                let dP = pdfP * (Float(-0.5) * zp), dM = pdfM * (Float(-0.5) * zm)
                                let logp: Float, dLogp: Float
                                if x0[j] < lo {
                                    logp = Foundation.log(Swift.max(cdfP, floor12))
                                    dLogp = cdfP >= floor12 ? dP / cdfP : 0
                                } else if x0[j] > hi {
                                    let oneMinus = 1 - cdfM
                                    logp = Foundation.log(Swift.max(oneMinus, floor12))
                                    dLogp = oneMinus >= floor12 ? -dM / oneMinus : 0
                                } else {
                                    let delta = cdfP - cdfM
                                    logp = Foundation.log(Swift.max(delta, floor12))
                                    dLogp = delta >= floor12 ? (dP - dM) / delta : 0
                                }
                                sumVb += Double(-logp)
                                dLv = -dLogp
                            }
                            if let gv = gradV { gv[j] = gV * dLv }
                        }
                        let msef = Float(sumMse / Double(m))
                        mseP[s] = msef
                        vbP[s] = Float(sumVb / Double(m)) / ln2
                    }
                }
            }
        }
        var loss = [Float](repeating: 0, count: n)
        for s in 0..<n { loss[s] = (mseWeights?[s] ?? 1) * mse[s] + vb[s] }
        let lossMean = Float(loss.reduce(0.0) { $0 + Double($1) } / Double(n))
        return DiffusionLossTerms(mse: mse, vb: vb, loss: loss, lossMean: lossMean)
    }

    /// Array form of `trainingLosses`: returns the terms and d(lossMean)/d(model output).
    public func trainingLosses(xStart: [Float], noise: [Float], t: [Int], modelOutput: [Float], mseWeights: [Float]? = nil)
        -> (terms: DiffusionLossTerms, gradOutput: [Float]) {
        precondition(!t.isEmpty && xStart.count == noise.count && xStart.count % t.count == 0
                     && modelOutput.count == 2 * xStart.count, "shape mismatch")
        var grad = [Float](repeating: 0, count: modelOutput.count)
        let terms = grad.withUnsafeMutableBufferPointer { g in
            trainingLosses(xStart: xStart, noise: noise, t: t, modelOutput: modelOutput,
                           elementsPerSample: xStart.count / t.count, gradOutput: g.baseAddress!, mseWeights: mseWeights)
        }
        return (terms, grad)
    }

    // MARK: - p_mean_variance

    /// gaussian_diffusion.py `p_mean_variance` (LEARNED_RANGE, EPSILON, denoised_fn=None) from a
    /// model output already evaluated at `xT` (for a respaced process: with the model called at
    /// `modelTimesteps(t)`). `modelOutput` is (N, 2C, H, W), `xT` (N, C, H, W), `t` (N) indices of
    /// this process. float32 throughout, as DiT:
    ///   logσ² = frac·log β_t + (1 − frac)·logσ̃²_t, frac = (v + 1)/2;  σ² = exp(logσ²)
    ///   x̂0 = sqrt(1/ᾱ_t)·x_t − sqrt(1/ᾱ_t − 1)·ε, clamped to [−1, 1] if clipDenoised
    ///   μ = coef1_t·x̂0 + coef2_t·x_t
    public func pMeanVariance(modelOutput: [Float], xT: [Float], t: [Int], clipDenoised: Bool = true) -> PMeanVariance {
        precondition(!t.isEmpty && xT.count % t.count == 0 && modelOutput.count == 2 * xT.count, "shape mismatch")
        let m = xT.count / t.count
        var r = PMeanVariance(mean: xT, variance: xT, logVariance: xT, predXstart: xT)
        modelOutput.withUnsafeBufferPointer { mo in
            xT.withUnsafeBufferPointer { x in
                r.mean.withUnsafeMutableBufferPointer { mean in
                    r.variance.withUnsafeMutableBufferPointer { variance in
                        r.logVariance.withUnsafeMutableBufferPointer { logVariance in
                            r.predXstart.withUnsafeMutableBufferPointer { pred in
                                for s in 0..<t.count {
                                    let c = coefficients[t[s]]
                                    for j in 0..<m {
                                        let i = s * m + j
                                        let eps = mo[s * 2 * m + j], v = mo[s * 2 * m + m + j]
                                        let lv = GaussianDiffusion.modelLogVariance(c, v)
                                        let px = GaussianDiffusion.predXstart(c, x[i], eps, clip: clipDenoised)
                                        logVariance[i] = lv
                                        variance[i] = Foundation.exp(lv)
                                        pred[i] = px
                                        mean[i] = GaussianDiffusion.posteriorMean(c, px, x[i])
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return r
    }
}

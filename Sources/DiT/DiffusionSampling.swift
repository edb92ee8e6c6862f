import Foundation
import Tensors

// Sampling loops of DiT: gaussian_diffusion.py `p_sample_loop` (DDPM) and `ddim_sample_loop`,
// over a respaced process (`create_diffusion(str(num_sampling_steps))` in sample.py), with
// classifier-free guidance as models.py `forward_with_cfg` does it.

/// The denoiser: `out` (N, 2C, H, W) = model(x (N, C, H, W), t, y). N = t.count = y.count.
/// `t` are original-scale integer timesteps (respace.py `timestep_map` applied), `y` class
/// labels where `nullClass` (= num_classes) is the unconditional row.
public typealias DenoiserFn = (_ x: UnsafePointer<Float>, _ t: [Int], _ y: [Int], _ out: UnsafeMutablePointer<Float>) -> Void

/// Which reverse step to take.
public enum DiffusionSampler: Sendable, Equatable {
    /// `p_sample`: x_{t−1} = μ + exp(½ logσ²)·z (no noise at t = 0), σ² from the learned range.
    case ddpm
    /// `ddim_sample` with η (0 = deterministic DDIM). The learned variance is not used.
    case ddim(eta: Float)
    /// DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): the multistep
    /// second-order solver of the diffusion ODE in data prediction, on the same respaced
    /// timesteps. Deterministic; the learned variance is not used. See `dpmSolverStep`.
    case dpmSolverPP2M
}

/// How classifier-free guidance combines the conditional and unconditional outputs.
///
/// Both batch cond + uncond rows into one model call of 2N and combine
/// `uncond + s·(cond − uncond)` on a set of output channels; every other output channel is
/// taken from the conditional row (the row DiT keeps: `samples.chunk(2)[0]`).
public enum GuidanceMode: Sendable, Equatable {
    /// Guide the ε channels [0, C) (the line DiT leaves commented out:
    /// `eps, rest = model_out[:, :self.in_channels], model_out[:, self.in_channels:]`).
    case standard
    /// DiT's default `forward_with_cfg`: `eps, rest = model_out[:, :3], model_out[:, 3:]` —
    /// guide output channels [0, min(3, 2C)) of the 2C-channel output, whatever C is, "for exact
    /// reproducibility" of DiT's 4-channel latent results. Reproduced literally:
    ///   C = 1: channels 0 (ε) and 1 (v) are guided — the variance values too;
    ///   C = 2: ε0, ε1 and v0 are guided, v1 is the conditional one;
    ///   C = 3: exactly the ε channels (same as `.standard`);
    ///   C = 4 (DiT's latents): ε0..ε2 are guided, ε3 and all v are conditional.
    case ditFirstThreeChannels
}

extension GaussianDiffusion {
    /// Guided output (N, 2C, H, W) from a 2N-row output `[cond rows; uncond rows]`
    /// (models.py `forward_with_cfg`): guided channels get `uncond + scale·(cond − uncond)`
    /// (float32), the others the conditional row's values. `spatial` = H·W.
    public static func applyGuidance(modelOutput: UnsafePointer<Float>, batch n: Int, channels c: Int, spatial hw: Int,
                                     scale: Float, mode: GuidanceMode, out: UnsafeMutablePointer<Float>) {
        let per = 2 * c * hw
        let guided = (mode == .standard ? c : Swift.min(3, 2 * c)) * hw  // leading floats per row guided
        Parallel.forRanges(n * per, costPerItem: 3) { r in
            var i = r.lowerBound
            while i < r.upperBound {
                let s = i / per, end = Swift.min(r.upperBound, (s + 1) * per)
                let cond = modelOutput + s * per, uncond = modelOutput + (n + s) * per, o = out + s * per
                for k in (i - s * per)..<(end - s * per) {
                    o[k] = k < guided ? uncond[k] + scale * (cond[k] - uncond[k]) : cond[k]
                }
                i = end
            }
        }
    }

    /// Draws N samples (N, C, H, W) = `shape` from `model`, as DiT's sample.py does:
    /// z ~ N(0, I) from `rng`, then `steps` reverse steps of the process respaced with
    /// `space_timesteps(T, "\(steps)")` (see the `respacing:` form for other section strings),
    /// the model called at the original-scale timesteps `timestep_map[i]`.
    ///
    /// - guidance: CFG scale s. If s ≠ 1 the model is called once per step on 2N rows
    ///   (x twice; labels then N × `nullClass`) and combined per `cfgMode`; if s = 1 it is called
    ///   on the N conditional rows only. (DiT's scripts use CFG only for s > 1; the formula is
    ///   used here for any s ≠ 1, so s = 0 gives unconditional sampling.)
    /// - clipDenoised: clamp x̂0 to [−1, 1] (DiT's default; its sample.py passes False because it
    ///   samples VAE latents). With true, the result lies in [−1, 1]: the last step returns μ at
    ///   t = 0, which is the clamped x̂0.
    /// - Randomness comes only from `rng` (initial noise, then one N·C·H·W normal draw per step
    ///   that adds noise: DDPM steps with t > 0, DDIM steps with η > 0 and t > 0), so a seed fixes
    ///   the bits. DiT draws (and discards) noise also at t = 0 and for η = 0; skipping those draws
    ///   changes nothing else.
    ///
    /// All buffers are allocated once before the loop.
    public func sample(model: DenoiserFn, shape: [Int], labels: [Int], steps: Int,
                       sampler: DiffusionSampler = .ddpm, guidance: Float = 1, cfgMode: GuidanceMode = .ditFirstThreeChannels,
                       nullClass: Int, clipDenoised: Bool = true, rng: inout RandomStream) throws -> Tensor {
        try sample(model: model, shape: shape, labels: labels, respacing: "\(steps)", sampler: sampler, guidance: guidance,
                   cfgMode: cfgMode, nullClass: nullClass, clipDenoised: clipDenoised, rng: &rng)
    }

    /// `sample` with any `space_timesteps` section string as `respacing` ("250", "ddim50",
    /// "10,20"; "" keeps all steps of the original process).
    public func sample(model: DenoiserFn, shape: [Int], labels: [Int], respacing: String,
                       sampler: DiffusionSampler = .ddpm, guidance: Float = 1, cfgMode: GuidanceMode = .ditFirstThreeChannels,
                       nullClass: Int, clipDenoised: Bool = true, rng: inout RandomStream) throws -> Tensor {
        let x = Tensor(shape: shape)
        rng.fillNormal(x.data, count: x.count)
        try respaced(respacing).denoise(x, model: model, labels: labels, sampler: sampler, guidance: guidance, cfgMode: cfgMode,
                                        nullClass: nullClass, clipDenoised: clipDenoised, rng: &rng)
        return x
    }

    /// The reverse loop of `sample` over every step of this (already respaced) process, from
    /// the noise in `x` (N, C, H, W), which it overwrites with the samples. `rng` gives the
    /// noise of the stochastic steps only. Tests start it from a reference's noise.
    public func denoise(_ x: Tensor, model: DenoiserFn, labels: [Int], sampler: DiffusionSampler = .ddpm, guidance: Float = 1,
                        cfgMode: GuidanceMode = .ditFirstThreeChannels, nullClass: Int, clipDenoised: Bool = true,
                        rng: inout RandomStream) throws {
        let shape = x.shape
        precondition(shape.count == 4, "shape must be (N, C, H, W)")
        let n = shape[0], ch = shape[1], hw = shape[2] * shape[3], m = ch * hw
        precondition(labels.count == n, "one label per sample")
        let process = self
        let useCfg = guidance != 1
        let rows = useCfg ? 2 * n : n

        let modelIn = useCfg ? Tensor(shape: [rows, ch, shape[2], shape[3]]) : x
        let modelOut = Tensor(shape: [rows, 2 * ch, shape[2], shape[3]])
        let guided = useCfg ? Tensor(shape: [n, 2 * ch, shape[2], shape[3]]) : modelOut
        let noise = Tensor(shape: shape)
        let modelLabels = useCfg ? labels + [Int](repeating: nullClass, count: n) : labels

        // DPM-Solver++(2M) keeps the previous step's data prediction.
        let isDPM = sampler == .dpmSolverPP2M
        let previousX0 = Tensor(shape: isDPM ? shape : [0])
        var previousLambda: Double? = nil

        for i in stride(from: process.numTimesteps - 1, through: 0, by: -1) {
            let tModel = [Int](repeating: process.timestepMap[i], count: rows)
            if useCfg {
                modelIn.data.update(from: x.data, count: n * m)           // combined = cat([half, half])
                (modelIn.data + n * m).update(from: x.data, count: n * m)
            }
            model(modelIn.data, tModel, modelLabels, modelOut.data)
            if useCfg {
                GaussianDiffusion.applyGuidance(modelOutput: modelOut.data, batch: n, channels: ch, spatial: hw,
                                                scale: guidance, mode: cfgMode, out: guided.data)
            }
            switch sampler {
            case .ddpm:
                if i > 0 { rng.fillNormal(noise.data, count: n * m) }
                process.ddpmStep(x: x.data, modelOutput: guided.data, t: i, noise: i > 0 ? noise.data : nil,
                                 batch: n, elementsPerSample: m, clipDenoised: clipDenoised)
            case .ddim(let eta):
                let noisy = eta != 0 && i > 0
                if noisy { rng.fillNormal(noise.data, count: n * m) }
                process.ddimStep(x: x.data, modelOutput: guided.data, t: i, eta: eta, noise: noisy ? noise.data : nil,
                                 batch: n, elementsPerSample: m, clipDenoised: clipDenoised)
            case .dpmSolverPP2M:
                previousLambda = process.dpmSolverStep(x: x.data, modelOutput: guided.data, t: i, previousX0: previousX0.data,
                                                       previousLambda: previousLambda, batch: n, elementsPerSample: m,
                                                       clipDenoised: clipDenoised)
            }
        }
    }

    /// One DPM-Solver++(2M) step in place, from index `t` of this process to `t − 1` (to the
    /// clean image, σ = 0, at `t = 0`). With α_s = sqrt(ᾱ_s), σ_s = sqrt(1 − ᾱ_s) and
    /// λ = log(α/σ) (computed in float64 from `alphasCumprod`):
    ///   x̂0 = (x − σ_s·ε)/α_s, clamped to [−1, 1] if `clipDenoised`;
    ///   first step (no previous x̂0):  x ← (σ_t/σ_s)·x − α_t(e^{−h} − 1)·x̂0,    h = λ_t − λ_s;
    ///   later steps, with r = (λ_s − λ_prev)/h and D = (x̂0 − x̂0_prev)/r:
    ///                                  x ← (σ_t/σ_s)·x − α_t(e^{−h} − 1)·(x̂0 + D/2);
    ///   last step (t = 0 → σ = 0): x ← x̂0 (the first-order step with σ_t = 0, as diffusers'
    ///   `DPMSolverMultistepScheduler` with `final_sigmas_type="zero"` takes it).
    /// `previousX0` (N·M floats, the caller's) holds the previous step's x̂0 and receives this
    /// step's. Returns λ_s, to pass as `previousLambda` to the next step (nil on the first).
    public func dpmSolverStep(x: UnsafeMutablePointer<Float>, modelOutput: UnsafePointer<Float>, t: Int,
                              previousX0: UnsafeMutablePointer<Float>, previousLambda: Double?,
                              batch n: Int, elementsPerSample m: Int, clipDenoised: Bool) -> Double {
        let abS = alphasCumprod[t]
        let alphaS = abS.squareRoot(), sigmaS = (1 - abS).squareRoot()
        let lambdaS = log(alphaS) - log(sigmaS)
        let invAlpha = Float(1 / alphaS), sigS = Float(sigmaS)
        // Coefficients of x, x̂0 and the difference term (float32, like the elementwise math).
        var cx: Float = 0, c0: Float = 1, cd: Float = 0
        if t > 0 {
            let abT = alphasCumprod[t - 1]
            let alphaT = abT.squareRoot(), sigmaT = (1 - abT).squareRoot()
            let h = (log(alphaT) - log(sigmaT)) - lambdaS
            let phi = -alphaT * expm1(-h)                  // −α_t(e^{−h} − 1)
            cx = Float(sigmaT / sigmaS)
            c0 = Float(phi)
            if let lp = previousLambda {
                let r = (lambdaS - lp) / h
                cd = Float(phi * 0.5 / r)                  // multiplies (x̂0 − x̂0_prev)
            }
        }
        let useD = cd != 0
        Parallel.forRanges(n * m, costPerItem: 12) { r in
            var i = r.lowerBound
            while i < r.upperBound {
                let s = i / m, end = Swift.min(r.upperBound, (s + 1) * m)
                let eps = modelOutput + s * 2 * m
                for k in i..<end {
                    var p = (x[k] - sigS * eps[k - s * m]) * invAlpha
                    if clipDenoised { p = Swift.min(Swift.max(p, -1), 1) }
                    var next = cx * x[k] + c0 * p
                    if useD { next += cd * (p - previousX0[k]) }
                    x[k] = next
                    previousX0[k] = p
                }
                i = end
            }
        }
        return lambdaS
    }

    /// One `p_sample` step in place: x ← μ + exp(½ logσ²)·noise (`noise` nil: x ← μ, the t = 0
    /// step, where DiT's `nonzero_mask` zeroes the noise). `t` is an index of this process and
    /// the same for all N samples, as in the sampling loops.
    public func ddpmStep(x: UnsafeMutablePointer<Float>, modelOutput: UnsafePointer<Float>, t: Int,
                         noise: UnsafePointer<Float>?, batch n: Int, elementsPerSample m: Int, clipDenoised: Bool) {
        let c = coefficients[t]
        Parallel.forRanges(n * m, costPerItem: 30) { r in
            var i = r.lowerBound
            while i < r.upperBound {
                let s = i / m, end = Swift.min(r.upperBound, (s + 1) * m)
                let eps = modelOutput + s * 2 * m, v = eps + m
                for k in i..<end {
                    let j = k - s * m
                    let px = GaussianDiffusion.predXstart(c, x[k], eps[j], clip: clipDenoised)
                    let mean = GaussianDiffusion.posteriorMean(c, px, x[k])
                    if let z = noise {
                        let lv = GaussianDiffusion.modelLogVariance(c, v[j])
                        x[k] = mean + Foundation.exp(Float(0.5) * lv) * z[k]
                    } else {
                        x[k] = mean
                    }
                }
                i = end
            }
        }
    }

    /// One `ddim_sample` step in place (DDIM paper eq. 12), float32 as DiT:
    ///   ε' = (sqrt(1/ᾱ_t)·x_t − x̂0) / sqrt(1/ᾱ_t − 1)        (`_predict_eps_from_xstart`)
    ///   σ  = η·sqrt((1 − ᾱ_{t−1})/(1 − ᾱ_t))·sqrt(1 − ᾱ_t/ᾱ_{t−1})
    ///   x_{t−1} = x̂0·sqrt(ᾱ_{t−1}) + sqrt(1 − ᾱ_{t−1} − σ²)·ε' + σ·noise
    /// (`noise` nil: no noise term, as for t = 0 or η = 0). The argument of the second sqrt is
    /// floored at 0 so float32 round-off can never produce NaN (DiT has no floor; mathematically
    /// it is ≥ 0 for η ≤ 1).
    public func ddimStep(x: UnsafeMutablePointer<Float>, modelOutput: UnsafePointer<Float>, t: Int, eta: Float,
                         noise: UnsafePointer<Float>?, batch n: Int, elementsPerSample m: Int, clipDenoised: Bool) {
        let c = coefficients[t]
        let ab = c.alphaBar, abPrev = c.alphaBarPrev
        let sigma = eta * ((1 - abPrev) / (1 - ab)).squareRoot() * (1 - ab / abPrev).squareRoot()
        let sqrtAbPrev = abPrev.squareRoot()
        let dirCoef = Swift.max(1 - abPrev - sigma * sigma, 0).squareRoot()
        Parallel.forRanges(n * m, costPerItem: 20) { r in
            var i = r.lowerBound
            while i < r.upperBound {
                let s = i / m, end = Swift.min(r.upperBound, (s + 1) * m)
                let eps = modelOutput + s * 2 * m
                for k in i..<end {
                    let px = GaussianDiffusion.predXstart(c, x[k], eps[k - s * m], clip: clipDenoised)
                    let e = (c.sqrtRecipAlphaBar * x[k] - px) / c.sqrtRecipm1AlphaBar
                    let meanPred = px * sqrtAbPrev + dirCoef * e
                    x[k] = noise.map { meanPred + sigma * $0[k] } ?? meanPred
                }
                i = end
            }
        }
    }
}

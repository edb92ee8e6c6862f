import Foundation

// Gaussian diffusion as DiT does it: the float64 schedule arrays and their float32 gathers.
//
// DiT's `diffusion/` package (facebookresearch/DiT, itself from OpenAI's improved-diffusion / ADM)
// builds every process as a `SpacedDiffusion`, even the full 1000-step one used for training:
//
//   create_diffusion(timestep_respacing):                       (diffusion/__init__.py)
//     betas = get_named_beta_schedule("linear", 1000)           (np.linspace, float64)
//     use   = space_timesteps(1000, timestep_respacing or [1000])
//     SpacedDiffusion(use, betas)                               (respace.py)
//       -> base ᾱ = cumprod(1 - betas); new β_k = 1 - ᾱ[map[k]] / ᾱ[map[k-1]]  (ᾱ[map[-1]] := 1)
//       -> GaussianDiffusion.__init__(new betas)                (recomputes every array)
//
// So even with no respacing the betas are *recomputed* from ᾱ (they differ from linspace by
// ≤ 1.7e-16), and a respaced process has its own betas and all derived arrays. All of those are
// float64 numpy arrays; a lookup (`_extract_into_tensor`) gathers the float64 value and casts it
// to float32 (`.float()`), after which DiT computes in float32. `StepCoefficients` is exactly that
// float32 gather, precomputed once per timestep.

/// Errors for diffusion settings that come from configuration (respacing strings, step counts).
public enum DiffusionError: Error, CustomStringConvertible, Equatable {
    case invalidRespacing(String)

    public var description: String {
        switch self {
        case .invalidRespacing(let why): return "invalid timestep respacing: \(why)"
        }
    }
}

/// The float64 coefficients of one timestep, cast to float32 as DiT's `_extract_into_tensor` does
/// (compute in float64, gather, `.float()`). Field names follow `GaussianDiffusion`'s attributes.
public struct StepCoefficients: Sendable, Equatable {
    /// `sqrt_alphas_cumprod[t]` — q_sample's signal coefficient.
    public var sqrtAlphaBar: Float
    /// `sqrt_one_minus_alphas_cumprod[t]` — q_sample's noise coefficient.
    public var sqrtOneMinusAlphaBar: Float
    /// `sqrt_recip_alphas_cumprod[t]` = sqrt(1/ᾱ_t) — `_predict_xstart_from_eps`.
    public var sqrtRecipAlphaBar: Float
    /// `sqrt_recipm1_alphas_cumprod[t]` = sqrt(1/ᾱ_t − 1) — `_predict_xstart_from_eps`.
    public var sqrtRecipm1AlphaBar: Float
    /// `posterior_mean_coef1[t]` = β_t·sqrt(ᾱ_{t−1})/(1 − ᾱ_t) — multiplies x̂0 in μ.
    public var posteriorMeanCoef1: Float
    /// `posterior_mean_coef2[t]` = (1 − ᾱ_{t−1})·sqrt(α_t)/(1 − ᾱ_t) — multiplies x_t in μ.
    public var posteriorMeanCoef2: Float
    /// `np.log(betas)[t]` — LEARNED_RANGE's `max_log` (v = +1).
    public var logBeta: Float
    /// `posterior_log_variance_clipped[t]` — LEARNED_RANGE's `min_log` (v = −1) and the true
    /// posterior's log-variance in the VB term.
    public var posteriorLogVarianceClipped: Float
    /// `alphas_cumprod[t]` and `alphas_cumprod_prev[t]` — DDIM (`ddim_sample`).
    public var alphaBar: Float
    public var alphaBarPrev: Float
}

/// One Gaussian diffusion process (DiT's `GaussianDiffusion`/`SpacedDiffusion` with
/// `ModelMeanType.EPSILON`, `ModelVarType.LEARNED_RANGE`, `LossType.MSE`): float64 schedule
/// arrays, the respacing map, and the float32 per-timestep coefficients.
///
/// Timestep arguments of every method (`t`) are indices into *this* process (0..<numTimesteps,
/// i.e. respaced indices for a respaced process); the model is called with `timestepMap[t]`,
/// the original-scale integer timestep (respace.py `_WrappedModel`; DiT leaves
/// `rescale_timesteps` commented out, so no ×1000/num_steps rescale).
public struct GaussianDiffusion: Sendable {
    /// The betas of the original (un-respaced) process, e.g. linspace(1e-4, 0.02, 1000).
    /// Respacing always starts from these (as `create_diffusion` does).
    public let baseBetas: [Double]
    /// respace.py `timestep_map`: respaced index -> original timestep (sorted ascending).
    public let timestepMap: [Int]

    // float64 arrays, named after gaussian_diffusion.py's attributes
    public let betas: [Double]
    public let alphasCumprod: [Double]
    public let alphasCumprodPrev: [Double]
    public let alphasCumprodNext: [Double]
    public let sqrtAlphasCumprod: [Double]
    public let sqrtOneMinusAlphasCumprod: [Double]
    public let sqrtRecipAlphasCumprod: [Double]
    public let sqrtRecipm1AlphasCumprod: [Double]
    public let posteriorVariance: [Double]
    public let posteriorLogVarianceClipped: [Double]
    public let posteriorMeanCoef1: [Double]
    public let posteriorMeanCoef2: [Double]

    /// float32 gathers of the arrays above, one per timestep of this process.
    public let coefficients: [StepCoefficients]

    public var numTimesteps: Int { betas.count }

    /// DiT's `create_diffusion(timestep_respacing, noise_schedule="linear", diffusion_steps=...)`
    /// with learn_sigma=True: linear betas, then `SpacedDiffusion(space_timesteps(...))`.
    /// `respacing` is `space_timesteps`' section string ("" = keep all steps, "250", "10,20",
    /// "ddim50").
    public init(diffusionSteps: Int = 1000, respacing: String = "") throws {
        let base = GaussianDiffusion.linearBetas(steps: diffusionSteps)
        let keep = try GaussianDiffusion.spaceTimesteps(diffusionSteps, respacing.isEmpty ? "\(diffusionSteps)" : respacing)
        self.init(baseBetas: base, useTimesteps: keep)
    }

    /// respace.py `SpacedDiffusion.__init__`: keeps the original timesteps `useTimesteps`
    /// (any order, duplicates ignored) of the process with `baseBetas`, giving the kept process
    /// its own betas `β'_k = 1 − ᾱ[map[k]] / ᾱ[map[k−1]]`, then `GaussianDiffusion.__init__`.
    public init(baseBetas: [Double], useTimesteps: [Int]) {
        precondition(!baseBetas.isEmpty, "empty beta schedule")
        let keep = Set(useTimesteps)
        precondition(keep.allSatisfy { $0 >= 0 && $0 < baseBetas.count }, "timestep out of range")
        let baseAcp = GaussianDiffusion.cumprodOneMinus(baseBetas)
        var last = 1.0
        var newBetas: [Double] = []
        var map: [Int] = []
        for (i, acp) in baseAcp.enumerated() where keep.contains(i) {
            newBetas.append(1 - acp / last)
            last = acp
            map.append(i)
        }
        self.init(betas: newBetas, timestepMap: map, baseBetas: baseBetas)
    }

    /// gaussian_diffusion.py `GaussianDiffusion.__init__`: every array from `betas` in float64,
    /// with the same operation order as numpy (so the values agree to the last bit or two).
    public init(betas: [Double], timestepMap: [Int], baseBetas: [Double]) {
        let T = betas.count
        precondition(T >= 2, "a diffusion process needs at least 2 steps (posterior_log_variance_clipped uses index 1)")
        precondition(timestepMap.count == T, "timestep_map must have one entry per step")
        precondition(betas.allSatisfy { $0 > 0 && $0 <= 1 }, "betas must lie in (0, 1]")
        self.betas = betas
        self.timestepMap = timestepMap
        self.baseBetas = baseBetas

        let alphas = betas.map { 1.0 - $0 }
        let acp = GaussianDiffusion.cumprodOneMinus(betas)
        let acpPrev = [1.0] + acp.dropLast()
        alphasCumprod = acp
        alphasCumprodPrev = acpPrev
        alphasCumprodNext = Array(acp.dropFirst()) + [0.0]
        sqrtAlphasCumprod = acp.map { $0.squareRoot() }
        sqrtOneMinusAlphasCumprod = acp.map { (1.0 - $0).squareRoot() }
        sqrtRecipAlphasCumprod = acp.map { (1.0 / $0).squareRoot() }
        sqrtRecipm1AlphasCumprod = acp.map { (1.0 / $0 - 1).squareRoot() }
        // posterior q(x_{t-1} | x_t, x_0)
        let pv = (0..<T).map { betas[$0] * (1.0 - acpPrev[$0]) / (1.0 - acp[$0]) }
        posteriorVariance = pv
        // "log calculation clipped because the posterior variance is 0 at the beginning of the
        // diffusion chain": index 0 uses pv[1].
        posteriorLogVarianceClipped = ([pv[1]] + pv[1...]).map { Foundation.log($0) }
        posteriorMeanCoef1 = (0..<T).map { betas[$0] * acpPrev[$0].squareRoot() / (1.0 - acp[$0]) }
        posteriorMeanCoef2 = (0..<T).map { (1.0 - acpPrev[$0]) * alphas[$0].squareRoot() / (1.0 - acp[$0]) }

        var cs: [StepCoefficients] = []
        cs.reserveCapacity(T)
        for t in 0..<T {
            cs.append(StepCoefficients(
                sqrtAlphaBar: Float(sqrtAlphasCumprod[t]),
                sqrtOneMinusAlphaBar: Float(sqrtOneMinusAlphasCumprod[t]),
                sqrtRecipAlphaBar: Float(sqrtRecipAlphasCumprod[t]),
                sqrtRecipm1AlphaBar: Float(sqrtRecipm1AlphasCumprod[t]),
                posteriorMeanCoef1: Float(posteriorMeanCoef1[t]),
                posteriorMeanCoef2: Float(posteriorMeanCoef2[t]),
                logBeta: Float(Foundation.log(betas[t])),
                posteriorLogVarianceClipped: Float(posteriorLogVarianceClipped[t]),
                alphaBar: Float(acp[t]),
                alphaBarPrev: Float(acpPrev[t])))
        }
        coefficients = cs
    }

    /// The same original process respaced (`create_diffusion(str(steps))` in DiT's sample.py):
    /// `sectionCounts` as in `spaceTimesteps`.
    public func respaced(_ sectionCounts: String) throws -> GaussianDiffusion {
        let keep = try GaussianDiffusion.spaceTimesteps(baseBetas.count, sectionCounts.isEmpty ? "\(baseBetas.count)" : sectionCounts)
        return GaussianDiffusion(baseBetas: baseBetas, useTimesteps: keep)
    }

    /// The original-scale timesteps the model must be called with for indices `t` of this
    /// process (`_WrappedModel.__call__`: `map_tensor[ts]`).
    public func modelTimesteps(_ t: [Int]) -> [Int] { t.map { timestepMap[$0] } }

    // MARK: - schedule construction

    /// gaussian_diffusion.py `get_named_beta_schedule("linear", T)`: Ho et al.'s linear schedule
    /// scaled by 1000/T, as `np.linspace(scale·1e-4, scale·0.02, T)` in float64. numpy's linspace
    /// computes `i·step + start` with `step = (stop − start)/(T − 1)` and sets the last entry to
    /// `stop` exactly; this reproduces it operation for operation.
    public static func linearBetas(steps T: Int) -> [Double] {
        precondition(T >= 2, "need at least 2 diffusion steps")
        let scale = 1000.0 / Double(T)
        let start = scale * 0.0001, stop = scale * 0.02
        let step = (stop - start) / Double(T - 1)
        var b = (0..<T).map { Double($0) * step + start }
        b[T - 1] = stop
        return b
    }

    /// respace.py `space_timesteps(num_timesteps, section_counts)`, returned sorted (DiT builds
    /// `timestep_map` by scanning 0..<T for members of the returned set).
    ///
    /// `sectionCounts` is a comma-separated list: the process is cut into that many equal
    /// sections (the first `T % sections` one step longer) and section i keeps `counts[i]`
    /// steps at fractional stride `(size − 1)/(count − 1)`, rounded with Python's `round`
    /// (half to even) from a float64 accumulator. "ddimN" instead takes the first integer
    /// stride giving exactly N steps from `range(0, T, stride)` (the DDIM paper's striding).
    public static func spaceTimesteps(_ T: Int, _ sectionCounts: String) throws -> [Int] {
        let spec = sectionCounts.trimmingCharacters(in: .whitespaces)
        if spec.hasPrefix("ddim") {
            guard let desired = Int(spec.dropFirst(4)) else {
                throw DiffusionError.invalidRespacing("'\(spec)' is not ddim<N>")
            }
            for stride in 1..<max(T, 1) where (T + stride - 1) / stride == desired {
                return Array(Swift.stride(from: 0, to: T, by: stride))
            }
            throw DiffusionError.invalidRespacing("cannot create exactly \(desired) steps from \(T) with an integer stride")
        }
        let parts = spec.split(separator: ",", omittingEmptySubsequences: false)
        var counts: [Int] = []
        for p in parts {
            guard let c = Int(p.trimmingCharacters(in: .whitespaces)), c >= 0 else {
                throw DiffusionError.invalidRespacing("'\(spec)' is not a comma-separated list of step counts")
            }
            counts.append(c)
        }
        guard !counts.isEmpty, counts.count <= T else {
            throw DiffusionError.invalidRespacing("'\(spec)' has more sections than the \(T) steps")
        }
        let sizePer = T / counts.count, extra = T % counts.count
        var start = 0
        var all = Set<Int>()
        for (i, count) in counts.enumerated() {
            let size = sizePer + (i < extra ? 1 : 0)
            if size < count {
                throw DiffusionError.invalidRespacing("cannot divide section of \(size) steps into \(count)")
            }
            let fracStride = count <= 1 ? 1.0 : Double(size - 1) / Double(count - 1)
            var cur = 0.0
            for _ in 0..<count {
                all.insert(start + Int(cur.rounded(.toNearestOrEven)))
                cur += fracStride
            }
            start += size
        }
        if all.count < 2 {
            throw DiffusionError.invalidRespacing("'\(spec)' keeps fewer than 2 steps")
        }
        return all.sorted()
    }

    /// `np.cumprod(1.0 - betas)`: a sequential float64 product, as numpy's accumulate does.
    static func cumprodOneMinus(_ betas: [Double]) -> [Double] {
        var out = [Double](repeating: 0, count: betas.count)
        var p = 1.0
        for i in betas.indices {
            let a = 1.0 - betas[i]
            p = i == 0 ? a : p * a
            out[i] = p
        }
        return out
    }
}

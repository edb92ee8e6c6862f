import Foundation

// The parts of a training recipe that change with the step: the learning-rate schedule, the
// EMA decay schedule, and the per-timestep weighting of the ε-MSE. DiT's own recipe is the
// constant case of each (lr 1e-4, EMA 0.9999, uniform weights); the CPU recipe that makes
// minute-long runs generate (benchmarks/recipe/) uses warmup + cosine decay, a warmed-up EMA
// and Min-SNR-5. Every function here is pure in the step, so a resumed run recomputes the
// same values and stays bit-identical.

/// How the learning rate moves over a run.
public enum LearningRateSchedule: String, Codable, Sendable, CaseIterable {
    /// The base rate at every step after warmup (DiT).
    case constant
    /// Half-cosine from the base rate (after warmup) down to `minLearningRateFraction` of it at the last step.
    case cosine
    /// Straight line from the base rate (after warmup) down to `minLearningRateFraction` of it at the last step.
    case linear
}

/// How the EMA's decay moves over a run.
public enum EMASchedule: String, Codable, Sendable, CaseIterable {
    /// β at every step (DiT's `update_ema`, β = 0.9999): the first steps are averaged with the
    /// random initialization, which a run of a few thousand steps never forgets at β ≥ 0.999.
    case constant
    /// β_s = min(β, (1 + s)/(10 + s)) after s steps (the warmup of the decay used by
    /// timm/diffusers `EMAModel(use_ema_warmup)`-style recipes, in its (1+s)/(10+s) form):
    /// the average starts short and lengthens to 1/(1 − β) steps.
    case warmup
    /// Karras et al. 2024 (EDM2) power-function EMA: β_s = (1 − 1/s)^(γ+1), an average of the
    /// whole run weighted ∝ τ^γ; its length grows with the run (≈ s/(γ+1) steps). β is unused.
    case power
}

/// How the ε-MSE term of the loss is weighted per timestep.
public enum LossWeighting: String, Codable, Sendable, CaseIterable {
    /// DiT: every timestep weighs 1.
    case uniform
    /// Min-SNR-γ (Hang et al. 2023) for ε-prediction: w_t = min(SNR_t, γ)/SNR_t with
    /// SNR_t = ᾱ_t/(1 − ᾱ_t). Low-noise steps (huge SNR) stop dominating the gradient.
    /// The VB term of the learned variance keeps weight 1.
    case minSNR = "min-snr"
}

extension TrainingSettings {
    /// The learning rate for the optimizer step that follows `stepsTaken` steps (0-based:
    /// the first step uses `learningRate(afterSteps: 0)`).
    ///   warmup: lr · (s + 1)/W for s < W (never 0, so the first step moves);
    ///   then constant, or decayed over the remaining `totalSteps − W` steps to
    ///   lr · minLearningRateFraction at the last step.
    public func learningRate(afterSteps s: Int) -> Double {
        let lr = optimizer.learningRate
        if s < warmupSteps { return lr * Double(s + 1) / Double(warmupSteps) }
        guard lrSchedule != .constant, totalSteps > warmupSteps + 1 else { return lr }
        let p = min(1, Double(s - warmupSteps) / Double(totalSteps - warmupSteps - 1))
        let floor = lr * minLearningRateFraction
        switch lrSchedule {
        case .constant: return lr
        case .cosine: return floor + (lr - floor) * 0.5 * (1 + cos(Double.pi * p))
        case .linear: return lr + (floor - lr) * p
        }
    }

    /// The EMA decay applied after the update that completes step `s` (1-based).
    public func emaDecay(atStep s: Int) -> Double {
        switch emaSchedule {
        case .constant: return emaDecay
        case .warmup: return min(emaDecay, Double(1 + s) / Double(10 + s))
        case .power: return s <= 1 ? 0 : pow(1 - 1 / Double(s), emaPowerGamma + 1)
        }
    }

    /// The EMA's averaging length in steps after `s` steps: 1/(1 − β_s), the mean age (in
    /// steps) of what an exponential average with that decay holds. Recorded in metrics.json,
    /// so a reader can compare it with the run's length.
    public func emaAveragingSteps(atStep s: Int) -> Double {
        let b = emaDecay(atStep: s)
        return b >= 1 ? .infinity : 1 / (1 - b)
    }

    /// Per-sample weights of the ε-MSE for timesteps `t` (nil for uniform: the loss is DiT's).
    public func mseWeights(t: [Int], diffusion: GaussianDiffusion) -> [Float]? {
        switch lossWeighting {
        case .uniform: return nil
        case .minSNR:
            return t.map { ti in
                let ab = diffusion.alphasCumprod[ti]
                let snr = ab / (1 - ab)
                return Float(min(snr, minSNRGamma) / snr)
            }
        }
    }

    /// Problems with the schedule settings, each naming the field and the fix.
    public func scheduleProblems() -> [String] {
        var out: [String] = []
        if warmupSteps < 0 { out.append("training.warmup_steps \(warmupSteps) must be ≥ 0") }
        if !(0...1).contains(minLearningRateFraction) { out.append("training.min_lr_fraction \(minLearningRateFraction) must be in [0, 1]") }
        if !(minSNRGamma > 0) { out.append("training.min_snr_gamma \(minSNRGamma) must be > 0 (Hang et al. use 5)") }
        if !(emaPowerGamma > 0) { out.append("training.ema_power_gamma \(emaPowerGamma) must be > 0 (Karras et al.: 6.94 for σ_rel 0.10)") }
        if let c = gradClip, !(c > 0) { out.append("training.grad_clip \(c) must be > 0, or null for no clipping") }
        return out
    }
}

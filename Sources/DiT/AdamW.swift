import Foundation
import Tensors

/// AdamW exactly as PyTorch's single-tensor implementation (`torch.optim.AdamW`, the one it
/// uses for CPU tensors): decoupled weight decay, m ← lerp(m, g, 1−β₁), v ← β₂v + (1−β₂)g²,
/// p ← p − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε). Bias corrections in Double, as PyTorch
/// computes them in Python floats. DiT trains with lr 1e-4, weight decay 0, default betas.
public struct AdamWSettings: Codable, Sendable, Equatable {
    public var learningRate: Double = 1e-4
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var eps: Double = 1e-8
    public var weightDecay: Double = 0
    public init(learningRate: Double = 1e-4, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8, weightDecay: Double = 0) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
    }
}

/// Optimizer state over one flat parameter buffer: the two moments and the step count.
public final class AdamW: @unchecked Sendable {
    public var settings: AdamWSettings
    public let m: Tensor
    public let v: Tensor
    /// Number of steps taken (PyTorch's `state["step"]`).
    public var step: Int = 0
    /// Where this optimizer applies (nil = every element). Lets the learngene stages train a
    /// subset of the buffer (e.g. only FINE's σ) with the same code.
    public var mask: [Range<Int>]?

    public init(count: Int, settings: AdamWSettings = .init()) {
        self.settings = settings
        m = Tensor(shape: [count])
        v = Tensor(shape: [count])
    }

    /// One update of `params` from `grads` (same layout). `lr` overrides the settings' rate
    /// (for schedules).
    public func update(params: Tensor, grads: Tensor, lr: Double? = nil) {
        step += 1
        let s = settings
        let lr = lr ?? s.learningRate
        let bc1 = 1 - pow(s.beta1, Double(step))
        let bc2 = 1 - pow(s.beta2, Double(step))
        let stepSize = Float(lr / bc1)
        let bc2Sqrt = Float(bc2.squareRoot())
        let b1w = Float(1 - s.beta1), b2 = Float(s.beta2), b2w = Float(1 - s.beta2)
        let eps = Float(s.eps), decay = Float(1 - lr * s.weightDecay)
        let P = params.data, G = grads.data, M = m.data, V = v.data
        let ranges = mask ?? [0..<params.count]
        for range in ranges {
            Parallel.forRanges(range.count, costPerItem: 12) { r in
                for j in r {
                    let i = range.lowerBound + j
                    let g = G[i]
                    if decay != 1 { P[i] *= decay }
                    M[i] += b1w * (g - M[i])          // torch lerp_ with weight < 0.5
                    V[i] = V[i] * b2 + b2w * g * g    // mul_(β₂).addcmul_(g, g, 1−β₂)
                    let denom = V[i].squareRoot() / bc2Sqrt + eps
                    P[i] -= stepSize * (M[i] / denom)  // addcdiv_(m, denom, −step_size)
                }
            }
        }
    }
}

/// Exponential moving average of the parameters (DiT's `update_ema`:
/// ema ← decay·ema + (1−decay)·p), started as a copy of the model.
public func emaUpdate(ema: Tensor, params: Tensor, decay: Float) {
    let E = ema.data, P = params.data
    let w = 1 - decay
    Parallel.forRanges(ema.count, costPerItem: 3) { r in
        for i in r { E[i] = E[i] * decay + P[i] * w }
    }
}

/// Scales `grads` so their global L2 norm is at most `maxNorm` (torch.nn.utils.clip_grad_norm_);
/// returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ grads: Tensor, maxNorm: Double) -> Double {
    let norm = Ops.sumOfSquares(grads.data, count: grads.count).squareRoot()
    let coef = maxNorm / (norm + 1e-6)
    if coef < 1 { Ops.scale(grads.data, by: Float(coef), count: grads.count) }
    return norm
}

import _Builtin_intrinsics.intel
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
                adamSpan(P + range.lowerBound + r.lowerBound, G + range.lowerBound + r.lowerBound,
                         M + range.lowerBound + r.lowerBound, V + range.lowerBound + r.lowerBound, count: r.count,
                         decay: decay, b1w: b1w, b2: b2, b2w: b2w, bc2Sqrt: bc2Sqrt, eps: eps, stepSize: stepSize)
            }
        }
    }
}

/// The update over one span, eight elements at a time. Swift's `squareRoot()` becomes a
/// guarded libm `sqrtf` call on Linux (for errno), per element even on SIMD8, which keeps
/// the loop scalar; `_mm256_sqrt_ps` is the AVX instruction. Both are IEEE square roots,
/// correctly rounded, so the results are the scalar loop's, bit for bit. A decay of exactly 1 leaves
/// every value unchanged, so the decay is applied unconditionally.
func adamSpan(_ P: UnsafeMutablePointer<Float>, _ G: UnsafePointer<Float>, _ M: UnsafeMutablePointer<Float>,
              _ V: UnsafeMutablePointer<Float>, count: Int, decay: Float, b1w: Float, b2: Float, b2w: Float,
              bc2Sqrt: Float, eps: Float, stepSize: Float) {
    typealias F8 = SIMD8<Float>
    var i = 0
    let rp = UnsafeMutableRawPointer(P), rg = UnsafeRawPointer(G), rm = UnsafeMutableRawPointer(M), rv = UnsafeMutableRawPointer(V)
    while i + 8 <= count {
        let o = 4 * i
        let g = rg.loadUnaligned(fromByteOffset: o, as: F8.self)
        let m0 = rm.loadUnaligned(fromByteOffset: o, as: F8.self), v0 = rv.loadUnaligned(fromByteOffset: o, as: F8.self)
        let m = m0 + b1w * (g - m0)                 // torch lerp_ with weight < 0.5
        let v = v0 * b2 + b2w * g * g               // mul_(β₂).addcmul_(g, g, 1−β₂)
        let denom = _mm256_sqrt_ps(v) / bc2Sqrt + eps
        rm.storeBytes(of: m, toByteOffset: o, as: F8.self)
        rv.storeBytes(of: v, toByteOffset: o, as: F8.self)
        let p = rp.loadUnaligned(fromByteOffset: o, as: F8.self)
        rp.storeBytes(of: p * decay - stepSize * (m / denom), toByteOffset: o, as: F8.self)  // addcdiv_(m, denom, −step_size)
        i += 8
    }
    while i < count {
        let g = G[i]
        let m = M[i] + b1w * (g - M[i])
        let v = V[i] * b2 + b2w * g * g
        let denom = v.squareRoot() / bc2Sqrt + eps
        M[i] = m
        V[i] = v
        P[i] = P[i] * decay - stepSize * (m / denom)
        i += 1
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

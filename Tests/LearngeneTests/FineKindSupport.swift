import DiT
import Foundation
import Tensors
@testable import Learngene

/// Helpers of the FINE/KIND tests (namespaced: the WAVE tests share this module).
enum FK {
    static let config = DiTConfig(inputSize: 8, patchSize: 2, inChannels: 1, hiddenSize: 16, depth: 3, numHeads: 2, numClasses: 3)
    static let settings = TrainingSettings(optimizer: AdamWSettings(learningRate: 1e-3), emaDecay: 0.9, gradClip: 1.0)

    /// Uniform values in [−scale, scale) from a seeded stream.
    static func random(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = RandomStream(seed: seed, stream: 77)
        var a = [Float](repeating: 0, count: n)
        a.withUnsafeMutableBufferPointer { rng.fillUniform($0.baseAddress!, count: n, low: -scale, high: scale) }
        return a
    }

    /// A fixed batch of 4 images in [−1, 1] with labels.
    static func batch(_ k: Int, config c: DiTConfig = config) -> ([Float], [Int]) {
        (random(4 * c.inChannels * c.inputSize * c.inputSize, seed: UInt64(300 + k)), [0, 1, 2, k % c.numClasses])
    }

    /// A briefly trained dense DiT (non-zero adaLN and final layer), as an ancestry.
    static func ancestry(_ c: DiTConfig = config, seed: UInt64 = 5, steps: Int = 3) throws -> DiTModel {
        let t = try DiTTrainer(config: c, settings: TrainingSettings(optimizer: AdamWSettings(learningRate: 1e-2), emaDecay: 0.5), seed: seed)
        for k in 0..<steps {
            let (x, y) = batch(k, config: c)
            x.withUnsafeBufferPointer { _ = t.trainStep(images: $0.baseAddress!, labels: y) }
        }
        return t.model
    }

    /// Training losses of steps `steps` on the fixed batches (or one fixed batch).
    @discardableResult
    static func run(_ t: LearngeneTrainer, steps: Range<Int>, fixed: Bool = false) -> [Float] {
        steps.map { k in
            let (x, y) = batch(fixed ? 0 : k, config: t.config)
            return x.withUnsafeBufferPointer { t.trainStep(images: $0.baseAddress!, labels: y).loss }
        }
    }

    /// The model's full output (N, 2C, S, S) at fixed timesteps.
    static func output(_ m: DiTModel, labels: [Int] = [0, 1, 2, 3], seed: UInt64 = 9) -> [Float] {
        let c = m.config, n = labels.count * c.inChannels * c.inputSize * c.inputSize
        let x = random(n, seed: seed)
        var out = [Float](repeating: 0, count: 2 * n)
        let t = (0..<labels.count).map { [3, 500, 999, 120][$0 % 4] }
        x.withUnsafeBufferPointer { m.forward(x: $0.baseAddress!, t: t, y: labels, out: &out) }
        return out
    }

    /// max |a − b| / max |b|.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        var d = 0.0, s = 0.0
        for i in a.indices { d = max(d, Double(abs(a[i] - b[i]))); s = max(s, Double(abs(b[i]))) }
        return d / max(s, 1e-30)
    }

    /// Central differences of a Double loss over every entry of `values` (exact for a loss
    /// linear in each entry, as the factored linear is in each of its factors).
    static func numericGradient(_ values: [Float], h: Double = 1e-3, _ loss: ([Double]) -> Double) -> [Double] {
        var x = values.map(Double.init)
        return x.indices.map { i in
            let o = x[i]
            x[i] = o + h; let p = loss(x)
            x[i] = o - h; let m = loss(x)
            x[i] = o
            return (p - m) / (2 * h)
        }
    }

    /// max |analytic − numeric| / (1 + max |numeric|).
    static func gradientError(_ analytic: [Float], _ numeric: [Double]) -> Double {
        var d = 0.0, s = 0.0
        for i in numeric.indices { d = max(d, abs(Double(analytic[i]) - numeric[i])); s = max(s, abs(numeric[i])) }
        return d / (1 + s)
    }

    /// Rows of a random (k, n) matrix made orthonormal (Gram–Schmidt in Double).
    static func orthonormalRows(_ k: Int, _ n: Int, seed: UInt64) -> [Float] {
        var rows = (0..<k).map { i in random(n, seed: seed &+ UInt64(i)).map(Double.init) }
        for i in 0..<k {
            for j in 0..<i {
                let d = zip(rows[i], rows[j]).reduce(0) { $0 + $1.0 * $1.1 }
                for c in 0..<n { rows[i][c] -= d * rows[j][c] }
            }
            let norm = rows[i].reduce(0) { $0 + $1 * $1 }.squareRoot()
            rows[i] = rows[i].map { $0 / norm }
        }
        return rows.joined().map(Float.init)
    }

    /// Errors of the analytic gradients (dx, dU, dV, dσ) of a loss of (x, U, V, σ) against its
    /// central differences, by name.
    static func factorGradientErrors(x: [Float], u: [Float], v: [Float], s: [Float],
                                     analytic: (dx: [Float], du: [Float], dv: [Float], ds: [Float]),
                                     loss: ([Double], [Double], [Double], [Double]) -> Double) -> [(String, Double)] {
        let d = { (a: [Float]) in a.map(Double.init) }
        return [
            ("dx", gradientError(analytic.dx, numericGradient(x) { loss($0, d(u), d(v), d(s)) })),
            ("dU", gradientError(analytic.du, numericGradient(u) { loss(d(x), $0, d(v), d(s)) })),
            ("dV", gradientError(analytic.dv, numericGradient(v) { loss(d(x), d(u), $0, d(s)) })),
            ("dσ", gradientError(analytic.ds, numericGradient(s) { loss(d(x), d(u), d(v), $0) })),
        ]
    }

    /// The diffusion loss of a model on batch 0 at fixed draws (seed 99), averaged over 4 draws.
    static func evaluationLoss(_ m: DiTModel) throws -> Float {
        let c = m.config, (x, y) = batch(0, config: c)
        let diffusion = try GaussianDiffusion(diffusionSteps: 1000)
        var rnd = TrainerRandomState(seed: 99)
        let n = x.count
        var noise = [Float](repeating: 0, count: n), xT = noise, out = [Float](repeating: 0, count: 2 * n), dOut = out
        var total: Float = 0
        for _ in 0..<4 {
            let (t, yd) = rnd.drawStep(labels: y, config: c, numTimesteps: 1000, noise: &noise)
            total += x.withUnsafeBufferPointer {
                m.diffusionLoss(diffusion, images: $0.baseAddress!, t: t, y: yd, noise: noise, xT: &xT, out: &out, dOut: &dOut).lossMean
            }
        }
        return total / 4
    }
}

import Foundation
import Tensors

/// How to sample from a trained DiT (a manifest's `sampling:` section).
public struct SamplingSettings: Codable, Sendable, Equatable {
    /// Respaced reverse steps (DiT uses 250 DDPM steps; CPU runs want fewer).
    public var steps: Int = 50
    /// "ddpm" or "ddim".
    public var sampler: String = "ddpm"
    /// DDIM's η (0 = deterministic).
    public var eta: Float = 0
    /// Classifier-free guidance scale (1 = none; DiT's FID runs use 1.5, its pictures 4.0).
    public var guidance: Float = 1
    /// "standard" guides every ε channel; "dit" reproduces DiT's `forward_with_cfg`, which
    /// guides only the first three output channels.
    public var guidanceMode: String = "standard"
    public init(steps: Int = 50, sampler: String = "ddpm", eta: Float = 0, guidance: Float = 1, guidanceMode: String = "standard") {
        self.steps = steps
        self.sampler = sampler
        self.eta = eta
        self.guidance = guidance
        self.guidanceMode = guidanceMode
    }

    public var diffusionSampler: DiffusionSampler { sampler == "ddim" ? .ddim(eta: eta) : .ddpm }
    public var mode: GuidanceMode { guidanceMode == "dit" ? .ditFirstThreeChannels : .standard }

    /// Problems with these settings, each naming the field and the fix.
    public func problems() -> [String] {
        var out: [String] = []
        if steps < 2 || steps > 1000 { out.append("sampling.steps \(steps) must be in 2…1000 (DiT's respacing needs two steps)") }
        if !["ddpm", "ddim"].contains(sampler) { out.append("sampling.sampler \"\(sampler)\" must be \"ddpm\" or \"ddim\"") }
        if !(0...1).contains(eta) { out.append("sampling.eta \(eta) must be in [0, 1]") }
        if !(guidance >= 0 && guidance <= 50) { out.append("sampling.guidance \(guidance) must be in [0, 50]") }
        if !["standard", "dit"].contains(guidanceMode) { out.append("sampling.guidance_mode \"\(guidanceMode)\" must be \"standard\" or \"dit\"") }
        return out
    }
}

extension DiTModel {
    /// Samples images (N, C, S, S) in [−1, 1] for `labels` with this model's current
    /// parameters. Randomness only from `seed`, so a seed fixes the bits. Large label lists
    /// are processed in chunks of `batch` (each chunk with its own stream position, so the
    /// result does not depend on the chunk size only through the seed).
    public func sample(labels: [Int], settings: SamplingSettings, seed: UInt64, batch: Int = 64) throws -> Tensor {
        let c = config, m = c.inChannels * c.inputSize * c.inputSize
        let diffusion = try GaussianDiffusion(diffusionSteps: 1000)
        let wasInference = inferenceOnly
        inferenceOnly = true
        defer {
            releaseActivations()
            inferenceOnly = wasInference
        }
        let result = Tensor(shape: [labels.count, c.inChannels, c.inputSize, c.inputSize])
        var rng = RandomStream(seed: seed, stream: 0x5A)
        var start = 0
        while start < labels.count {
            let chunk = Array(labels[start..<min(labels.count, start + batch)])
            let images = try diffusion.sample(
                model: { x, t, y, out in self.forward(x: x, t: t, y: y, out: out) },
                shape: [chunk.count, c.inChannels, c.inputSize, c.inputSize], labels: chunk, steps: settings.steps,
                sampler: settings.diffusionSampler, guidance: settings.guidance, cfgMode: settings.mode,
                nullClass: c.numClasses, clipDenoised: true, rng: &rng)
            (result.data + start * m).update(from: images.data, count: chunk.count * m)
            start += chunk.count
        }
        return result
    }
}

extension DiTTrainer {
    /// A separate model holding the EMA (or raw) weights, for sampling without disturbing
    /// the trainer's activation buffers.
    public func inferenceModel(ema useEMA: Bool) -> DiTModel {
        let m = DiTModel(config: config)
        m.params.copy(from: useEMA ? ema : model.params)
        m.inferenceOnly = true
        return m
    }
}

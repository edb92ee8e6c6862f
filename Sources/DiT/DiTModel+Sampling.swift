import Foundation
import Tensors

/// How to sample from a trained DiT (a manifest's `sampling:` section).
public struct SamplingSettings: Codable, Sendable, Equatable {
    /// Respaced reverse steps (DiT uses 250 DDPM steps; CPU runs want fewer).
    public var steps: Int = 50
    /// "ddpm", "ddim" or "dpm++2m" (DPM-Solver++(2M)).
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

    /// The sampler names a manifest may use.
    public static let samplerNames = ["ddpm", "ddim", "dpm++2m"]

    public var diffusionSampler: DiffusionSampler {
        switch sampler {
        case "ddim": return .ddim(eta: eta)
        case "dpm++2m": return .dpmSolverPP2M
        default: return .ddpm
        }
    }
    public var mode: GuidanceMode { guidanceMode == "dit" ? .ditFirstThreeChannels : .standard }

    /// Problems with these settings, each naming the field and the fix.
    public func problems() -> [String] {
        var out: [String] = []
        if steps < 2 || steps > 1000 { out.append("sampling.steps \(steps) must be in 2…1000 (DiT's respacing needs two steps)") }
        if !Self.samplerNames.contains(sampler) { out.append("sampling.sampler \"\(sampler)\" must be one of \(Self.samplerNames.joined(separator: ", "))") }
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
    /// A text-conditioned model samples label k from `textTable` row k (the caller sets it;
    /// for more prompts than table rows, swap tables between calls or use
    /// `sample(textEmbeddings:settings:seed:batch:)`); guidance's null label is `numClasses`.
    public func sample(labels: [Int], settings: SamplingSettings, seed: UInt64, batch: Int = 64) throws -> Tensor {
        let c = config, m = c.inChannels * c.inputSize * c.inputSize
        let result = Tensor(shape: [labels.count, c.inChannels, c.inputSize, c.inputSize])
        try sample(labels: labels, settings: settings, seed: seed, batch: batch) { start, images in
            (result.data + start * m).update(from: images.data, count: images.count)
        }
        return result
    }

    /// As `sample(labels:settings:seed:batch:)`, with the same bits, but handing each chunk
    /// of `batch` images (and the index of its first) to `each` instead of holding them all:
    /// memory stays one chunk whatever the label count.
    public func sample(labels: [Int], settings: SamplingSettings, seed: UInt64, batch: Int = 64,
                       each: (Int, Tensor) throws -> Void) throws {
        let diffusion = try GaussianDiffusion(diffusionSteps: 1000)
        let wasInference = inferenceOnly
        inferenceOnly = true
        defer {
            releaseActivations()
            inferenceOnly = wasInference
        }
        var rng = RandomStream(seed: seed, stream: 0x5A)
        try sampleChunks(diffusion, labels: labels, settings: settings, batch: batch, rng: &rng, each: each)
    }

    /// Text-conditioned models: one image per prompt embedding (each `config.textDim` long, as
    /// the text table's rows), for any number of prompts. Prompts go through the model in
    /// groups of G = min(numClasses, batch), each group as a temporary text table (padded to
    /// numClasses rows with the group's last prompt) sampled with labels 0..<group size, the
    /// random stream continuing across groups. So the bits equal `sample(labels: 0..<P,
    /// batch: G)` of a model with the same parameters whose table holds all P prompts (the
    /// text layout does not depend on numClasses). The model's own table is restored after.
    public func sample(textEmbeddings prompts: [[Float]], settings: SamplingSettings, seed: UInt64,
                       batch: Int = 64) throws -> Tensor {
        let c = config
        guard c.textDim > 0 else {
            throw TextTableError(description: "sample(textEmbeddings:) needs a text-conditioned DiT (this one has text_dim 0)")
        }
        if let bad = prompts.firstIndex(where: { $0.count != c.textDim }) {
            throw TextTableError(description: "prompt embedding \(bad) has \(prompts[bad].count) values, the model's text_dim is \(c.textDim)")
        }
        let diffusion = try GaussianDiffusion(diffusionSteps: 1000)
        let saved = textTable, wasInference = inferenceOnly
        inferenceOnly = true
        defer {
            textTable = saved
            releaseActivations()
            inferenceOnly = wasInference
        }
        let result = Tensor(shape: [prompts.count, c.inChannels, c.inputSize, c.inputSize])
        var rng = RandomStream(seed: seed, stream: 0x5A)
        let group = max(1, min(c.numClasses, batch))
        var start = 0
        while start < prompts.count {
            let rows = Array(prompts[start..<min(prompts.count, start + group)])
            try setTextTable(rows + Array(repeating: rows[rows.count - 1], count: c.numClasses - rows.count))
            let m = c.inChannels * c.inputSize * c.inputSize, base = start
            try sampleChunks(diffusion, labels: Array(0..<rows.count), settings: settings, batch: group, rng: &rng) { s, images in
                (result.data + (base + s) * m).update(from: images.data, count: images.count)
            }
            start += rows.count
        }
        return result
    }

    /// Samples `labels` in chunks of `batch`, handing each chunk and its first index to `each`.
    /// Every model evaluation feeds the daemon's watchdog (`Heartbeat`): a sampling pass can
    /// last longer than the watchdog period.
    func sampleChunks(_ diffusion: GaussianDiffusion, labels: [Int], settings: SamplingSettings, batch: Int,
                      rng: inout RandomStream, each: (Int, Tensor) throws -> Void) throws {
        let c = config
        var start = 0
        while start < labels.count {
            let chunk = Array(labels[start..<min(labels.count, start + batch)])
            let images = try diffusion.sample(
                model: { x, t, y, out in
                    self.forward(x: x, t: t, y: y, out: out)
                    Heartbeat.beat()
                },
                shape: [chunk.count, c.inChannels, c.inputSize, c.inputSize], labels: chunk, steps: settings.steps,
                sampler: settings.diffusionSampler, guidance: settings.guidance, cfgMode: settings.mode,
                nullClass: c.numClasses, clipDenoised: true, rng: &rng)
            try each(start, images)
            start += chunk.count
        }
    }
}

extension DiTTrainer {
    /// A separate model holding the EMA (or raw) weights, for sampling without disturbing
    /// the trainer's activation buffers. A text-conditioned model gets a copy of the
    /// trainer model's text table.
    public func inferenceModel(ema useEMA: Bool) -> DiTModel {
        let m = DiTModel(config: config)
        m.params.copy(from: useEMA ? ema : model.params)
        m.textTable = model.textTable?.clone()
        m.inferenceOnly = true
        return m
    }
}

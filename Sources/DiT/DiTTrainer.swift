import Foundation
import Formats
import Tensors

/// How a DiT is trained: DiT's `train.py` recipe by default (AdamW lr 1e-4, EMA 0.9999,
/// uniform ε-MSE + VB, no clipping), plus the step-dependent parts of faster recipes
/// (`TrainingRecipe.swift`): warmup and decay of the learning rate, EMA schedules, Min-SNR
/// weighting. Every value is a manifest setting; checkpoints record them all.
public struct TrainingSettings: Codable, Sendable, Equatable {
    public var optimizer = AdamWSettings()
    /// EMA decay per step (DiT: 0.9999; short CPU runs want less, e.g. 0.999), or the ceiling
    /// of the `.warmup` schedule.
    public var emaDecay: Double = 0.9999
    /// Clip the global gradient norm to this value (nil: no clipping, as DiT).
    public var gradClip: Double? = nil
    public var lrSchedule: LearningRateSchedule = .constant
    /// Linear warmup of the learning rate over this many steps (0: none, as DiT).
    public var warmupSteps: Int = 0
    /// The run's length, for the decay schedules (0: no decay).
    public var totalSteps: Int = 0
    /// Where the decay schedules end, as a fraction of the base rate.
    public var minLearningRateFraction: Double = 0
    public var emaSchedule: EMASchedule = .constant
    /// γ of the power-function EMA (Karras et al. 2024: 6.94 ↔ σ_rel 0.10).
    public var emaPowerGamma: Double = 6.94
    public var lossWeighting: LossWeighting = .uniform
    /// γ of Min-SNR-γ (Hang et al. 2023 use 5).
    public var minSNRGamma: Double = 5
    public init(optimizer: AdamWSettings = .init(), emaDecay: Double = 0.9999, gradClip: Double? = nil) {
        self.optimizer = optimizer
        self.emaDecay = emaDecay
        self.gradClip = gradClip
    }
}

/// One training step's numbers.
public struct StepStats: Sendable, Equatable {
    public var loss: Float
    public var mse: Float
    public var vb: Float
    public var gradNorm: Float?
}

/// The random streams of training, all from one seed: timesteps, noise and label dropout
/// each have their own Philox stream, so the draws of one never shift another's.
public struct TrainerRandomState: Codable, Sendable, Equatable {
    public var timesteps: RandomStream
    public var noise: RandomStream
    public var labelDrop: RandomStream
    public init(seed: UInt64) {
        timesteps = RandomStream(seed: seed, stream: 1)
        noise = RandomStream(seed: seed, stream: 2)
        labelDrop = RandomStream(seed: seed, stream: 3)
    }

    /// One training step's draws, in DiT's order: a timestep per sample, N·C·S·S normals into
    /// `noise`, then labels dropped to the null class with p = class_dropout_prob.
    public mutating func drawStep(labels: [Int], config c: DiTConfig, numTimesteps: Int,
                                  noise: UnsafeMutablePointer<Float>) -> (t: [Int], y: [Int]) {
        let N = labels.count
        var t = [Int](repeating: 0, count: N)
        for n in 0..<N { t[n] = timesteps.nextInt(below: numTimesteps) }
        self.noise.fillNormal(noise, count: N * c.inChannels * c.inputSize * c.inputSize)
        var y = labels
        if c.classDropoutProb > 0 {
            for n in 0..<N where labelDrop.nextUniform() < c.classDropoutProb { y[n] = c.numClasses }
        }
        return (t, y)
    }
}

extension DiTModel {
    /// DiT's training loss for one step's draws: x_t = q_sample(x₀ = images, t, noise) into
    /// `xT`, the model output at (x_t, t, y) into `out`, d(lossMean)/d(out) into `dOut`.
    /// `mseWeights` (one per sample, nil = DiT's uniform loss) weight the ε-MSE term.
    public func diffusionLoss(_ diffusion: GaussianDiffusion, images: UnsafePointer<Float>, t: [Int], y: [Int],
                              noise: UnsafePointer<Float>, xT: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>,
                              dOut: UnsafeMutablePointer<Float>, mseWeights: [Float]? = nil) -> DiffusionLossTerms {
        let m = config.inChannels * config.inputSize * config.inputSize
        diffusion.qSample(xStart: images, noise: noise, t: t, out: xT, elementsPerSample: m)
        forward(x: xT, t: t, y: y, out: out)
        return diffusion.trainingLosses(xStart: images, noise: noise, t: t, modelOutput: out, elementsPerSample: m, gradOutput: dOut,
                                        mseWeights: mseWeights)
    }
}

/// A DiT with its optimizer, EMA and random state: DiT's training step
/// (t ~ U{0…T−1}, ε ~ N(0, I), labels dropped to the null class with p = class_dropout_prob,
/// loss = MSE + VB, AdamW, EMA), with every buffer allocated once per batch size.
/// Same seed, same data → same bits; `checkpoint()`/`restore` carry the whole state, so a
/// resumed run continues bit-identically.
///
/// Text-conditioned configs (`textDim > 0`) train the same way — labels index the model's text
/// table and label dropout sends them to the null embedding — once the caller has set the
/// table on `model` (`model.setTextTable`, e.g. the frozen encoder's embeddings of "a photo of
/// a {class name}"). The table is not a parameter: checkpoints do not hold it, so a stage that
/// restores a checkpoint must set the same table again before the next step.
public final class DiTTrainer: @unchecked Sendable {
    public let config: DiTConfig
    public let settings: TrainingSettings
    public let model: DiTModel
    public let ema: Tensor
    public let optimizer: AdamW
    public let diffusion: GaussianDiffusion
    public var random: TrainerRandomState

    private var xT = Tensor(shape: [0]), noise = Tensor(shape: [0]), out = Tensor(shape: [0]), dOut = Tensor(shape: [0])

    /// A fresh model with DiT's initialization from `seed` (EMA starts as a copy).
    public init(config: DiTConfig, settings: TrainingSettings = .init(), seed: UInt64) throws {
        self.config = config
        self.settings = settings
        model = DiTModel(config: config)
        model.initializeWeights(seed: seed)
        ema = model.params.clone()
        optimizer = AdamW(count: model.layout.count, settings: settings.optimizer)
        diffusion = try GaussianDiffusion(diffusionSteps: 1000)
        random = TrainerRandomState(seed: seed)
    }

    /// Steps taken so far.
    public var step: Int { optimizer.step }

    private func buffers(_ N: Int) {
        let c = config, n = N * c.inChannels * c.inputSize * c.inputSize
        if xT.count != n {
            xT = Tensor(shape: [n]); noise = Tensor(shape: [n])
            out = Tensor(shape: [2 * n]); dOut = Tensor(shape: [2 * n])
        }
    }

    /// One optimizer step on a batch of images (N, C, S, S) in [−1, 1] with class labels.
    /// `learningRate` overrides the settings' schedule for this step.
    @discardableResult
    public func trainStep(images: UnsafePointer<Float>, labels: [Int], learningRate: Double? = nil) -> StepStats {
        let N = labels.count
        buffers(N)
        let (t, y) = random.drawStep(labels: labels, config: config, numTimesteps: diffusion.numTimesteps, noise: noise.data)
        let terms = model.diffusionLoss(diffusion, images: images, t: t, y: y, noise: noise.data, xT: xT.data, out: out.data,
                                        dOut: dOut.data, mseWeights: settings.mseWeights(t: t, diffusion: diffusion))
        model.zeroGrad()
        model.backward(dOut: dOut.data)
        var norm: Float?
        if let clip = settings.gradClip { norm = Float(clipGradientNorm(model.grads, maxNorm: clip)) }
        optimizer.update(params: model.params, grads: model.grads, lr: learningRate ?? settings.learningRate(afterSteps: optimizer.step))
        emaUpdate(ema: ema, params: model.params, decay: Float(settings.emaDecay(atStep: optimizer.step)))
        let mse = terms.mse.reduce(0, +) / Float(N), vb = terms.vb.reduce(0, +) / Float(N)
        return StepStats(loss: terms.lossMean, mse: mse, vb: vb, gradNorm: norm)
    }

    // MARK: - Checkpoints

    static let checkpointFormat = "learngene.trainer.v1"

    /// The whole training state: parameters, AdamW moments and step, EMA, random streams,
    /// the config and settings (to refuse a mismatching resume). Flat F32 tensors.
    public func checkpoint(metadata extra: [String: String] = [:]) -> SafeTensors.File {
        var file = SafeTensors.File(metadata: extra)
        file["params"] = .f32(model.params)
        file["adam.m"] = .f32(optimizer.m)
        file["adam.v"] = .f32(optimizer.v)
        file["ema"] = .f32(ema)
        let enc = JSONEncoder()
        enc.outputFormatting = .sortedKeys
        file.metadata["format"] = "pt"
        file.metadata["learngene.checkpoint"] = Self.checkpointFormat
        file.metadata["step"] = String(optimizer.step)
        file.metadata["config"] = String(decoding: try! enc.encode(config), as: UTF8.self)
        file.metadata["settings"] = String(decoding: try! enc.encode(settings), as: UTF8.self)
        file.metadata["random"] = String(decoding: try! enc.encode(random), as: UTF8.self)
        return file
    }

    /// Why a checkpoint cannot be resumed.
    public struct CheckpointError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Restores the state saved by `checkpoint()`. A checkpoint made for another config or
    /// other settings is refused (never silently trained from scratch instead).
    public func restore(from file: SafeTensors.File) throws {
        let dec = JSONDecoder()
        guard file.metadata["learngene.checkpoint"] == Self.checkpointFormat else {
            throw CheckpointError(description: "not a learngene trainer checkpoint (format \(file.metadata["learngene.checkpoint"] ?? "missing"))")
        }
        guard let cfgJSON = file.metadata["config"], let cfg = try? dec.decode(DiTConfig.self, from: Data(cfgJSON.utf8)) else {
            throw CheckpointError(description: "checkpoint has no readable model config")
        }
        guard cfg == config else {
            throw CheckpointError(description: "checkpoint is for model \(cfgJSON), the job asks for another; delete the checkpoint or restore the manifest's model settings")
        }
        guard let setJSON = file.metadata["settings"], let set = try? dec.decode(TrainingSettings.self, from: Data(setJSON.utf8)), set == settings else {
            throw CheckpointError(description: "checkpoint was made with other training settings (\(file.metadata["settings"] ?? "none")); restore the manifest's training settings")
        }
        guard let stepString = file.metadata["step"], let step = Int(stepString),
              let rndJSON = file.metadata["random"], let rnd = try? dec.decode(TrainerRandomState.self, from: Data(rndJSON.utf8)) else {
            throw CheckpointError(description: "checkpoint lacks its step or random state")
        }
        for (name, t) in [("params", model.params), ("adam.m", optimizer.m), ("adam.v", optimizer.v), ("ema", ema)] {
            guard let e = file[name], e.dtype == .f32, e.count == t.count else {
                throw CheckpointError(description: "checkpoint tensor \(name) is missing or has the wrong size")
            }
            e.bytes.withUnsafeBytes { raw in
                for i in 0..<t.count { t.data[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
            }
        }
        optimizer.step = step
        random = rnd
    }

    // MARK: - Export and sampling

    /// The raw (or EMA) weights as a DiT `state_dict` file.
    public func modelFile(ema useEMA: Bool, metadata: [String: String] = [:]) -> SafeTensors.File {
        var meta = metadata
        meta["step"] = String(step)
        meta["weights"] = useEMA ? "ema" : "raw"
        return model.stateDict(from: useEMA ? ema : model.params, metadata: meta)
    }
}

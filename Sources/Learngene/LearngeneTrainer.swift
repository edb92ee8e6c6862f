import DiT
import Foundation
import Formats
import Tensors

/// One learngene training step's numbers: `loss` is what was minimized (the diffusion loss
/// plus λ·distill when a teacher is set), `mse`, `vb` the diffusion terms, `distill` the
/// unweighted mean((ε_student − ε_teacher)²) (nil without a teacher).
public struct LearngeneStepStats: Sendable, Equatable {
    public var loss: Float
    public var mse: Float
    public var vb: Float
    public var distill: Float?
    public var gradNorm: Float?
}

/// Trains a learngene parameterization inside a host DiT (`host.blockWeights = source`):
/// DiT's training step exactly as `DiTTrainer` (same `TrainingSettings`, Philox streams for
/// timesteps, noise and label dropout, MSE + VB loss, AdamW, gradient clipping, EMA), over
/// the host's dense parameters and the source's own.
///
/// - `.condense` trains the host's non-block parameters (embedders, biases, final layer) and
///   every source parameter: the ancestry stage that condenses the learngene.
/// - `.initialize` trains only `source.sizeSpecificRanges` (FINE's σ, KIND's tailors, WAVE's
///   scalers); the host and the learngene stay frozen: the `init` stage of a descendant.
/// - `.initializeWithHost` also trains the host's non-block parameters (a fresh host).
///
/// An optional `teacher` (a dense DiT on the same images and classes, any width or depth)
/// adds λ·mean((ε_student − ε_teacher)²) over the ε half of the output, at the same x_t, t
/// and (dropped) labels; its gradient reaches only the student's ε half.
///
/// Same seed, same data → same bits; `checkpoint()`/`restore(from:)` carry the whole state.
/// Only trainable elements are updated (AdamW masks) and averaged into the EMA, so frozen
/// parameters keep their exact bits.
public final class LearngeneTrainer: @unchecked Sendable {
    public enum Phase: String, Codable, Sendable, CaseIterable {
        case condense, initialize
        /// `.initialize` plus the host's non-block parameters: for a descendant whose host
        /// could not be inherited (a WAVE descendant of another width gets a fresh DiT host,
        /// whose zero final layer would pass no gradient to the scalers).
        case initializeWithHost = "initialize-with-host"
    }

    public let config: DiTConfig
    public let settings: TrainingSettings
    public let phase: Phase
    public let host: DiTModel
    public let source: any LearngeneParameterization
    public let teacher: DiTModel?
    public let distillWeight: Double
    public let hostOptimizer: AdamW
    public let sourceOptimizer: AdamW
    public let hostEMA: Tensor
    public let sourceEMA: Tensor
    public let diffusion: GaussianDiffusion
    public var random: TrainerRandomState
    /// What this phase trains, in `host.params` and `source.params`.
    public let hostTrainable: [Range<Int>]
    public let sourceTrainable: [Range<Int>]

    private var xT = Tensor(shape: [0]), noise = Tensor(shape: [0]), out = Tensor(shape: [0]), dOut = Tensor(shape: [0])
    private var teacherOut = Tensor(shape: [0])

    /// Sets `host.blockWeights = source` (and takes the host out of inference mode). The
    /// random streams come from `seed`; the parameters are the caller's (initialize `host` and
    /// `source` first). The teacher is put in forward-only mode.
    public init(host: DiTModel, source: any LearngeneParameterization, phase: Phase, settings: TrainingSettings = .init(),
                seed: UInt64, teacher: DiTModel? = nil, distillWeight: Double = 0) throws {
        guard host.config == source.config else {
            throw LearngeneError("the host DiT and the \(source.method.rawValue.uppercased()) parameterization are for different models (\(FactorFile.differences(host.config, source.config).joined(separator: ", ")), host vs source)")
        }
        if let t = teacher {
            let a = t.config, b = host.config
            guard a.inputSize == b.inputSize, a.inChannels == b.inChannels, a.numClasses == b.numClasses else {
                throw LearngeneError("the teacher must take the student's images and classes (teacher \(a.inputSize)px ×\(a.inChannels), \(a.numClasses) classes; student \(b.inputSize)px ×\(b.inChannels), \(b.numClasses) classes)")
            }
            t.inferenceOnly = true
        }
        guard distillWeight >= 0, distillWeight.isFinite else { throw LearngeneError("distill weight \(distillWeight) must be finite and ≥ 0") }
        config = host.config
        self.settings = settings
        self.phase = phase
        self.host = host
        self.source = source
        self.teacher = teacher
        self.distillWeight = distillWeight
        host.blockWeights = source
        host.inferenceOnly = false
        hostOptimizer = AdamW(count: host.params.count, settings: settings.optimizer)
        sourceOptimizer = AdamW(count: source.params.count, settings: settings.optimizer)
        switch phase {
        case .condense:
            hostTrainable = Self.nonBlockRanges(host.layout)
            sourceTrainable = [0..<source.params.count]
        case .initialize:
            hostTrainable = []
            sourceTrainable = source.sizeSpecificRanges
        case .initializeWithHost:
            hostTrainable = Self.nonBlockRanges(host.layout)
            sourceTrainable = source.sizeSpecificRanges
        }
        hostOptimizer.mask = hostTrainable
        sourceOptimizer.mask = sourceTrainable
        hostEMA = host.params.clone()
        sourceEMA = source.params.clone()
        diffusion = try GaussianDiffusion(diffusionSteps: 1000)
        random = TrainerRandomState(seed: seed)
    }

    /// The ranges of a DiT's buffer outside the five block weight matrices (merged).
    public static func nonBlockRanges(_ layout: ParameterLayout) -> [Range<Int>] {
        let weights = Set(BlockMatrix.allCases.map(\.weightName))
        var out: [Range<Int>] = []
        for e in layout.entries {
            let parts = e.name.split(separator: ".", maxSplits: 2)
            if parts.count == 3, parts[0] == "blocks", weights.contains(String(parts[2])) { continue }
            let r = e.offset..<(e.offset + e.count)
            if let last = out.last, last.upperBound == r.lowerBound { out[out.count - 1] = last.lowerBound..<r.upperBound } else { out.append(r) }
        }
        return out
    }

    public var step: Int { sourceOptimizer.step }

    // MARK: - Counts for reports

    /// Parameters this phase trains.
    public var trainableParameterCount: Int { (hostTrainable + sourceTrainable).reduce(0) { $0 + $1.count } }
    /// Floats and bytes (F32) of the learngene, and floats of the size-specific part.
    public var learngeneFloats: Int { source.learngeneCount }
    public var learngeneBytes: Int { 4 * source.learngeneCount }
    public var sizeSpecificFloats: Int { source.sizeSpecificCount }

    // MARK: - Training

    private func buffers(_ N: Int) {
        let c = config, n = N * c.inChannels * c.inputSize * c.inputSize
        if xT.count != n {
            xT = Tensor(shape: [n]); noise = Tensor(shape: [n])
            out = Tensor(shape: [2 * n]); dOut = Tensor(shape: [2 * n])
            teacherOut = Tensor(shape: [teacher == nil ? 0 : 2 * n])
        }
    }

    /// One optimizer step on a batch of images (N, C, S, S) in [−1, 1] with class labels.
    @discardableResult
    public func trainStep(images: UnsafePointer<Float>, labels: [Int], learningRate: Double? = nil) -> LearngeneStepStats {
        let N = labels.count, c = config
        let m = c.inChannels * c.inputSize * c.inputSize
        buffers(N)
        let (t, y) = random.drawStep(labels: labels, config: c, numTimesteps: diffusion.numTimesteps, noise: noise.data)
        let terms = host.diffusionLoss(diffusion, images: images, t: t, y: y, noise: noise.data, xT: xT.data, out: out.data,
                                       dOut: dOut.data, mseWeights: settings.mseWeights(t: t, diffusion: diffusion))
        var distill: Float?
        if let teacher {
            teacher.forward(x: xT.data, t: t, y: y, out: teacherOut.data)
            distill = Float(addDistillation(N: N, m: m))
        }
        host.zeroGrad()
        source.zeroGrad()
        host.backward(dOut: dOut.data)
        var norm: Float?
        if let clip = settings.gradClip { norm = Float(clipTrainable(maxNorm: clip)) }
        let lr = learningRate ?? settings.learningRate(afterSteps: sourceOptimizer.step)
        hostOptimizer.update(params: host.params, grads: host.grads, lr: lr)
        sourceOptimizer.update(params: source.params, grads: source.grads, lr: lr)
        let decay = Float(settings.emaDecay(atStep: sourceOptimizer.step))
        rangedEMA(hostEMA, host.params, hostTrainable, decay)
        rangedEMA(sourceEMA, source.params, sourceTrainable, decay)
        let mse = terms.mse.reduce(0, +) / Float(N), vb = terms.vb.reduce(0, +) / Float(N)
        let loss = distill.map { terms.lossMean + Float(distillWeight) * $0 } ?? terms.lossMean
        return LearngeneStepStats(loss: loss, mse: mse, vb: vb, distill: distill, gradNorm: norm)
    }

    /// distill = mean over the ε halves of (ε_s − ε_t)²; adds λ·d(distill)/dε_s to dOut.
    /// Per-sample sums in Double, in a fixed order.
    private func addDistillation(N: Int, m: Int) -> Double {
        let g = Float(2 * distillWeight / Double(N * m))
        var sums = [Double](repeating: 0, count: N)
        let S = out.data, T = teacherOut.data, D = dOut.data
        sums.withUnsafeMutableBufferPointer { sp in
            let sp = UncheckedBox(sp)
            Parallel.forRanges(N, costPerItem: m * 4) { r in
                for s in r {
                    var acc = 0.0
                    for j in (s * 2 * m)..<(s * 2 * m + m) {
                        let d = S[j] - T[j]
                        acc += Double(d * d)
                        D[j] += g * d
                    }
                    sp.value[s] = acc
                }
            }
        }
        return sums.reduce(0, +) / Double(N * m)
    }

    /// Clips the global norm of the trainable gradients; returns the norm before clipping.
    private func clipTrainable(maxNorm: Double) -> Double {
        let parts = hostTrainable.map { (host.grads.data, $0) } + sourceTrainable.map { (source.grads.data, $0) }
        let norm = parts.reduce(0.0) { $0 + Ops.sumOfSquares($1.0 + $1.1.lowerBound, count: $1.1.count) }.squareRoot()
        let coef = maxNorm / (norm + 1e-6)
        if coef < 1 { for (p, r) in parts { Ops.scale(p + r.lowerBound, by: Float(coef), count: r.count) } }
        return norm
    }

    private func rangedEMA(_ ema: Tensor, _ params: Tensor, _ ranges: [Range<Int>], _ decay: Float) {
        let w = 1 - decay, E = ema.data, P = params.data
        for range in ranges {
            Parallel.forRanges(range.count, costPerItem: 3) { r in
                for j in r {
                    let i = range.lowerBound + j
                    E[i] = E[i] * decay + P[i] * w
                }
            }
        }
    }

    // MARK: - Dense export

    /// A plain DiT with the block matrices materialized from the source (raw or EMA
    /// parameters): what `init` outputs per size. Forward-and-backward ready (not in
    /// inference mode). For KIND the matrices have every tailor open (`denseWeight`): equal
    /// to the gated model while the tailors are silent (σ = 0, a fresh descendant) or when
    /// every class opens every tailor; otherwise the gated model is not a plain DiT (its
    /// weights depend on the class) and the host with `blockWeights` is the exact one.
    public func denseModel(ema useEMA: Bool) -> DiTModel {
        Self.materialize(host: host, hostParams: useEMA ? hostEMA : host.params, source: source,
                         sourceParams: useEMA ? sourceEMA : nil)
    }

    /// A dense DiT from a host's non-block parameters (`hostParams`, default the host's) and a
    /// source's matrices (computed from `sourceParams` when given, else the current ones).
    public static func materialize(host: DiTModel, hostParams: Tensor? = nil, source: any LearngeneParameterization,
                                   sourceParams: Tensor? = nil) -> DiTModel {
        let dense = DiTModel(config: host.config)
        dense.params.copy(from: hostParams ?? host.params)
        if let sp = sourceParams, sp !== source.params {
            let saved = source.params.clone()
            source.params.copy(from: sp)
            source.writeDenseWeights(into: dense)
            source.params.copy(from: saved)
        } else {
            source.writeDenseWeights(into: dense)
        }
        return dense
    }

    // MARK: - Checkpoints

    static let checkpointFormat = "learngene.learngene-trainer.v1"

    private var stateTensors: [(String, Tensor)] {
        [("host.params", host.params), ("host.adam.m", hostOptimizer.m), ("host.adam.v", hostOptimizer.v), ("host.ema", hostEMA),
         ("source.params", source.params), ("source.adam.m", sourceOptimizer.m), ("source.adam.v", sourceOptimizer.v),
         ("source.ema", sourceEMA)]
    }

    /// What a resume must match, as metadata strings.
    private var identity: [String: String] {
        [
            "config": FactorFile.json(config),
            "settings": FactorFile.json(settings),
            "phase": phase.rawValue,
            "method": source.method.rawValue,
            "source.settings": source.metadata["learngene.settings"] ?? "",
            "source.config": source.metadata["learngene.config"] ?? "",
            "distill_weight": teacher == nil ? "none" : String(distillWeight),
            "teacher": teacher.map { FactorFile.json($0.config) } ?? "none",
        ]
    }

    /// The whole training state: host and source parameters, both optimizers' moments, both
    /// EMAs, step, random streams, and what a resume must match (config, settings, phase,
    /// method and its settings, teacher). Flat F32 tensors.
    public func checkpoint(metadata extra: [String: String] = [:]) -> SafeTensors.File {
        var file = SafeTensors.File(metadata: extra)
        for (name, t) in stateTensors { file[name] = .f32(t) }
        for (k, v) in identity { file.metadata[k] = v }
        file.metadata["format"] = "pt"
        file.metadata["learngene.checkpoint"] = Self.checkpointFormat
        file.metadata["step"] = String(step)
        file.metadata["random"] = FactorFile.json(random)
        return file
    }

    /// Restores the state saved by `checkpoint()`; refuses one made for another model,
    /// method, phase, settings or teacher (naming which), never training from scratch instead.
    public func restore(from file: SafeTensors.File) throws {
        guard file.metadata["learngene.checkpoint"] == Self.checkpointFormat else {
            throw LearngeneError("not a learngene trainer checkpoint (format \(file.metadata["learngene.checkpoint"] ?? "missing")); delete it or point at the right file")
        }
        for (key, value) in identity.sorted(by: { $0.key < $1.key }) where file.metadata[key] != value {
            throw LearngeneError("the checkpoint was made with another \(key) (\(file.metadata[key] ?? "none"), this run: \(value)); restore the job's earlier settings or delete the checkpoint")
        }
        guard let stepString = file.metadata["step"], let step = Int(stepString), let rj = file.metadata["random"],
              let rnd = try? JSONDecoder().decode(TrainerRandomState.self, from: Data(rj.utf8)) else {
            throw LearngeneError("the checkpoint lacks its step or random state; delete it")
        }
        for (name, t) in stateTensors {
            guard let e = file[name], e.dtype == .f32, e.count == t.count else {
                throw LearngeneError("checkpoint tensor \(name) is missing or has the wrong size; delete the checkpoint")
            }
        }
        for (name, t) in stateTensors {
            let v = file[name]!.floats()
            v.withUnsafeBufferPointer { t.data.update(from: $0.baseAddress!, count: t.count) }
        }
        hostOptimizer.step = step
        sourceOptimizer.step = step
        random = rnd
    }
}

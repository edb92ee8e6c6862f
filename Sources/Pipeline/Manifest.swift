import DiT
import Foundation
import Metrics

/// A job manifest in its resolved form: every field present, every default filled in. This is
/// what runs, what is hashed into checkpoints, and what is written back as `manifest.yaml` in
/// the job's output (a valid manifest itself, so a result can be reproduced from its folder).
///
/// Field names are snake_case in files (DiT's argument names where they exist).
public struct Manifest: Sendable, Equatable {
    public static let currentVersion = 1

    /// Manifest format version (1).
    public var version: Int = Manifest.currentVersion
    /// What the job does: a stage name from the catalog (`pretrain`).
    public var stage: String
    /// The job's name: its file name without extension; names its `Outbox/<name>/` folder.
    public var name: String
    /// Seed for every random choice (initialization, data order, noise, label dropout).
    public var seed: Int = 0
    /// Where the job's inputs come from, by role (`dataset`, `model`, ...).
    public var inputs: [String: InputSource] = [:]
    public var data = DataSection()
    public var model = ModelSection()
    public var training = TrainingSection()
    public var checkpoint = CheckpointSection()
    public var sampling = SamplingSection()
    public var evaluation = EvaluationSection()
    public var finetune = FinetuneSection()
    public var learngene = LearngeneSection()
    /// Text conditioning (`model.conditioning: text`): how class names become captions.
    public var text = TextSection()
    public var cretok = CreTokSection()

    public init(stage: String, name: String) {
        self.stage = stage
        self.name = name
    }

    /// How images are read and turned into training tensors.
    public struct DataSection: Sendable, Equatable {
        /// An alpha channel: `composite_over_white` (what a viewer shows on a white page) or
        /// `drop` (keep the stored colour, as Pillow's `convert("RGB")`). Images of other sizes
        /// are center-cropped to a square and resampled (area average down, bilinear up).
        public var alpha = "composite_over_white"
        /// A corrupt, truncated or oversized image: `fail` the job, or `skip` the file (and report it).
        public var badImages = "fail"
        /// Use at most this many images (0: all), taken in a seeded order.
        public var maxImages = 0
        /// Refuse images whose declared width×height exceeds this before decoding (decompression bombs).
        public var maxImagePixels = 40_000_000
        /// Random horizontal flips during training.
        public var horizontalFlip = false

        public static let alphaRules = ["composite_over_white", "drop"]
        public static let badImageModes = ["fail", "skip"]

        public init() {}
    }

    /// The DiT's shape: a preset from DiT's registry, each field overridable.
    public struct ModelSection: Sendable, Equatable {
        public var preset = "cpu-28-small"
        public var inputSize = 28
        public var inChannels = 1
        public var patchSize = 4
        public var hiddenSize = 128
        public var depth = 4
        public var numHeads = 4
        public var mlpRatio = 4
        public var classDropoutProb = 0.1
        /// Number of classes; `auto` (0 here) means the number of class folders in the dataset.
        public var numClasses: NumClasses = .auto
        /// `class` (DiT's label table) or `text`: each class's caption (`text.caption`) is
        /// embedded by the frozen all-MiniLM-L6-v2 and projected in place of the label
        /// embedding (a learned null embedding for guidance). Written back only when `text`.
        public var conditioning = "class"

        public static let conditionings = ["class", "text"]

        public enum NumClasses: Sendable, Equatable {
            case auto
            case fixed(Int)
        }

        public init() {}

        /// The DiT configuration, given the number of classes the data has.
        public func ditConfig(numClasses classes: Int) -> DiTConfig {
            let n: Int = if case let .fixed(k) = numClasses { k } else { classes }
            return DiTConfig(inputSize: inputSize, patchSize: patchSize, inChannels: inChannels, hiddenSize: hiddenSize,
                             depth: depth, numHeads: numHeads, numClasses: n, mlpRatio: mlpRatio,
                             classDropoutProb: Float(classDropoutProb))
        }
    }

    /// The optimization recipe. `recipe` picks the defaults of every other field:
    /// - `cpu` (the default): the recipe measured in `benchmarks/recipe/` to make minute-long
    ///   CPU runs generate: lr 2e-3 with a 100-step warmup (a tenth of shorter runs) and cosine
    ///   decay to 10%, an EMA
    ///   whose decay warms up to 0.999, Min-SNR-5 weighting of the ε-MSE, gradient norm
    ///   clipped at 1;
    /// - `dit`: DiT's `train.py` exactly (AdamW lr 1e-4 constant, EMA 0.9999, uniform loss,
    ///   no clipping), the recipe the papers' comparisons use.
    /// Any field written in the manifest overrides the recipe's value.
    public struct TrainingSection: Sendable, Equatable {
        public var recipe = "cpu"
        public var steps = 1000
        public var batchSize = 32
        public var learningRate = 2e-3
        public var weightDecay = 0.0
        public var adamBeta1 = 0.9
        public var adamBeta2 = 0.999
        public var adamEps = 1e-8
        public var lrSchedule = LearningRateSchedule.cosine
        public var warmupSteps = 100
        public var minLRFraction = 0.1
        public var emaSchedule = EMASchedule.warmup
        public var emaDecay = 0.999
        public var emaPowerGamma = 6.94
        public var lossWeighting = LossWeighting.minSNR
        public var minSNRGamma = 5.0
        /// Global gradient-norm clipping (0: none).
        public var gradClip = 1.0
        /// Log a progress line every this many steps.
        public var logEvery = 10

        public static let recipes = ["cpu", "dit"]

        /// The defaults of `recipe` (every field but steps, batch size and logging).
        public static func defaults(recipe: String) -> TrainingSection {
            var t = TrainingSection()
            t.recipe = recipe
            if recipe == "dit" {
                t.learningRate = 1e-4
                t.lrSchedule = .constant
                t.warmupSteps = 0
                t.minLRFraction = 0
                t.emaSchedule = .constant
                t.emaDecay = 0.9999
                t.lossWeighting = .uniform
                t.gradClip = 0
            }
            return t
        }

        /// The trainer's settings for this section (one place for every stage that trains).
        public var settings: TrainingSettings {
            var s = TrainingSettings(optimizer: AdamWSettings(learningRate: learningRate, beta1: adamBeta1, beta2: adamBeta2,
                                                              eps: adamEps, weightDecay: weightDecay),
                                     emaDecay: emaDecay, gradClip: gradClip > 0 ? gradClip : nil)
            s.lrSchedule = lrSchedule
            s.warmupSteps = warmupSteps
            s.totalSteps = steps
            s.minLearningRateFraction = minLRFraction
            s.emaSchedule = emaSchedule
            s.emaPowerGamma = emaPowerGamma
            s.lossWeighting = lossWeighting
            s.minSNRGamma = minSNRGamma
            return s
        }

        /// metrics.json's `"recipe"` member after `step` steps: the settings that shaped the
        /// run, with the learning rate and EMA decay of the last step and the EMA's averaging
        /// length (1/(1 − β), in steps), to compare with the run's length.
        public func record(atStep step: Int) -> JSONValue {
            let s = settings
            return .object([
                ("recipe", .string(recipe)), ("lr_schedule", .string(lrSchedule.rawValue)), ("learning_rate", .double(learningRate)),
                ("warmup_steps", .int(warmupSteps)), ("final_learning_rate", .double(s.learningRate(afterSteps: max(0, step - 1)))),
                ("ema_schedule", .string(emaSchedule.rawValue)), ("ema_decay_final", .double(s.emaDecay(atStep: step))),
                ("ema_averaging_steps", .double((s.emaAveragingSteps(atStep: step) * 10).rounded() / 10)),
                ("loss_weighting", .string(lossWeighting.rawValue)),
                ("min_snr_gamma", lossWeighting == .minSNR ? .double(minSNRGamma) : .null),
                ("grad_clip", gradClip > 0 ? .double(gradClip) : .null),
            ])
        }

        public init() {}
    }

    /// When to write resumable checkpoints and how many to keep.
    public struct CheckpointSection: Sendable, Equatable {
        /// Write a checkpoint every this many steps (also on shutdown and at the end).
        public var every = 200
        /// Keep the newest this many complete checkpoints.
        public var keep = 2
        public init() {}
    }

    /// How samples are drawn after training (`samples.npz`, the sample grid).
    public struct SamplingSection: Sendable, Equatable {
        /// `ddim` (deterministic, few steps) or `ddpm` (ancestral).
        public var sampler = "ddim"
        /// Respaced diffusion steps.
        public var steps = 50
        /// Classifier-free guidance scale (1 = no guidance).
        public var cfgScale = 2.0
        /// DDIM's η (0: deterministic).
        public var eta = 0.0
        /// `standard` guides every ε channel; `dit` reproduces DiT's `forward_with_cfg` (first three output channels).
        public var guidanceMode = "standard"
        /// Number of images in `samples.npz` (0: no samples).
        public var count = 100
        /// Images per row of the grid PNG.
        public var gridColumns = 10
        /// Sample from the EMA weights (true) or the raw ones.
        public var useEma = true
        /// Seed for the sampling noise (defaults to the job's seed).
        public var seed = 0

        public static let samplers = SamplingSettings.samplerNames
        public static let guidanceModes = ["standard", "dit"]

        public init() {}
    }

    /// How generated samples are measured (Inception-v3 and EfficientNet-Lite0 features;
    /// `metrics.json`'s `"metrics"`, the table of `report.html`). Without a network's weights
    /// installed its metrics are listed as unavailable with the reason, and the job still succeeds.
    public struct EvaluationSection: Sendable, Equatable {
        /// Which metrics to report (default: all of them).
        public var metrics: [String] = EvaluationSection.defaults
        /// Images generated for the metrics (0: no metrics). Labels cycle through the classes.
        public var samples = 1000
        /// Reference images taken from the dataset, a seeded subset (0: all).
        public var referenceImages = 2000
        /// EfficientNet-Lite0's input size; images are resized bilinearly to it.
        public var inputSize = 112
        /// For `evaluate` with `inputs.model`: which weights file of that job to load
        /// (`auto`: `ema.safetensors` when sampling.use_ema, else `model.safetensors`).
        public var modelFile = "auto"
        /// An `.npz` of Inception-v3 pool_3 statistics made elsewhere (`mu`, `sigma`: clean-fid's
        /// and pytorch-fid's layout), a path under the root; `fid_inception_v3` is then measured
        /// against it instead of the dataset's own statistics. nil: the dataset's.
        public var referenceStatistics: String?
        /// Evaluate during training every this many steps (0: only at the end). Each time,
        /// `every_samples` images from the EMA weights (their own seed) are scored by the
        /// class-accuracy and FD metrics: curves of metric against step and wall time, in
        /// metrics.json (`metric_curves`), the report, the Outbox index and TensorBoard.
        public var every = 0
        /// Images sampled at each evaluation during training (small: it is a curve, not the result).
        public var everySamples = 100
        /// Written only when set, so manifests without them hash as before.
        var referenceStatisticsFields: [(String, JSONValue)] {
            (referenceStatistics.map { [("reference_statistics", .string($0))] } ?? [])
                + (every > 0 ? [("every", .int(every)), ("every_samples", .int(everySamples))] : [])
        }

        /// Metric names this build computes (`precision_recall` is accepted for the two k-NN ones).
        public static let available = MetricsReport.names
        /// Without `metrics:`, every metric but the Inception ones: Inception-v3 at 299² costs
        /// about 0.2 s per image on two cores (minutes per job), against 6 ms for Lite0 at 112 px.
        /// Ask for them by name, or with the alias `inception`.
        public static let defaults = available.filter { !$0.hasSuffix("_inception_v3") }
        public static let aliases = ["precision_recall": ["precision_effnet_lite0", "recall_effnet_lite0"],
                                     "inception": available.filter { $0.hasSuffix("_inception_v3") },
                                     "all": available]
        public init() {}
    }

    /// `finetune`: which weights file of `inputs.model` to start from.
    public struct FinetuneSection: Sendable, Equatable {
        /// `auto`: `ema.safetensors` when present, else `model.safetensors`; for an `init`
        /// job, its per-size file (e.g. `depth-2.safetensors`).
        public var modelFile = "auto"
        public init() {}
    }

    /// The resolved manifest as an ordered tree (the order of the documentation).
    public var json: JSONValue {
        .object([
            ("version", .int(version)), ("stage", .string(stage)), ("name", .string(name)), ("seed", .int(seed)),
            ("inputs", .object(inputs.keys.sorted().map { ($0, inputs[$0]!.json) })),
            ("data", .object([("alpha", .string(data.alpha)), ("bad_images", .string(data.badImages)),
                              ("max_images", .int(data.maxImages)), ("max_image_pixels", .int(data.maxImagePixels)),
                              ("horizontal_flip", .bool(data.horizontalFlip))])),
            ("model", .object([("preset", .string(model.preset)), ("input_size", .int(model.inputSize)),
                               ("in_channels", .int(model.inChannels)), ("patch_size", .int(model.patchSize)),
                               ("hidden_size", .int(model.hiddenSize)), ("depth", .int(model.depth)),
                               ("num_heads", .int(model.numHeads)), ("mlp_ratio", .int(model.mlpRatio)),
                               ("class_dropout_prob", .double(model.classDropoutProb)),
                               ("num_classes", { if case let .fixed(n) = model.numClasses { .int(n) } else { .string("auto") } }())]
                              + conditioningFields)),
            ("training", .object([("recipe", .string(training.recipe)), ("steps", .int(training.steps)),
                                  ("batch_size", .int(training.batchSize)),
                                  ("learning_rate", .double(training.learningRate)), ("lr_schedule", .string(training.lrSchedule.rawValue)),
                                  ("warmup_steps", .int(training.warmupSteps)), ("min_lr_fraction", .double(training.minLRFraction)),
                                  ("weight_decay", .double(training.weightDecay)),
                                  ("adam_beta1", .double(training.adamBeta1)), ("adam_beta2", .double(training.adamBeta2)),
                                  ("adam_eps", .double(training.adamEps)), ("ema_schedule", .string(training.emaSchedule.rawValue)),
                                  ("ema_decay", .double(training.emaDecay)), ("ema_power_gamma", .double(training.emaPowerGamma)),
                                  ("loss_weighting", .string(training.lossWeighting.rawValue)), ("min_snr_gamma", .double(training.minSNRGamma)),
                                  ("grad_clip", .double(training.gradClip)),
                                  ("log_every", .int(training.logEvery))])),
            ("checkpoint", .object([("every", .int(checkpoint.every)), ("keep", .int(checkpoint.keep))])),
            ("sampling", .object([("sampler", .string(sampling.sampler)), ("steps", .int(sampling.steps)),
                                  ("cfg_scale", .double(sampling.cfgScale)), ("eta", .double(sampling.eta)),
                                  ("guidance_mode", .string(sampling.guidanceMode)), ("count", .int(sampling.count)),
                                  ("grid_columns", .int(sampling.gridColumns)), ("use_ema", .bool(sampling.useEma)),
                                  ("seed", .int(sampling.seed))])),
            ("evaluation", .object([("metrics", .array(evaluation.metrics.map { .string($0) })), ("samples", .int(evaluation.samples)),
                                    ("reference_images", .int(evaluation.referenceImages)), ("input_size", .int(evaluation.inputSize)),
                                    ("model_file", .string(evaluation.modelFile))] + evaluation.referenceStatisticsFields)),
            ("finetune", .object([("model_file", .string(finetune.modelFile))])),
            ("learngene", learngene.json),
        ] + stageSections)
    }

    /// `model.conditioning`, written only when not `class` (class-conditioned manifests resolve,
    /// hash and reproduce exactly as before text conditioning existed).
    var conditioningFields: [(String, JSONValue)] {
        model.conditioning == "class" ? [] : [("conditioning", .string(model.conditioning))]
    }

    /// `text` (text-conditioned models) and `cretok` (its stage): written only where they apply.
    var stageSections: [(String, JSONValue)] {
        var out: [(String, JSONValue)] = []
        if model.conditioning == "text" { out.append(("text", text.json)) }
        if stage == "cretok" { out.append(("cretok", cretok.json)) }
        return out
    }

    /// The resolved manifest as YAML: a valid manifest that reproduces the job.
    public func yaml() -> String {
        "# Resolved manifest of job \(name): every field with the value used.\n" + YAMLWriter.write(json)
    }

    /// Hash of everything that determines the job's result; a checkpoint written under a
    /// different hash cannot be resumed by this manifest.
    public var configHash: String { ConfigHash.hex(Array(json.compact.utf8)) }

    /// The job names this manifest's inputs depend on.
    public var jobDependencies: [String] {
        inputs.keys.sorted().compactMap { if case let .job(j) = inputs[$0]! { j } else { nil } }
    }
}

/// Where an input comes from.
public enum InputSource: Sendable, Equatable {
    /// A dataset folder `Inbox/datasets/<name>/`.
    case dataset(String)
    /// A folder or file given relative to the root.
    case path(String)
    /// The published output `Outbox/<job>/` of an earlier job.
    case job(String)

    public static let kinds = ["dataset", "path", "job"]

    var json: JSONValue {
        switch self {
        case let .dataset(n): .object([("dataset", .string(n))])
        case let .path(p): .object([("path", .string(p))])
        case let .job(j): .object([("job", .string(j))])
        }
    }

    public var summary: String {
        switch self {
        case let .dataset(n): "dataset \(n)"
        case let .path(p): "path \(p)"
        case let .job(j): "job \(j)"
        }
    }
}

/// FNV-1a, 64 bit: a stable fingerprint of configuration bytes (not a security hash; it only
/// has to tell "the same configuration" from "a different one").
public enum ConfigHash {
    public static func hex(_ bytes: [UInt8]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h &*= 0x0000_0100_0000_01B3
        }
        let s = String(h, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}

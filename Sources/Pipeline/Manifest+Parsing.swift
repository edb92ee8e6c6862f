import DiT
import Foundation

/// A manifest that cannot be used, with every problem found.
public struct ManifestError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var problems: [Problem]

    public init(file: String, problems: [Problem]) {
        self.file = file
        self.problems = problems
    }

    public var description: String {
        "\(file): \(problems.count == 1 ? "1 problem" : "\(problems.count) problems")\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }

    public var jobError: JobError { .invalidManifest(problems, file: file) }
}

extension Manifest {
    public static let topLevelFields = ["version", "stage", "name", "seed", "inputs", "data", "model", "training",
                                        "checkpoint", "sampling", "evaluation", "finetune", "learngene", "text", "cretok"]

    /// Parses and validates manifest bytes. `fileName` (e.g. `fm.yaml`) gives the syntax and the
    /// job name; every problem is reported at once, each with its field and fix.
    public static func parse(_ bytes: [UInt8], fileName: String, catalog: StageCatalog = .standard,
                             limits: ConfigNode.Limits = ConfigNode.Limits()) throws(ManifestError) -> Manifest {
        guard let syntax = ConfigNode.syntax(forFileName: fileName) else {
            throw ManifestError(file: fileName, problems: [Problem(
                field: "", message: "`\(fileName)` is not a manifest file name",
                fix: "name manifests <job>.yaml, <job>.yml or <job>.json")])
        }
        let tree: ConfigNode
        do {
            tree = try ConfigNode.parse(bytes, syntax: syntax, limits: limits)
        } catch let e as ConfigNode.ParseError {
            throw ManifestError(file: fileName, problems: [Problem(
                field: "", message: e.message, fix: "correct the \(syntax == .json ? "JSON" : "YAML") syntax (see the line named)", line: e.line)])
        } catch {
            throw ManifestError(file: fileName, problems: [Problem(field: "", message: "\(error)", fix: "correct the file")])
        }
        var reader = ConfigReader()
        let manifest = resolve(tree, jobName: JobName.fromFileName((fileName as NSString).lastPathComponent), catalog: catalog, reader: &reader)
        var problems = reader.problems
        if problems.isEmpty { problems += manifest.crossFieldProblems(catalog: catalog) }
        if !problems.isEmpty { throw ManifestError(file: fileName, problems: problems) }
        return manifest
    }

    /// Reads every field of `tree`, filling defaults (problems go to `reader`).
    static func resolve(_ tree: ConfigNode, jobName: String, catalog: StageCatalog, reader r: inout ConfigReader) -> Manifest {
        let top = r.fields(tree, at: "", known: topLevelFields)

        let version = r.int(top, "version", default: currentVersion, range: 1...Int.max,
                            fix: "this learngene reads manifest version \(currentVersion); write `version: \(currentVersion)` or drop the field")
        if version != currentVersion {
            r.add("version", "manifest version \(version) is not supported (this learngene reads version \(currentVersion))",
                  fix: "write `version: \(currentVersion)`, or run a learngene that knows version \(version)", line: top.values["version"]?.line)
        }

        // Stage.
        var stageName = ""
        if let s = r.string(top, "stage", default: nil) {
            stageName = s
            if catalog[s] == nil {
                let hint = ConfigReader.closest(s, in: catalog.names).map { "did you mean `\($0)`? " } ?? ""
                r.add("stage", "unknown stage `\(s)`", fix: "\(hint)use one of: \(catalog.names.joined(separator: ", "))", line: top.values["stage"]?.line)
            }
        } else if !top.has("stage") {
            r.add("stage", "missing", fix: "add `stage: \(catalog.names.first ?? "pretrain")` (one of: \(catalog.names.joined(separator: ", ")))", line: nil)
        }

        // Name: the file name is the job's identity; a `name:` field must agree with it.
        if let why = JobName.problem(jobName) {
            r.add("name", "the file name gives job name `\(jobName)`, which \(why)",
                  fix: "rename the file to e.g. \(JobName.sanitized(jobName)).yaml", line: nil)
        }
        let name = r.string(top, "name", default: jobName) ?? jobName
        if name != jobName {
            r.add("name", "`\(name)` differs from the file name `\(jobName)`; the file name names the job and its Outbox folder",
                  fix: "rename the file to \(name).yaml, or set `name: \(jobName)` (or drop the field)", line: top.values["name"]?.line)
        }

        var m = Manifest(stage: stageName, name: jobName)
        m.version = version
        m.seed = r.int(top, "seed", default: 0, range: 0...(1 << 53), fix: "use a seed between 0 and 2^53")

        // Inputs.
        if let stage = catalog[stageName] {
            m.inputs = readInputs(top.values["inputs"], stage: stage, jobName: jobName, reader: &r)
        }

        // Data.
        let d = r.fields(top.values["data"], at: "data", known: ["alpha", "bad_images", "max_images", "max_image_pixels", "horizontal_flip"])
        m.data.alpha = r.choice(d, "alpha", default: m.data.alpha, choices: DataSection.alphaRules)
        m.data.badImages = r.choice(d, "bad_images", default: m.data.badImages, choices: DataSection.badImageModes)
        m.data.maxImages = r.int(d, "max_images", default: 0, range: 0...100_000_000, fix: "use 0 (all images) or a positive count")
        m.data.maxImagePixels = r.int(d, "max_image_pixels", default: m.data.maxImagePixels, range: 1...400_000_000,
                                      fix: "use at most 400000000 (a 20000×20000 image); the default 40000000 fits any photo")
        m.data.horizontalFlip = r.bool(d, "horizontal_flip", default: false)

        // Model: the preset's values are the defaults of the individual fields.
        let mf = r.fields(top.values["model"], at: "model", known: ["preset", "input_size", "in_channels", "patch_size", "hidden_size",
                                                                    "depth", "num_heads", "mlp_ratio", "class_dropout_prob", "num_classes",
                                                                    "conditioning"])
        var presetName = r.string(mf, "preset", default: m.model.preset) ?? m.model.preset
        var preset = DiTConfig.preset(presetName)
        if preset == nil {
            let hint = ConfigReader.closest(presetName, in: DiTConfig.presetNames).map { "did you mean `\($0)`? " } ?? ""
            r.add("model.preset", "unknown preset `\(presetName)`", fix: "\(hint)use one of: \(DiTConfig.presetNames.joined(separator: ", "))",
                  line: mf.values["preset"]?.line)
            presetName = m.model.preset
            preset = DiTConfig.preset(presetName)
        }
        let p = preset!
        m.model.preset = presetName
        m.model.inputSize = r.int(mf, "input_size", default: p.inputSize, range: 4...256,
                                  fix: "images are trained in pixel space on the CPU: use 28 or 32 (at most 256)")
        m.model.inChannels = r.int(mf, "in_channels", default: p.inChannels, range: 1...4, fix: "use 1 (gray) or 3 (RGB)")
        m.model.patchSize = r.int(mf, "patch_size", default: p.patchSize, range: 1...64, fix: "use 2, 4 or 8 (must divide input_size)")
        m.model.hiddenSize = r.int(mf, "hidden_size", default: p.hiddenSize, range: 4...4096, fix: "use a multiple of 4 such as 128 or 256")
        m.model.depth = r.int(mf, "depth", default: p.depth, range: 1...64, fix: "use 1…64 blocks (4–12 is typical)")
        m.model.numHeads = r.int(mf, "num_heads", default: p.numHeads, range: 1...256, fix: "use a divisor of hidden_size such as 4")
        m.model.mlpRatio = r.int(mf, "mlp_ratio", default: p.mlpRatio, range: 1...16, fix: "DiT uses 4")
        m.model.classDropoutProb = r.double(mf, "class_dropout_prob", default: Double("\(p.classDropoutProb)") ?? 0.1, range: 0...1,
                                            fix: "use a probability in [0, 1]; DiT uses 0.1 (needed for classifier-free guidance)")
        if let node = mf.values["num_classes"], !mf.isNull(node) {
            if case let .string(s) = node.kind, s == "auto" {
                m.model.numClasses = .auto
            } else if case .string = node.kind {
                r.add("model.num_classes", "must be `auto` or a number", fix: "write `num_classes: auto` (count the class folders) or a number", line: node.line)
            } else {
                m.model.numClasses = .fixed(r.int(mf, "num_classes", default: 10, range: 1...100_000,
                                                  fix: "use `auto` or a class count between 1 and 100000"))
            }
        }

        m.model.conditioning = r.choice(mf, "conditioning", default: m.model.conditioning, choices: ModelSection.conditionings)
        m.text = TextSection.read(top.values["text"], reader: &r)
        if top.has("text") && m.model.conditioning != "text" && stageName != "cretok" {
            r.add("text", "captions are only used by text-conditioned models",
                  fix: "add `model: {conditioning: text}`, or remove the `text:` section", line: top.values["text"]?.line)
        }

        // Training: the recipe first, since it gives every other field's default.
        let t = r.fields(top.values["training"], at: "training", known: ["recipe", "steps", "batch_size", "learning_rate", "lr_schedule",
                                                                         "warmup_steps", "min_lr_fraction", "weight_decay", "adam_beta1",
                                                                         "adam_beta2", "adam_eps", "ema_schedule", "ema_decay", "ema_power_gamma",
                                                                         "loss_weighting", "min_snr_gamma", "grad_clip", "log_every"])
        let recipe = r.choice(t, "recipe", default: m.training.recipe, choices: TrainingSection.recipes)
        let rd = TrainingSection.defaults(recipe: recipe)
        m.training.recipe = recipe
        m.training.steps = r.int(t, "steps", default: m.training.steps, range: 1...10_000_000,
                                 fix: "use a positive number of optimizer steps (at most 10000000), e.g. 2000")
        m.training.batchSize = r.int(t, "batch_size", default: m.training.batchSize, range: 1...4096, fix: "use 1…4096 images per step, e.g. 32")
        m.training.learningRate = r.double(t, "learning_rate", default: rd.learningRate, range: 0...1, openLower: true,
                                           fix: "use a positive learning rate ≤ 1; DiT uses 0.0001, the cpu recipe 0.002")
        m.training.lrSchedule = LearningRateSchedule(rawValue: r.choice(t, "lr_schedule", default: rd.lrSchedule.rawValue,
                                                                        choices: LearningRateSchedule.allCases.map(\.rawValue)))!
        // The cpu recipe warms up over 100 steps, or a tenth of a shorter run.
        m.training.warmupSteps = r.int(t, "warmup_steps", default: min(rd.warmupSteps, m.training.steps / 10), range: 0...10_000_000,
                                       fix: "use 0 (no warmup) or a step count, e.g. 100")
        m.training.minLRFraction = r.double(t, "min_lr_fraction", default: rd.minLRFraction, range: 0...1,
                                            fix: "use a fraction of the learning rate in [0, 1] for the end of the decay, e.g. 0.1")
        m.training.weightDecay = r.double(t, "weight_decay", default: rd.weightDecay, range: 0...1, fix: "use 0…1; DiT uses 0")
        m.training.adamBeta1 = r.double(t, "adam_beta1", default: rd.adamBeta1, range: 0...0.999999, fix: "use a value in [0, 1), e.g. 0.9")
        m.training.adamBeta2 = r.double(t, "adam_beta2", default: rd.adamBeta2, range: 0...0.999999999, fix: "use a value in [0, 1), e.g. 0.999")
        m.training.adamEps = r.double(t, "adam_eps", default: rd.adamEps, range: 0...1, openLower: true, fix: "use a small positive value, e.g. 1e-8")
        m.training.emaSchedule = EMASchedule(rawValue: r.choice(t, "ema_schedule", default: rd.emaSchedule.rawValue,
                                                                choices: EMASchedule.allCases.map(\.rawValue)))!
        m.training.emaDecay = r.double(t, "ema_decay", default: rd.emaDecay, range: 0...1,
                                       fix: "use a value in [0, 1]; DiT uses 0.9999, the cpu recipe warms up to 0.999")
        m.training.emaPowerGamma = r.double(t, "ema_power_gamma", default: rd.emaPowerGamma, range: 0...1000, openLower: true,
                                            fix: "use a positive γ; Karras et al. use 6.94 (σ_rel 0.10) or 16.97 (σ_rel 0.05)")
        m.training.lossWeighting = LossWeighting(rawValue: r.choice(t, "loss_weighting", default: rd.lossWeighting.rawValue,
                                                                    choices: LossWeighting.allCases.map(\.rawValue)))!
        m.training.minSNRGamma = r.double(t, "min_snr_gamma", default: rd.minSNRGamma, range: 0...1e6, openLower: true,
                                          fix: "use a positive γ; Hang et al. use 5")
        m.training.gradClip = r.double(t, "grad_clip", default: rd.gradClip, range: 0...1e6,
                                       fix: "use 0 (no clipping) or a positive norm, e.g. 1")
        m.training.logEvery = r.int(t, "log_every", default: m.training.logEvery, range: 1...1_000_000, fix: "use a positive step count, e.g. 10")

        // Checkpoints.
        let c = r.fields(top.values["checkpoint"], at: "checkpoint", known: ["every", "keep"])
        m.checkpoint.every = r.int(c, "every", default: m.checkpoint.every, range: 1...10_000_000,
                                   fix: "use a positive step count, e.g. 200 (a checkpoint is also written on shutdown and at the end)")
        m.checkpoint.keep = r.int(c, "keep", default: m.checkpoint.keep, range: 1...1000, fix: "keep at least 1 checkpoint, e.g. 2")

        // Sampling.
        let s = r.fields(top.values["sampling"], at: "sampling", known: ["sampler", "steps", "cfg_scale", "eta", "guidance_mode", "count", "grid_columns", "use_ema", "seed"])
        m.sampling.sampler = r.choice(s, "sampler", default: m.sampling.sampler, choices: SamplingSection.samplers)
        m.sampling.steps = r.int(s, "steps", default: m.sampling.steps, range: 1...1000,
                                 fix: "use 1…1000 respaced steps (the diffusion has 1000), e.g. 50")
        m.sampling.cfgScale = r.double(s, "cfg_scale", default: m.sampling.cfgScale, range: 0...50, fix: "use 1 (no guidance) to ~10, e.g. 2")
        m.sampling.eta = r.double(s, "eta", default: 0, range: 0...1, fix: "use a value in [0, 1]; 0 makes DDIM deterministic")
        m.sampling.guidanceMode = r.choice(s, "guidance_mode", default: m.sampling.guidanceMode, choices: SamplingSection.guidanceModes)
        m.sampling.count = r.int(s, "count", default: m.sampling.count, range: 0...100_000, fix: "use 0…100000 images, e.g. 100")
        m.sampling.gridColumns = r.int(s, "grid_columns", default: m.sampling.gridColumns, range: 1...256, fix: "use 1…256, e.g. 10")
        m.sampling.useEma = r.bool(s, "use_ema", default: true)
        m.sampling.seed = r.int(s, "seed", default: m.seed, range: 0...(1 << 53), fix: "use a seed between 0 and 2^53 (defaults to the job's seed)")

        // Evaluation.
        let e = r.fields(top.values["evaluation"], at: "evaluation", known: ["metrics", "samples", "reference_images", "input_size", "model_file", "reference_statistics", "every", "every_samples"])
        var metrics: [String] = []
        for (i, name) in r.strings(e, "metrics", default: EvaluationSection.defaults).enumerated() {
            if let expanded = EvaluationSection.aliases[name] {
                metrics += expanded.filter { !metrics.contains($0) }
            } else if EvaluationSection.available.contains(name) {
                if !metrics.contains(name) { metrics.append(name) }
            } else {
                let hint = ConfigReader.closest(name, in: EvaluationSection.available + EvaluationSection.aliases.keys.sorted()).map { "did you mean `\($0)`? " } ?? ""
                r.add("evaluation.metrics[\(i)]", "unknown metric `\(name)`",
                      fix: "\(hint)use any of: \((EvaluationSection.available + EvaluationSection.aliases.keys.sorted()).joined(separator: ", ")) (or `[]` for none)",
                      line: e.values["metrics"]?.line)
            }
        }
        m.evaluation.metrics = metrics
        m.evaluation.samples = r.int(e, "samples", default: m.evaluation.samples, range: 0...100_000,
                                     fix: "use 0 (no metrics) to 100000 generated images; 1000 is a fair CPU budget (FD needs hundreds at least)")
        m.evaluation.referenceImages = r.int(e, "reference_images", default: m.evaluation.referenceImages, range: 0...1_000_000,
                                             fix: "use 0 (every dataset image) or a positive count, e.g. 2000")
        m.evaluation.inputSize = r.int(e, "input_size", default: m.evaluation.inputSize, range: 32...512,
                                       fix: "use 32…512 pixels; 112 (the default) or 224 (the network's native size)")
        m.evaluation.modelFile = modelFileName(e, "evaluation", reader: &r)
        m.evaluation.referenceStatistics = referenceStatisticsPath(e, metrics: metrics, reader: &r)
        m.evaluation.every = r.int(e, "every", default: 0, range: 0...10_000_000,
                                   fix: "use 0 (evaluate only at the end) or a step interval, e.g. 500")
        m.evaluation.everySamples = r.int(e, "every_samples", default: m.evaluation.everySamples, range: 10...10_000,
                                          fix: "use 10…10000 images per evaluation during training; 100 is a fair CPU budget")
        let ft = r.fields(top.values["finetune"], at: "finetune", known: ["model_file"])
        m.finetune.modelFile = modelFileName(ft, "finetune", reader: &r)
        m.learngene = LearngeneSection.read(top.values["learngene"], reader: &r)
        m.cretok = CreTokSection.read(top.values["cretok"], reader: &r)
        if top.has("cretok") && stageName != "cretok" {
            r.add("cretok", "the `cretok:` section is only read by `stage: cretok`",
                  fix: "remove it, or set `stage: cretok`", line: top.values["cretok"]?.line)
        }
        return m
    }

    /// A `model_file` field: `auto` or a `.safetensors` file name inside the input job's folder.
    /// `evaluation.reference_statistics`: an `.npz` path under the root, for `fid_inception_v3`.
    /// Its contents (mu and sigma of 2048-d pool_3 features) are checked when the job runs.
    static func referenceStatisticsPath(_ f: ConfigReader.Fields, metrics: [String], reader r: inout ConfigReader) -> String? {
        guard let path = r.string(f, "reference_statistics", default: nil) else { return nil }
        let field = "evaluation.reference_statistics", line = f.values["reference_statistics"]?.line
        if path.isEmpty || path.hasPrefix("/") || path.split(separator: "/").contains("..") || !path.hasSuffix(".npz") {
            r.add(field, "`\(path)` is not an .npz path inside the root",
                  fix: "write the path from the root folder down, e.g. `Inbox/stats/fashion-mnist-train.npz` (numpy.savez with `mu` and `sigma`; no `..`, not absolute)", line: line)
        } else if !metrics.contains("fid_inception_v3") {
            r.add(field, "is given but `fid_inception_v3`, the metric that uses it, is not among evaluation.metrics",
                  fix: "add `fid_inception_v3` to evaluation.metrics, or remove reference_statistics", line: line)
        }
        return path
    }

    static func modelFileName(_ f: ConfigReader.Fields, _ section: String, reader r: inout ConfigReader) -> String {
        let name = r.string(f, "model_file", default: "auto") ?? "auto"
        if name != "auto" && (name.contains("/") || !name.hasSuffix(".safetensors") || name.hasPrefix(".")) {
            r.add("\(section).model_file", "`\(name)` is not a weights file name inside the input job's folder",
                  fix: "write `auto`, or a file name such as `model.safetensors`, `ema.safetensors` or `depth-2.safetensors` (no folders)",
                  line: f.values["model_file"]?.line)
        }
        return name
    }

    static func readInputs(_ node: ConfigNode?, stage: StageDescription, jobName: String, reader r: inout ConfigReader) -> [String: InputSource] {
        let f = r.fields(node, at: "inputs", known: stage.inputs.map(\.name))
        var out: [String: InputSource] = [:]
        for role in stage.inputs {
            let field = "inputs.\(role.name)"
            guard let n = f.values[role.name], !f.isNull(n) else {
                if role.required {
                    let example = role.shorthandKind == "dataset" ? "\(role.name): <dataset name>" : "\(role.name): {job: <job name>}"
                    r.add(field, "missing (stage \(stage.name) needs \(role.help))", fix: "add `inputs:` with `\(example)`", line: f.line)
                }
                continue
            }
            var kind = role.shorthandKind
            var value: String?
            var valueLine = n.line
            switch n.kind {
            case let .string(s): value = s
            case let .map(pairs):
                if pairs.count == 1, InputSource.kinds.contains(pairs[0].key) {
                    kind = pairs[0].key
                    valueLine = pairs[0].value.line ?? n.line
                    if case let .string(s) = pairs[0].value.kind { value = s } else {
                        r.add("\(field).\(kind)", "must be text, got \(pairs[0].value.typeName)", fix: "write the \(kind) as text", line: valueLine)
                        continue
                    }
                } else {
                    r.add(field, "must have exactly one of `dataset:`, `path:` or `job:`, got \(pairs.map { "`\($0.key)`" }.joined(separator: ", "))",
                          fix: "write e.g. `\(role.name): {dataset: fashion-mnist}` or `\(role.name): {job: other-job}`", line: n.line)
                    continue
                }
            default:
                r.add(field, "must be a name or a mapping, got \(n.typeName)", fix: "write e.g. `\(role.name): fashion-mnist`", line: n.line)
                continue
            }
            guard let v = value else { continue }
            switch kind {
            case "dataset":
                if let why = JobName.problem(v) {
                    r.add(field, "dataset name `\(v)` \(why)",
                          fix: "name a folder directly inside Inbox/datasets/ (use `{path: ...}` for a folder elsewhere under the root)", line: valueLine)
                } else {
                    out[role.name] = .dataset(v)
                }
            case "job":
                if let why = JobName.problem(v) {
                    r.add(field, "job name `\(v)` \(why)", fix: "name an earlier job by its manifest's file name without extension", line: valueLine)
                } else if v == jobName {
                    r.add(field, "the job names itself as its input", fix: "name an earlier job's output, or a dataset", line: valueLine)
                } else {
                    out[role.name] = .job(v)
                }
            default:  // path
                if v.isEmpty {
                    r.add(field, "the path is empty", fix: "name a folder under the root, e.g. `{path: Inbox/datasets/x}`", line: valueLine)
                } else if v.split(separator: "/").contains("..") {
                    r.add(field, "path `\(v)` contains `..`", fix: "write the path from the root folder down, without `..` (inputs must stay inside the root)", line: valueLine)
                } else {
                    out[role.name] = .path(v)
                }
            }
        }
        return out
    }
}

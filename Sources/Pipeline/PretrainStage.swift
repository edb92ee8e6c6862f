import Datasets
import DiT
import Formats
import Foundation
import Images
import Tensors

/// `stage: pretrain`: trains a class-conditional DiT on an ImageFolder dataset with DiT's
/// recipe (AdamW, EMA, 10% label dropout), then samples from it.
///
/// Outputs: `model.safetensors` and `ema.safetensors` (DiT `state_dict` keys), `samples.png`
/// (a grid), `samples.npz` (uint8 NHWC `arr_0`), `metrics.json`.
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

        // Samples: labels cycle through the classes, so a grid with one column per class reads by column.
        var sampleSeconds = 0.0
        if m.sampling.count > 0 {
            ctx.progress.setPhase("sampling \(m.sampling.count) images (\(m.sampling.sampler), \(m.sampling.steps) steps)")
            let t0 = Date()
            let model = trainer.inferenceModel(ema: m.sampling.useEma)
            let sampleLabels = (0..<m.sampling.count).map { $0 % numClasses }
            let settings = SamplingSettings(steps: m.sampling.steps, sampler: m.sampling.sampler, eta: Float(m.sampling.eta),
                                            guidance: Float(m.sampling.cfgScale), guidanceMode: m.sampling.guidanceMode)
            let x = try model.sample(labels: sampleLabels, settings: settings, seed: UInt64(m.sampling.seed))
            sampleSeconds = Date().timeIntervalSince(t0)
            let S = config.inputSize, C = config.inChannels
            let nhwc = SampleImages.uint8NHWC(x)
            let npz = NumpyArchive.archive([NumpyArchive.Array(name: "arr_0", shape: [m.sampling.count, S, S, C], bytes: nhwc)])
            try FileOps.writeDurably(npz, to: ctx.outputDirectory + "/samples.npz")
            let grid = SampleImages.grid(nhwc: nhwc, count: m.sampling.count, height: S, width: S, channels: C, columns: m.sampling.gridColumns)
            do {
                try FileOps.writeDurably(try ImageCodec.encodePNG(grid), to: ctx.outputDirectory + "/samples.png")
            } catch {
                throw JobError(what: "cannot write the sample grid: \(error)", where: "samples.png", fix: "check free space in Outbox/")
            }
        }

        // Metrics.
        let losses = state.lossCurve.map(\.loss)
        let tail = Array(losses.suffix(max(1, losses.count / 10)))
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
            ("images_per_second", .double(Self.round(state.trainSeconds > 0 ? Double(state.imagesSeen) / state.trainSeconds : 0))),
            ("sampling_seconds", .double(Self.round(sampleSeconds))),
            ("wall_seconds", .double(Self.round(wallBefore + Date().timeIntervalSince(wallStart)))),
            ("peak_memory_bytes", .int(Self.peakMemoryBytes())),
            ("starts", .int(ctx.attempt)),
            ("dataset", .object([("images", .int(images.count)), ("classes", .array(images.classes.map { .string($0) }))])),
            ("sampling", .object([("count", .int(m.sampling.count)), ("sampler", .string(m.sampling.sampler)), ("steps", .int(m.sampling.steps)),
                                  ("cfg_scale", .double(m.sampling.cfgScale)), ("weights", .string(m.sampling.useEma ? "ema" : "raw")),
                                  ("seed", .int(m.sampling.seed)), ("checkpoint_step", .int(trainer.step))])),
        ])
        try FileOps.writeDurably(metrics.pretty, to: ctx.outputDirectory + "/metrics.json")
        let final = losses.last.map { String(format: "%.4f", $0) } ?? "?"
        return .completed(StageResult(manifest: resolved, summary: "trained \(trainer.step) steps, final loss \(final)"))
    }

    /// Reads the dataset under the manifest's rules; bad images fail the job or are skipped
    /// (and listed) as `data.bad_images` says.
    func loadImages(_ ctx: JobContext) throws -> ImageSet {
        let m = ctx.manifest
        guard let dir = ctx.inputs["dataset"] else {
            throw JobError(what: "no dataset input", where: "inputs.dataset", fix: "add `inputs: {dataset: <name>}`")
        }
        let shown = ctx.layout.relative(dir)
        if let (link, target) = RootPaths.firstEscapingLink(in: dir, root: ctx.layout.root) {
            throw JobError(what: "\(ctx.layout.relative(link)) is a symbolic link to \(target), outside the root folder",
                           where: "inputs.dataset (\(shown))", fix: "copy the files into the dataset folder instead of linking to them")
        }
        let folder: ImageFolder
        do {
            folder = try ImageFolder(root: dir, channels: m.model.inChannels, resolution: m.model.inputSize,
                                     limits: ImageLimits(maxPixels: m.data.maxImagePixels),
                                     alpha: m.data.alpha == "drop" ? .drop : .compositeOverWhite)
        } catch {
            throw JobError(what: "the dataset cannot be read: \(error.description)", where: "inputs.dataset (\(shown))",
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
            throw JobError(what: "no readable images in the dataset", where: "inputs.dataset (\(shown))", fix: "add PNG or JPEG images under \(shown)/<class>/")
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

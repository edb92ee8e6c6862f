import Datasets
import DiT
import Formats
import Foundation
import Learngene
import Tensors

/// What `TrainingLoop` drives: a trainer with a step counter, one optimizer step per batch,
/// and a whole-state checkpoint (`DiTTrainer`, `LearngeneTrainer`).
protocol LoopTrainer: AnyObject {
    var step: Int { get }
    /// One step; the loss and any extra numbers for the progress line.
    func trainOneStep(images: UnsafePointer<Float>, labels: [Int]) -> (loss: Double, extra: [(String, JSONValue)])
    func checkpointFile() -> SafeTensors.File
    func restoreFile(_ file: SafeTensors.File) throws
}

extension DiTTrainer: LoopTrainer {
    func trainOneStep(images: UnsafePointer<Float>, labels: [Int]) -> (loss: Double, extra: [(String, JSONValue)]) {
        let s = trainStep(images: images, labels: labels)
        return (Double(s.loss), [("mse", .double(Double(s.mse))), ("vb", .double(Double(s.vb)))])
    }
    func checkpointFile() -> SafeTensors.File { checkpoint() }
    func restoreFile(_ file: SafeTensors.File) throws { try restore(from: file) }
}

extension LearngeneTrainer: LoopTrainer {
    func trainOneStep(images: UnsafePointer<Float>, labels: [Int]) -> (loss: Double, extra: [(String, JSONValue)]) {
        let s = trainStep(images: images, labels: labels)
        var extra: [(String, JSONValue)] = [("mse", .double(Double(s.mse))), ("vb", .double(Double(s.vb)))]
        if let d = s.distill { extra.append(("distill", .double(Double(d)))) }
        return (Double(s.loss), extra)
    }
    func checkpointFile() -> SafeTensors.File { checkpoint() }
    func restoreFile(_ file: SafeTensors.File) throws { try restore(from: file) }
}

/// The training loop every stage shares: seeded batches, one step per batch, a loss curve of
/// `log_every`-step means, progress lines, a checkpoint every `checkpoint.every` steps, on a
/// stop request and at the end, and bit-exact resumption from the newest checkpoint.
///
/// A stage that trains several models one after another (e.g. `init`, one per size) runs one
/// loop per `segment`; checkpoints are numbered `segment · stride + step` so they never
/// collide, and a loop only resumes a checkpoint of its own segment.
struct TrainingLoop {
    /// The loop's part of a checkpoint (the trainer's part is in the tensors file).
    struct State: Codable, Sendable {
        var segment = 0
        var batches: BatchPosition
        /// Mean loss per `log_every` window: (step at the window's end, mean).
        var lossCurve: [LossPoint] = []
        var windowSum = 0.0
        var windowCount = 0
        /// Training seconds (inside steps) across all the processes that worked on it.
        var trainSeconds = 0.0
        /// Wall seconds of the earlier processes, up to their last checkpoint.
        var wallSeconds = 0.0
        var imagesSeen = 0
        /// `ImageSet.contentKey` of the data trained on (nil in checkpoints from before it was
        /// recorded): a dataset edited between a kill and the restart is noticed.
        var dataKey: String?
        /// Training seconds of the current window (for its images/s).
        var windowSeconds: Double?
        /// `evaluation.every` results, one point per evaluation (nil: none yet).
        var metricCurve: [MetricPoint]?
    }

    /// One `log_every` window. `lr`, `imagesPerSecond` and `time` are nil in checkpoints
    /// written before they were recorded.
    struct LossPoint: Codable, Sendable, Equatable {
        var step: Int
        var loss: Double
        /// The learning rate of the window's last step.
        var lr: Double?
        var imagesPerSecond: Double?
        /// Unix time at the window's end (TensorBoard's wall time).
        var time: Double?
    }

    /// An evaluation during training: metric name → value after `step` steps, at
    /// `trainSeconds` of training. Deterministic (fixed seeds, the EMA weights of that step),
    /// so a resumed job recomputes the same numbers.
    struct MetricPoint: Codable, Sendable, Equatable {
        var step: Int
        var trainSeconds: Double
        var time: Double
        var values: [String: Double]
    }

    enum Outcome {
        /// Training is complete; `wallSeconds` is the wall time of earlier processes only.
        case finished(State)
        case stopped(step: Int)
    }

    /// Checkpoint numbers of segment k start at k · stride.
    static let stride = 100_000_000

    let ctx: JobContext
    let images: ImageSet
    var segment = 0
    var totalSteps: Int
    var batchSize: Int
    /// Seeds the data order (with `segment`), so each segment sees its own shuffle.
    var dataSeed: UInt64
    /// Shown in the progress phase ("training", "initializing depth 6").
    var label = "training"
    /// Measures the model after a step (`evaluation.every`); nil: no evaluation during training.
    /// Throws `JobEvaluation.Stopped` when a stop was requested while it ran.
    var evaluate: ((Int) throws -> [String: Double])?

    init(ctx: JobContext, images: ImageSet, segment: Int = 0, label: String = "training") {
        self.ctx = ctx
        self.images = images
        self.segment = segment
        self.label = label
        totalSteps = ctx.manifest.training.steps
        batchSize = ctx.manifest.training.batchSize
        dataSeed = UInt64(ctx.manifest.seed)
    }

    /// Whether a complete checkpoint of a later segment exists (this segment is done).
    func laterSegmentCheckpointed() -> Bool {
        (ctx.checkpoints.completeSteps().last ?? -1) >= (segment + 1) * Self.stride
    }

    /// Trains `trainer` (fresh, or restored from this segment's newest checkpoint) to
    /// `totalSteps`. `channels`/`size` are the model's input shape.
    func run(_ trainer: LoopTrainer, channels: Int, size: Int) throws -> Outcome {
        let m = ctx.manifest
        let wallStart = Date()
        var warnings: [String] = []
        var state: State
        var batches: ImageBatches
        var wallBefore = 0.0
        let base = segment * Self.stride
        let dataKey = images.contentKey
        if let ckpt = try ctx.checkpoints.latest(State.self, warnings: &warnings), ckpt.state.segment == segment {
            for w in warnings { ctx.log.event("warning", w, level: .warning) }
            if let saved = ckpt.state.dataKey, saved != dataKey {
                throw ResumeRefused(JobError(
                    what: "the training data changed since checkpoint \(ctx.layout.relative(ckpt.directory)) (\(images.count) images, content key \(dataKey); the checkpoint was trained on \(saved)): resuming would mix two datasets",
                    where: "inputs.dataset",
                    fix: "restore the dataset the job started with, or delete \(ctx.layout.relative(ctx.checkpoints.directory)) to start over from step 0 on the new data"))
            }
            do {
                try trainer.restoreFile(ckpt.tensors)
                batches = try ImageBatches(images: images, batchSize: batchSize, resumingFrom: ckpt.state.batches,
                                           horizontalFlip: m.data.horizontalFlip)
            } catch {
                throw JobError(what: "checkpoint \(ctx.layout.relative(ckpt.directory)) does not fit this job: \(error)",
                               where: ctx.layout.relative(ckpt.directory),
                               fix: "restore the dataset and manifest the job started with, or delete \(ctx.layout.relative(ctx.checkpoints.directory)) to start over from step 0")
            }
            guard base + trainer.step == ckpt.step else {
                throw JobError(what: "checkpoint folder says step \(ckpt.step) but its trainer state is at step \(base + trainer.step)",
                               where: ctx.layout.relative(ckpt.directory), fix: "delete that checkpoint folder; the previous one will be used")
            }
            state = ckpt.state
            wallBefore = state.wallSeconds
            ctx.log.event("resume", "resumed \(label) from the checkpoint at step \(trainer.step)", [("step", .int(trainer.step)), ("segment", .int(segment))])
        } else {
            batches = try ImageBatches(images: images, batchSize: batchSize,
                                       stream: RandomStream(seed: dataSeed &+ UInt64(segment) &* 0x9E37_79B9_7F4A_7C15, stream: 0x6461_7461),
                                       horizontalFlip: m.data.horizontalFlip)
            state = State(segment: segment, batches: batches.position, dataKey: dataKey)
        }

        func saveCheckpoint() throws {
            state.batches = batches.position
            state.wallSeconds = wallBefore + Date().timeIntervalSince(wallStart)
            ctx.progress.heartbeat()
            try ctx.checkpoints.save(step: base + trainer.step, tensors: trainer.checkpointFile(), state: state)
            ctx.log.event("checkpoint", "checkpoint at step \(trainer.step)", level: .debug, [("step", .int(trainer.step)), ("segment", .int(segment))])
        }

        let events = LiveEvents(ctx: ctx, label: label)
        /// Runs the evaluation due after this step, unless its point is recorded already
        /// (a resume right after a checkpoint whose evaluation was interrupted runs it here).
        /// False: a stop was requested during it.
        func evaluateIfDue() throws -> Bool {
            let every = m.evaluation.every
            guard let evaluate, every > 0, trainer.step > 0, trainer.step % every == 0 || trainer.step == totalSteps,
                  state.metricCurve?.last?.step != trainer.step else { return true }
            let values: [String: Double]
            do { values = try evaluate(trainer.step) } catch is JobEvaluation.Stopped { return false }
            state.metricCurve = (state.metricCurve ?? []) + [MetricPoint(step: trainer.step, trainSeconds: state.trainSeconds,
                                                                         time: Date().timeIntervalSince1970, values: values)]
            ctx.log.event("evaluation", values.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.4g", $0.value))" }.joined(separator: ", "),
                          [("step", .int(trainer.step))] + values.sorted { $0.key < $1.key }.map { ($0.key, .double($0.value)) })
            events?.metrics(values, step: trainer.step)
            ctx.progress.setPhase(label, step: trainer.step, total: totalSteps)
            return true
        }

        ctx.progress.setPhase(label, step: trainer.step, total: totalSteps)
        let x = Tensor(shape: [batchSize, channels, size, size])
        var labels: [Int] = []
        var lastSaved = trainer.step
        if ctx.shouldStop() { return .stopped(step: trainer.step) }  // asked during data loading
        if try !evaluateIfDue() { return .stopped(step: trainer.step) }
        while trainer.step < totalSteps {
            let t0 = Date()
            batches.next(into: x, labels: &labels)
            let (loss, extra) = trainer.trainOneStep(images: x.data, labels: labels)
            let seconds = Date().timeIntervalSince(t0)
            state.trainSeconds += seconds
            state.windowSeconds = (state.windowSeconds ?? 0) + seconds
            state.imagesSeen += labels.count
            guard loss.isFinite else {
                throw JobError(what: "the loss became \(loss) at step \(trainer.step) of \(label) (training diverged)", where: "training",
                               fix: "lower training.learning_rate (e.g. by 10×) or raise training.batch_size, then drop the manifest in again")
            }
            state.windowSum += loss
            state.windowCount += 1
            if trainer.step % m.training.logEvery == 0 || trainer.step == totalSteps {
                let window = state.windowSeconds ?? 0
                let point = LossPoint(step: trainer.step, loss: state.windowSum / Double(state.windowCount),
                                      lr: m.training.settings.learningRate(afterSteps: trainer.step - 1),
                                      imagesPerSecond: window > 0 ? Double(state.windowCount * batchSize) / window : nil,
                                      time: Date().timeIntervalSince1970)
                state.lossCurve.append(point)
                events?.window(point)
                state.windowSum = 0
                state.windowCount = 0
                state.windowSeconds = 0
            }
            ctx.progress.trainingStep(trainer.step, of: totalSteps, loss: loss, images: labels.count, extra: extra)
            let evaluated = try evaluateIfDue()
            if trainer.step % m.checkpoint.every == 0 || !evaluated {
                try saveCheckpoint()
                lastSaved = trainer.step
            }
            if !evaluated { return .stopped(step: trainer.step) }
            if ctx.shouldStop() {
                if lastSaved != trainer.step { try saveCheckpoint() }
                return .stopped(step: trainer.step)
            }
        }
        if lastSaved != trainer.step || ctx.checkpoints.completeSteps().last != base + trainer.step { try saveCheckpoint() }
        if ctx.shouldStop() { return .stopped(step: trainer.step) }
        // The caller adds its own process's wall time (it started before this loop).
        state.wallSeconds = wallBefore
        return .finished(state)
    }
}

/// The live TensorBoard file of a running job, `.state/claimed/<job>/events/` (a new file per
/// process: after a resume, TensorBoard shows the steps repeated since the checkpoint). The
/// published `Outbox/<job>/events/` file is written afresh from the checkpointed curves
/// (`TrainingEvents`), so it has each step once. Best effort: an unwritable file only logs.
struct LiveEvents {
    let writer: TensorBoardEventWriter
    let prefix: String

    init?(ctx: JobContext, label: String) {
        let dir = (ctx.checkpoints.directory as NSString).deletingLastPathComponent + "/events"
        do { writer = try TensorBoardEventWriter(directory: dir, suffix: "\(getpid())") } catch {
            ctx.log.event("warning", "no live TensorBoard events: \(error)", level: .warning)
            return nil
        }
        prefix = label == "training" ? "" : label.replacingOccurrences(of: " ", with: "_") + "/"
    }

    func window(_ p: TrainingLoop.LossPoint) {
        let t = p.time ?? Date().timeIntervalSince1970
        writer.scalar(prefix + "train/loss", p.loss, step: p.step, wallTime: t)
        if let lr = p.lr { writer.scalar(prefix + "train/learning_rate", lr, step: p.step, wallTime: t) }
        if let r = p.imagesPerSecond { writer.scalar(prefix + "train/images_per_second", r, step: p.step, wallTime: t) }
        writer.flush()
    }

    func metrics(_ values: [String: Double], step: Int) {
        for (k, v) in values.sorted(by: { $0.key < $1.key }) { writer.scalar(prefix + "eval/" + k, v, step: step) }
        writer.flush()
    }
}

extension TrainingLoop.State {
    var losses: [Double] { lossCurve.map(\.loss) }
    var curves: TrainingRecords.Curves { TrainingRecords.Curves(loss: lossCurve, metrics: metricCurve ?? []) }
    var imagesPerSecond: Double { trainSeconds > 0 ? Double(imagesSeen) / trainSeconds : 0 }

    /// metrics.json's `"loss"` member.
    var lossJSON: JSONValue {
        let l = losses
        let tail = Array(l.suffix(max(1, l.count / 10)))
        return .object([("first", l.first.map { .double($0) } ?? .null), ("final", l.last.map { .double($0) } ?? .null),
                        ("min", l.min().map { .double($0) } ?? .null),
                        ("final_10_percent_mean", .double(tail.reduce(0, +) / Double(max(tail.count, 1)))),
                        ("curve", .array(lossCurve.map { .array([.int($0.step), .double($0.loss)]) }))])
    }

    /// metrics.json's `"metric_curves"`: metric name → [[step, value, train_seconds]] (nil
    /// without evaluations during training).
    var metricCurvesJSON: JSONValue? {
        guard let curve = metricCurve, !curve.isEmpty else { return nil }
        let names = Set(curve.flatMap { $0.values.keys }).sorted()
        return .object(names.map { name in
            (name, .array(curve.compactMap { p in p.values[name].map { .array([.int(p.step), .double($0), .double((p.trainSeconds * 10).rounded() / 10)]) } }))
        })
    }
}

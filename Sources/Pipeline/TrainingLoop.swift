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
    }

    struct LossPoint: Codable, Sendable, Equatable {
        var step: Int
        var loss: Double
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

        ctx.progress.setPhase(label, step: trainer.step, total: totalSteps)
        let x = Tensor(shape: [batchSize, channels, size, size])
        var labels: [Int] = []
        var lastSaved = trainer.step
        if ctx.shouldStop() { return .stopped(step: trainer.step) }  // asked during data loading
        while trainer.step < totalSteps {
            let t0 = Date()
            batches.next(into: x, labels: &labels)
            let (loss, extra) = trainer.trainOneStep(images: x.data, labels: labels)
            state.trainSeconds += Date().timeIntervalSince(t0)
            state.imagesSeen += labels.count
            guard loss.isFinite else {
                throw JobError(what: "the loss became \(loss) at step \(trainer.step) of \(label) (training diverged)", where: "training",
                               fix: "lower training.learning_rate (e.g. by 10×) or raise training.batch_size, then drop the manifest in again")
            }
            state.windowSum += loss
            state.windowCount += 1
            if trainer.step % m.training.logEvery == 0 || trainer.step == totalSteps {
                state.lossCurve.append(LossPoint(step: trainer.step, loss: state.windowSum / Double(state.windowCount)))
                state.windowSum = 0
                state.windowCount = 0
            }
            ctx.progress.trainingStep(trainer.step, of: totalSteps, loss: loss, images: labels.count, extra: extra)
            if trainer.step % m.checkpoint.every == 0 {
                try saveCheckpoint()
                lastSaved = trainer.step
            }
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

extension TrainingLoop.State {
    var losses: [Double] { lossCurve.map(\.loss) }
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
}

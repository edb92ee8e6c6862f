import Datasets
import DiT
import Formats
import Foundation
import Metrics
import Tensors

/// `stage: evaluate`: the metrics of any model, or of any image set, against any dataset.
///
/// - `inputs.model: {job: J}`: loads J's weights (`evaluation.model_file`; `auto` takes
///   `ema.safetensors` when `sampling.use_ema`, else `model.safetensors`), with the DiT config
///   stored in the file's metadata (files from elsewhere, e.g. converted DiT checkpoints,
///   use the manifest's `model` section), samples `sampling.count` images for the grid and
///   `evaluation.samples` for the metrics.
/// - `inputs.images: <dataset>`: measures real images instead (e.g. Fashion-MNIST train vs
///   test: the floor any model's numbers should be read against).
///
/// `inputs.dataset` is the reference, read at the evaluated model's resolution and channels
/// (for `images`, both sets at the manifest's `model.input_size` and `in_channels`). Outputs: `metrics.json`, `report.html`, and for a
/// model `samples.png` and `samples.npz`. Nothing is checkpointed: evaluation is
/// deterministic, so a stopped job simply evaluates again.
public struct EvaluateStage: Stage {
    public init() {}

    public var stageDescription: StageDescription { StageCatalog.evaluate }

    public func run(_ ctx: JobContext) throws -> StageOutcome {
        let m = ctx.manifest
        let t0 = Date()
        let pretrain = PretrainStage()
        let referenceName = PretrainStage.inputName(ctx, "dataset")
        let evaluation = JobEvaluation(ctx: ctx)
        let outputs = ModelOutputs(ctx: ctx)
        var facts: [(String, String)] = []
        var timings: [(String, Double)] = []
        let report: MetricsReport
        var classNames: [String] = []
        do {
            if ctx.inputs["images"] != nil {
                ctx.progress.setPhase("loading the images and the reference dataset")
                let images = try pretrain.loadImages(ctx, role: "images")
                let reference = try pretrain.loadImages(ctx, role: "dataset")
                classNames = reference.classes
                let name = PretrainStage.inputName(ctx, "images")
                facts = [("evaluated", "\(name): real images (\(images.count)), read at \(m.model.inputSize) px, \(m.model.inChannels) channel(s)"),
                         ("reference", "\(referenceName): \(reference.count) images, \(reference.classes.count) classes")]
                let t1 = Date()
                report = try evaluation.evaluate(images: images, name: name, reference: reference, referenceName: referenceName)
                timings.append(("evaluation", Date().timeIntervalSince(t1)))
            } else {
                let loaded = try ModelFile.load(ctx, role: "model", name: m.evaluation.modelFile, preferEMA: m.sampling.useEma,
                                                field: "evaluation.model_file",
                                                fallback: { if case .fixed = m.model.numClasses { m.model.ditConfig(numClasses: 0) } else { nil } }())
                let (model, file, step) = (loaded.model, loaded.name, loaded.step)
                model.inferenceOnly = true
                let c = model.config, classes = c.numClasses
                ctx.progress.setPhase("loading the reference dataset")
                let reference = try pretrain.loadImages(ctx, role: "dataset", channels: c.inChannels, resolution: c.inputSize)
                classNames = reference.classes
                facts = [("evaluated", "\(PretrainStage.inputName(ctx, "model"))/\(file) (step \(step.map(String.init) ?? "?"), \(model.layout.count) parameters)"),
                         ("reference", "\(referenceName): \(reference.count) images, \(reference.classes.count) classes, read at the model's \(c.inputSize) px")]
                let sampleSeconds = try outputs.writeSamples(model: model, numClasses: classes)
                timings.append(("samples for the grid", sampleSeconds))
                let record = SamplingRecord(sampler: m.sampling.sampler, steps: m.sampling.steps, guidance: m.sampling.cfgScale,
                                            seed: m.sampling.seed, checkpointStep: step ?? -1,
                                            weights: file.hasPrefix("ema") ? "ema" : "raw")
                let t1 = Date()
                let result = try evaluation.evaluate(model: model, numClasses: classes, reference: reference,
                                                     referenceName: referenceName, sampling: record)
                report = result.report
                timings.append(("sampling for metrics", result.samplingSeconds))
                timings.append(("features and statistics", Date().timeIntervalSince(t1) - result.samplingSeconds))
            }
        } catch is JobEvaluation.Stopped {
            return .stopped(step: 0)
        }
        let metrics: JSONValue = .object([
            ("job", .string(ctx.job)), ("stage", .string("evaluate")), ("config_hash", .string(m.configHash)),
            ("wall_seconds", .double(PretrainStage.round(Date().timeIntervalSince(t0)))),
            ("metrics", ModelOutputs.json(report)),
        ])
        try FileOps.writeDurably(metrics.pretty, to: ctx.outputDirectory + "/metrics.json")
        try outputs.writeReport(manifest: m, metrics: report, facts: facts, timings: timings, classNames: classNames)
        let fd = report.metrics["fd_effnet_lite0"].map { String(format: "FD %.3f", $0.value) } ?? "metrics unavailable"
        return .completed(StageResult(manifest: m, summary: "evaluated against \(referenceName): \(fd)"))
    }
}

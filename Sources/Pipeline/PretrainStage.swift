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

    public func run(_ ctx: JobContext) throws -> StageOutcome {
        try TrainStage(ctx: ctx, stage: "pretrain").run()
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

/// `stage: finetune`: `TrainStage` from `inputs.model`'s weights (or from scratch).
public struct FinetuneStage: Stage {
    public init() {}
    public var stageDescription: StageDescription { StageCatalog.finetune }
    public func run(_ ctx: JobContext) throws -> StageOutcome {
        try TrainStage(ctx: ctx, stage: "finetune").run()
    }
}

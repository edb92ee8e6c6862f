import Datasets
import DiT
import Foundation
import Images
import Metrics
import Tensors

/// The files every stage that ends with a DiT writes after training: samples (`samples.npz`,
/// the `samples.png` grid with one row per class), the metrics, the loss curve picture and
/// `report.html`. One place, so `pretrain`, `finetune` and `evaluate` look the same.
struct ModelOutputs {
    let ctx: JobContext

    /// Samples `sampling.count` images (labels cycle through the classes, seed
    /// `sampling.seed`), writes `samples.npz` (uint8 NHWC `arr_0`, as DiT's `sample_ddp.py`,
    /// and the int64 class labels `arr_1`, as ADM's class-conditional `image_sample.py`)
    /// and `samples.png`: one row per class (up to 32 rows), `sampling.grid_columns` images
    /// each, pixels doubled. With `real` (the dataset, same classes and shape), also
    /// `real-and-samples.png`: per class, real images of the dataset left of its samples.
    /// Returns the sampling seconds (0 when `count` is 0).
    func writeSamples(model: DiTModel, numClasses: Int, real: ImageSet? = nil) throws -> Double {
        let m = ctx.manifest
        guard m.sampling.count > 0 else { return 0 }
        ctx.progress.setPhase("sampling \(m.sampling.count) images (\(m.sampling.sampler), \(m.sampling.steps) steps)")
        let t0 = Date()
        let labels = (0..<m.sampling.count).map { $0 % numClasses }
        let settings = SamplingSettings(steps: m.sampling.steps, sampler: m.sampling.sampler, eta: Float(m.sampling.eta),
                                        guidance: Float(m.sampling.cfgScale), guidanceMode: m.sampling.guidanceMode)
        let c = model.config, S = c.inputSize, C = c.inChannels
        guard var npz = NumpyArchive.Writer(shape: [labels.count, S, S, C]) else {
            throw JobError(what: "sampling.count \(labels.count) images of \(S)×\(S)×\(C) are more than a samples.npz (ZIP32, 4 GiB) can hold",
                           where: "manifest field sampling.count",
                           fix: "sample at most \(NumpyArchive.maxMemberBytes / (S * S * C)) images")
        }
        // Chunk by chunk: the archive holds bytes, and only the images the grid shows stay
        // as floats (not every sample, which for many large images would not fit).
        let grid = Self.gridIndices(labels: labels, numClasses: numClasses, columns: m.sampling.gridColumns)
        let per = C * S * S
        let kept = Tensor(shape: [grid.count, C, S, S])
        var keptAt: [Int: Int] = [:]
        for (k, i) in grid.enumerated() { keptAt[i] = k }
        try model.sample(labels: labels, settings: settings, seed: UInt64(m.sampling.seed)) { start, x in
            npz.append(SampleImages.uint8NHWC(x))
            for j in 0..<x.shape[0] {
                if let k = keptAt[start + j] { (kept.data + k * per).update(from: x.data + j * per, count: per) }
            }
            ctx.progress.heartbeat()
        }
        let seconds = Date().timeIntervalSince(t0)
        try write(npz.finish(appending: [NumpyArchive.Array(name: "arr_1", int64: labels)]), "samples.npz")
        try writePNG(Self.classGrid(kept, labels: grid.map { labels[$0] }, numClasses: numClasses, columns: m.sampling.gridColumns), "samples.png")
        if let real, real.classes.count == numClasses, real.channels == C, real.resolution == S, numClasses <= 32 {
            let perClass = min(5, m.sampling.gridColumns)
            var taken = [Int](repeating: 0, count: numClasses), chosen: [Int] = []
            for i in 0..<real.count where taken[real.labels[i]] < perClass {
                taken[real.labels[i]] += 1
                chosen.append(i)
            }
            let picture = SampleGrid.realBesideGenerated(real: JobEvaluation.tensor(real, chosen), realLabels: chosen.map { real.labels[$0] },
                                                         samples: kept, sampleLabels: grid.map { labels[$0] }, classes: numClasses, perClass: perClass)
            try writePNG(picture, Self.realBesideSamples)
        }
        return seconds
    }

    static let realBesideSamples = "real-and-samples.png"

    /// The samples `classGrid` shows, in order: each shown class's first `columns`.
    static func gridIndices(labels: [Int], numClasses: Int, columns: Int) -> [Int] {
        let rows = min(numClasses, 32)
        var taken = [Int](repeating: 0, count: rows)
        var out: [Int] = []
        for (i, l) in labels.enumerated() where l < rows && taken[l] < columns {
            taken[l] += 1
            out.append(i)
        }
        return out
    }

    /// Rows = classes (in order, at most 32), each holding that class's first `columns` samples.
    static func classGrid(_ x: Tensor, labels: [Int], numClasses: Int, columns: Int) -> Image {
        let rows = min(numClasses, 32)
        let perClass = (0..<rows).map { c in labels.indices.filter { labels[$0] == c }.prefix(columns) }
        let cols = max(1, perClass.map(\.count).max() ?? 1)
        let per = x.count / max(x.shape[0], 1)
        let cells = Tensor(shape: [rows * cols, x.shape[1], x.shape[2], x.shape[3]])
        cells.data.update(repeating: 1, count: cells.count)  // empty cells stay white
        for (r, indices) in perClass.enumerated() {
            for (k, i) in indices.enumerated() { (cells.data + (r * cols + k) * per).update(from: x.data + i * per, count: per) }
        }
        return SampleGrid.render(images: cells, rows: rows, cols: cols, padding: 2, scale: 2)
    }

    /// `loss.png`: the training loss per `log_every` window.
    func writeLossCurve(_ curve: [(step: Int, loss: Double)], title: String = "TRAINING LOSS") throws {
        guard !curve.isEmpty else { return }
        try writePNG(LossCurvePlot.render(steps: curve.map(\.step), values: curve.map(\.loss), title: title), "loss.png")
    }

    /// `report.html`, linking every file present in the output folder.
    /// `plots` (inline SVG) replace `loss.png` on the page; the file stays for scripts.
    /// With `training`, also writes the TensorBoard file `events/` first, so the page links it.
    func writeReport(manifest: Manifest, metrics: MetricsReport?, facts: [(String, String)], timings: [(String, Double)],
                     pictures: [Report.Picture]? = nil, classNames: [String] = [],
                     training: [TrainingRecords.Curves] = [], finalStep: Int = 0) throws {
        let dir = ctx.outputDirectory
        let images = ["samples.png", Self.realBesideSamples, "blends-token.png", "blends-plain.png"]
        do {
            try TrainingRecords.writeEvents(output: dir, curves: training, finalStep: finalStep, metrics: metrics,
                                            pictures: images.filter { FileOps.exists(dir + "/" + $0) }, manifestYAML: manifest.yaml())
        } catch {
            throw JobError(what: "cannot write the TensorBoard events: \(error)", where: ctx.layout.relative(dir + "/events"),
                           fix: "check free space and permissions in Outbox/")
        }
        let plots = training.flatMap { TrainingRecords.plots($0, logEvery: manifest.training.logEvery) }
        let present = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        let shown = pictures ?? ([
            Report.Picture(caption: "samples: one row per class (sampling.seed \(manifest.sampling.seed))", path: "samples.png"),
            Report.Picture(caption: "per class: real images of the dataset (left) beside the samples (right)", path: Self.realBesideSamples),
        ] + (plots.isEmpty ? [Report.Picture(caption: "training loss (mean per \(manifest.training.logEvery) steps; bold: smoothed)", path: "loss.png",
                                             pixelated: false, displayWidth: 720)] : [])).filter { present.contains($0.path) }
        var report = Report(job: ctx.job, stage: manifest.stage, resolvedManifest: manifest.yaml(), metrics: metrics,
                            facts: facts.map { (name: $0.0, value: $0.1) }, pictures: shown,
                            timings: timings.map { (name: $0.0, seconds: $0.1) },
                            files: present + ["report.html", "metrics.json", "manifest.yaml", "log.jsonl"].filter { !present.contains($0) })
        report.classNames = classNames
        report.plots = plots
        try write(Array(report.html().utf8), "report.html")
    }

    /// The `"metrics"` member of metrics.json (the report's own JSON, keys sorted).
    static func json(_ report: MetricsReport) -> JSONValue {
        (try? JSONValue.parse(String(decoding: report.jsonData(), as: UTF8.self))) ?? .null
    }

    func writePNG(_ image: Image, _ name: String) throws {
        let bytes: [UInt8]
        do { bytes = try ImageCodec.encodePNG(image) } catch {
            throw JobError(what: "cannot encode \(name): \(error)", where: name, fix: "report this as a bug")
        }
        try write(bytes, name)
    }

    func write(_ bytes: [UInt8], _ name: String) throws {
        do { try FileOps.writeDurably(bytes, to: ctx.outputDirectory + "/" + name) } catch {
            throw JobError(what: "cannot write \(name): \(error)", where: ctx.layout.relative(ctx.outputDirectory + "/" + name),
                           fix: "check free space and permissions in Outbox/")
        }
    }
}

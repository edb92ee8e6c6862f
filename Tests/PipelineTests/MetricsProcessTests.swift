import Foundation
import Metrics
import Testing
@testable import Pipeline

/// Metrics end to end through the real executable: a quarter-width EfficientNet-Lite0 of
/// random weights (the MetricsTests fixture, a legacy torch file) is converted with
/// `learngene import torch` into the root's models/ folder, exactly where the README's setup
/// puts the real weights; `pretrain` then reports every metric, and `evaluate` measures a
/// model and a set of real images.
@Suite(.serialized) struct MetricsProcessTests {
    static let tinyNetwork = PretrainProcessTests.repo + "/Tests/MetricsTests/Fixtures/effnet/tiny-lite0.pth"
    /// The FID Inception-v3's TorchScript archive at 1/16 width (random weights).
    static let tinyInception = PretrainProcessTests.repo + "/Tests/MetricsTests/Fixtures/inception/tiny-inception.pt"

    static func installTinyNetwork(_ root: TempRoot) throws {
        try FileManager.default.createDirectory(atPath: root.path + "/models", withIntermediateDirectories: true)
        let r = try Learngene.run(["import", "torch", Self.tinyNetwork, "-o", root.path + "/models/efficientnet-lite0.safetensors"], root: root)
        #expect(r.status == 0, "\(r.stderr)")
        let i = try Learngene.run(["import", "torch", Self.tinyInception, "-o", root.path + "/models/inception-v3-fid.safetensors"], root: root)
        #expect(i.status == 0, "\(i.stderr)")
    }

    static let evaluation = "evaluation: {samples: 20, reference_images: 10, input_size: 72, metrics: [all]}"

    @Test func pretrainReportsEveryMetricAndEvaluateMeasuresModelsAndImages() throws {
        let root = TempRoot("metrics")
        try PretrainProcessTests.tinyDataset(root)
        try Self.installTinyNetwork(root)
        root.job("j", PretrainProcessTests.tinyJob(steps: 20, extra: Self.evaluation))
        var r = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(r.status == 0, "\(r.stderr)")
        for f in ["loss.png", "report.html", "samples.png", "metrics.json"] { #expect(root.exists("Outbox/j/\(f)"), "missing \(f)") }
        let report = try #require(root.json("Outbox/j/metrics.json")?["metrics"])
        for name in Manifest.EvaluationSection.available {
            let entry = report["metrics"]?[name]
            #expect(entry?["value"]?.doubleValue.map { $0.isFinite } == true, "\(name): \(String(describing: entry))")
        }
        // The class probes: real held-out accuracy and per-class numbers beside the value.
        for name in ["class_accuracy_effnet_lite0", "class_accuracy_pixels"] {
            let d = report["metrics"]?[name]?["details"]
            #expect(d?["real_accuracy"]?.doubleValue != nil && d?["ratio"]?.doubleValue != nil && d?["class_1"]?.doubleValue != nil, "\(name)")
        }
        let fd = report["metrics"]?["fd_effnet_lite0"]
        #expect(fd?["samples"]?.intValue == 20 && fd?["reference_samples"]?.intValue == 10 && fd?["input_size"]?.intValue == 72)
        #expect(fd?["sampling"]?["checkpoint_step"]?.intValue == 20 && fd?["sampling"]?["weights"]?.stringValue == "ema")
        let html = try #require(root.read("Outbox/j/report.html"))
        #expect(html.contains("fd_effnet_lite0") && html.contains("src=\"samples.png\"") && html.contains("<svg"))
        #expect(html.contains("Recognizability (class_accuracy_pixels)"))
        // The reference statistics were cached, one file per network.
        let cached = try FileManager.default.contentsOfDirectory(atPath: root.path + "/.state/cache").filter { $0.hasPrefix("reference-") }
        #expect(cached.count == 2, "\(cached)")
        // Inception-v3's pool_3 statistics are exported as clean-fid's mu/sigma npz.
        let exported = try FrechetStatistics(npzAt: root.path + "/Outbox/j/reference-stats-inception_v3.npz", expectedDimension: 128)
        #expect(exported.count == 10)
        let fid = report["metrics"]?["fid_inception_v3"]
        #expect(fid?["input_size"]?.intValue == 299 && fid?["reference_samples"]?.intValue == 10)

        // evaluate: the model's samples, and the dataset's own images against themselves (FD ≈ 0).
        // ev-model measures FID against the exported statistics, given as a user's file would be.
        root.job("ev-model", "stage: evaluate\ninputs: {model: {job: j}, dataset: ds}\nsampling: {count: 4, steps: 3}\n"
                 + "evaluation: {samples: 20, reference_images: 10, input_size: 72, metrics: [all], reference_statistics: Outbox/j/reference-stats-inception_v3.npz}\n")
        root.job("ev-images", "stage: evaluate\ninputs: {images: ds, dataset: ds}\nevaluation: {samples: 0, reference_images: 0, input_size: 72, metrics: [all]}\n")
        root.job("j2", PretrainProcessTests.tinyJob(steps: 6, extra: Self.evaluation))
        // Statistics that are not there: that metric says why, the others are measured, the job succeeds.
        root.job("ev-bad", "stage: evaluate\ninputs: {model: {job: j}, dataset: ds}\nsampling: {count: 4, steps: 3}\n"
                 + "evaluation: {samples: 20, reference_images: 10, input_size: 72, metrics: [all], reference_statistics: Inbox/missing.npz}\n")
        r = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(r.status == 0, "\(r.stderr)")
        let model = try #require(root.json("Outbox/ev-model/metrics.json")?["metrics"]?["metrics"])
        // Same weights, sampler and seeds as the pretrain job's evaluation: the same number.
        #expect(model["fd_effnet_lite0"]?["value"]?.doubleValue == fd?["value"]?.doubleValue)
        // The given statistics are the dataset's own, so the FID is the same number; the
        // entry names the file it was measured against.
        // (to 1e-6 relative: Inception's feature passes were once seen to differ at 1e-8)
        let fa = model["fid_inception_v3"]?["value"]?.doubleValue ?? .nan, fb = fid?["value"]?.doubleValue ?? .nan
        #expect(abs(fa - fb) <= 1e-6 * max(abs(fb), 1e-12), "\(fa) vs \(fb)")
        #expect(model["fid_inception_v3"]?["reference"]?.stringValue == "statistics from Outbox/j/reference-stats-inception_v3.npz")
        // j2, a second pretrain job on the same reference images, made no new reference
        // statistics: it paid only for its samples. (ev-model's reference is named differently,
        // and ev-images takes all of the dataset's images: each made one file per network.)
        let after = try FileManager.default.contentsOfDirectory(atPath: root.path + "/.state/cache").filter { $0.hasPrefix("reference-") }
        #expect(Set(cached).isSubset(of: after) && after.count == 6, "\(after)")
        #expect(root.json("Outbox/j2/metrics.json")?["metrics"]?["metrics"]?["fid_inception_v3"]?["value"]?.doubleValue != nil)
        let bad = try #require(root.json("Outbox/ev-bad/metrics.json")?["metrics"])
        #expect(bad["unavailable"]?["fid_inception_v3"]?.stringValue?.contains("Inbox/missing.npz") == true, "\(bad)")
        #expect(bad["metrics"]?["sfid_inception_v3"]?["value"]?.doubleValue != nil)
        #expect(root.exists("Outbox/ev-model/samples.png") && root.exists("Outbox/ev-model/report.html"))
        let images = try #require(root.json("Outbox/ev-images/metrics.json")?["metrics"]?["metrics"])
        #expect(abs(images["fd_effnet_lite0"]?["value"]?.doubleValue ?? 1) < 1e-3)
        #expect(images["precision_effnet_lite0"]?["value"]?.doubleValue == 1)
    }

    @Test func missingWeightsAreNamedAndTheJobSucceeds() throws {
        let root = TempRoot("no-weights")
        try PretrainProcessTests.tinyDataset(root)
        root.job("j", PretrainProcessTests.tinyJob(steps: 5, extra: Self.evaluation))
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(r.status == 0, "\(r.stderr)")
        let report = try #require(root.json("Outbox/j/metrics.json")?["metrics"])
        for name in Manifest.EvaluationSection.available where name != "class_accuracy_pixels" {
            let why = report["unavailable"]?[name]?.stringValue ?? ""
            #expect(why.contains("not found") && why.contains("pip install"), "\(name): \(why)")
        }
        // The pixel probe needs no weights.
        #expect(report["metrics"]?["class_accuracy_pixels"]?["value"]?.doubleValue.map { $0.isFinite } == true)
        #expect(root.read("Outbox/j/report.html")?.contains("not computed") == true)
    }

    @Test func evaluateNeedsExactlyOneThingToMeasure() throws {
        let root = TempRoot("eval-manifest")
        root.dataset("ds")
        root.job("both", "stage: evaluate\ninputs: {model: {job: x}, images: ds, dataset: ds}\n")
        let r = try Learngene.run(["validate", root.path + "/Inbox/jobs/both.yaml"], root: root)
        #expect(r.status != 0 && r.stdout.contains("inputs") && r.stdout.contains("exactly one"), "\(r.stdout)")
    }
}

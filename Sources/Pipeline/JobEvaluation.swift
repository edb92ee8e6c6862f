import Datasets
import DiT
import Foundation
import Images
import Metrics
import Tensors

/// The measuring half of every stage that makes images: generates `evaluation.samples`
/// images, computes the manifest's metrics against a dataset's cached reference statistics,
/// and says by name what could not be computed (no weights installed: the job still succeeds).
///
/// Deterministic: evaluation samples use their own seed (`sampling.seed + 1`, so they never
/// repeat the grid's noise), chunks of a fixed size, and labels cycling through the classes;
/// a resumed job recomputes the same numbers.
struct JobEvaluation {
    let ctx: JobContext
    var settings: Manifest.EvaluationSection { ctx.manifest.evaluation }

    /// Images sampled per chunk (progress and stop checks happen between chunks).
    static let chunk = 100

    /// Thrown when a stop was requested during evaluation: the stage returns `.stopped` and
    /// evaluates again after resuming (nothing of it is checkpointed).
    struct Stopped: Error {}

    /// The network under the daemon's root (`models/`), `$LEARNGENE_EFFNET_WEIGHTS` or the
    /// XDG data folder, or the reason it is missing.
    func network() -> Result<EfficientNetLite0, MetricsError> {
        EfficientNetLite0.loadInstalled(root: ctx.layout.root, inputSize: settings.inputSize)
    }

    /// A seeded subset of `images` of `evaluation.reference_images` (all when 0 or fewer).
    func referenceSubset(_ images: ImageSet) -> [Int] {
        let n = settings.referenceImages
        guard n > 0, n < images.count else { return Array(0..<images.count) }
        var rng = RandomStream(seed: UInt64(ctx.manifest.seed), stream: 0x7265_6673)
        return rng.permutation(images.count).prefix(n).sorted()
    }

    /// The dataset's reference statistics, cached under `.state/cache/` by a key of the
    /// chosen images' pixels, their count and the network's identity.
    func reference(_ images: ImageSet, name: String, network: EfficientNetLite0) throws -> ReferenceStatistics {
        let subset = referenceSubset(images)
        let labels = subset.map { images.labels[$0] }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(subset.count * (images.bytesPerImage + 2))
        for i in subset { bytes += images.pixels[(i * images.bytesPerImage)..<((i + 1) * images.bytesPerImage)] }
        for l in labels { bytes += [UInt8(truncatingIfNeeded: l), UInt8(truncatingIfNeeded: l >> 8)] }
        let fingerprint = ConfigHash.hex(bytes)
        let key = ReferenceStatistics.key(dataset: name, fingerprint: fingerprint, count: subset.count, network: network)
        let dir = ctx.layout.state + "/cache"
        try FileOps.makeDirectories(dir)
        let path = dir + "/reference-\(ConfigHash.hex(Array(key.utf8))).safetensors"
        let start = SystemdNotifier.monotonic()
        return try ReferenceStatistics.cached(at: path, key: key, network: network, labels: labels,
                                              progress: { done, total in ctx.progress.work("reference features of \(name)", done: done, total: total, since: start) }) {
            ctx.progress.setPhase("reference statistics of \(name) (\(subset.count) images)")
            return Self.tensor(images, subset)
        }
    }

    /// Images `indices` of `images` as (N, C, S, S) floats in [-1, 1].
    static func tensor(_ images: ImageSet, _ indices: [Int]) -> Tensor {
        let t = Tensor(shape: [indices.count, images.channels, images.resolution, images.resolution])
        for (k, i) in indices.enumerated() { images.writeFloats(i, flip: false, into: t.data + k * images.bytesPerImage) }
        return t
    }

    /// Samples from `model` and measures them. Returns the report (the network's metrics
    /// unavailable, with the reason, when its weights are missing; `class_accuracy_pixels`
    /// needs no weights) and the seconds spent sampling.
    func evaluate(model: DiTModel, numClasses: Int, reference images: ImageSet, referenceName: String,
                  sampling record: SamplingRecord) throws -> (report: MetricsReport, samplingSeconds: Double) {
        let m = ctx.manifest
        guard settings.samples > 0, !settings.metrics.isEmpty else { return (MetricsReport(), 0) }
        var net: EfficientNetLite0?
        var missing = ""
        switch network() {
        case let .failure(e):
            ctx.log.event("metrics-skipped", "metrics not computed: \(e.what)", level: .warning)
            missing = e.what
        case let .success(n): net = n
        }
        let needsNetwork = settings.metrics.contains { $0 != Self.pixelAccuracy }
        if net == nil && !settings.metrics.contains(Self.pixelAccuracy) { return (selected(.unavailable(missing)), 0) }
        let stats = try net.map { try reference(images, name: referenceName, network: $0) }
        let labels = (0..<settings.samples).map { $0 % numClasses }
        let samplingSettings = SamplingSettings(steps: m.sampling.steps, sampler: m.sampling.sampler, eta: Float(m.sampling.eta),
                                                guidance: Float(m.sampling.cfgScale), guidanceMode: m.sampling.guidanceMode)
        let c = model.config, per = c.inChannels * c.inputSize * c.inputSize
        let samples = Tensor(shape: [labels.count, c.inChannels, c.inputSize, c.inputSize])
        let t0 = Date(), clock = SystemdNotifier.monotonic()
        ctx.progress.setPhase("sampling \(labels.count) images for metrics (\(m.sampling.sampler), \(m.sampling.steps) steps)")
        var start = 0
        while start < labels.count {
            if ctx.shouldStop() { throw Stopped() }
            ctx.progress.work("sampling for metrics", done: start, total: labels.count, since: clock)
            let end = min(labels.count, start + Self.chunk)
            let x = try model.sample(labels: Array(labels[start..<end]), settings: samplingSettings,
                                     seed: UInt64(m.sampling.seed) &+ 1 &+ UInt64(start / Self.chunk) &* 0x9E37_79B9)
            (samples.data + start * per).update(from: x.data, count: x.count)
            start = end
        }
        ctx.progress.work("sampling for metrics", done: labels.count, total: labels.count, since: clock)
        let samplingSeconds = Date().timeIntervalSince(t0)
        if ctx.shouldStop() { throw Stopped() }
        ctx.progress.setPhase("metrics on \(labels.count) samples")
        var report = MetricsReport.unavailable(missing)
        if let net, let stats, needsNetwork {
            let featureClock = SystemdNotifier.monotonic()
            report = Evaluation.evaluate(samples: samples, reference: stats, referenceName: referenceName, network: net, sampling: record,
                                         sampleLabels: labels, classes: images.classes.count,
                                         progress: { done, total in ctx.progress.work("sample features", done: done, total: total, since: featureClock) })
        }
        report.seconds["sampling"] = samplingSeconds
        pixelAccuracy(into: &report, reference: images, referenceName: referenceName, samples: samples, labels: labels, sampling: record)
        return (selected(report), samplingSeconds)
    }

    /// `class_accuracy_pixels`: the same probe as `class_accuracy_<network>` on raw pixels
    /// ([−1, 1], C·H·W values), which needs no weights. On 28-px gray data a pixel probe is
    /// about as accurate on real images as one on ImageNet features, and less thrown by the
    /// fine speckle of undertrained samples, so the two together tell shape from texture.
    static let pixelAccuracy = "class_accuracy_pixels"

    func pixelAccuracy(into report: inout MetricsReport, reference images: ImageSet, referenceName: String, samples: Tensor,
                       labels: [Int], sampling record: SamplingRecord?) {
        guard settings.metrics.contains(Self.pixelAccuracy) else { return }
        report.unavailable[Self.pixelAccuracy] = nil
        let subset = referenceSubset(images)
        let ref = Self.tensor(images, subset)
        let d = images.bytesPerImage
        guard samples.count / max(1, samples.shape[0]) == d else {
            report.unavailable[Self.pixelAccuracy] = "the samples are \(samples.shape.dropFirst().map(String.init).joined(separator: "×")), the reference images \(images.channels)×\(images.resolution)²"
            return
        }
        do {
            let a = try ClassAccuracy.measure(reference: Features(count: subset.count, dimension: d, values: Array(UnsafeBufferPointer(start: ref.data, count: ref.count))),
                                              referenceLabels: subset.map { images.labels[$0] },
                                              samples: Features(count: labels.count, dimension: d, values: Array(UnsafeBufferPointer(start: samples.data, count: samples.count))),
                                              sampleLabels: labels, classes: images.classes.count)
            report.metrics[Self.pixelAccuracy] = MetricEntry(
                value: a.samples,
                definition: "accuracy of a ridge classifier on raw pixels, fitted on 80% of the reference and judged against each sample's conditioning class; details: its accuracy on the held-out 20% of real images (real_accuracy), samples/real (ratio), per class (class_k, real_class_k)",
                samples: labels.count, referenceSamples: subset.count, reference: referenceName, inputSize: images.resolution,
                sampling: record, details: a.details)
        } catch {
            report.unavailable[Self.pixelAccuracy] = "\(error)"
        }
    }

    /// Measures real images against the reference (the `evaluate` stage with `inputs.images`).
    func evaluate(images: ImageSet, name: String, reference: ImageSet, referenceName: String) throws -> MetricsReport {
        guard !settings.metrics.isEmpty else { return MetricsReport() }
        let n = settings.samples > 0 ? min(settings.samples, images.count) : images.count
        var rng = RandomStream(seed: UInt64(ctx.manifest.seed), stream: 0x696D_6773)
        let subset = n < images.count ? rng.permutation(images.count).prefix(n).sorted() : Array(0..<images.count)
        let sameClasses = images.classes == reference.classes
        let labels = sameClasses ? subset.map { images.labels[$0] } : nil
        let x = Self.tensor(images, subset)
        var report: MetricsReport
        switch network() {
        case let .failure(e): report = .unavailable(e.what)
        case let .success(net):
            let stats = try self.reference(reference, name: referenceName, network: net)
            ctx.progress.setPhase("metrics on \(subset.count) images of \(name)")
            report = Evaluation.evaluate(samples: x, reference: stats, referenceName: referenceName, network: net, sampling: nil,
                                         sampleLabels: labels, classes: sameClasses ? reference.classes.count : nil)
        }
        if let labels {
            pixelAccuracy(into: &report, reference: reference, referenceName: referenceName, samples: x, labels: labels, sampling: nil)
        } else if settings.metrics.contains(Self.pixelAccuracy) {
            report.unavailable[Self.pixelAccuracy] = "the evaluated images' classes differ from the reference's"
        }
        return selected(report)
    }

    /// Keeps only the metrics the manifest asked for.
    func selected(_ report: MetricsReport) -> MetricsReport {
        var r = report
        r.metrics = r.metrics.filter { settings.metrics.contains($0.key) }
        r.unavailable = r.unavailable.filter { settings.metrics.contains($0.key) }
        return r
    }
}

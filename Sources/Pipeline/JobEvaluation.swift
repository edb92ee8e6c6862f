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
        var bytes: [UInt8] = []
        bytes.reserveCapacity(subset.count * images.bytesPerImage)
        for i in subset { bytes += images.pixels[(i * images.bytesPerImage)..<((i + 1) * images.bytesPerImage)] }
        let fingerprint = ConfigHash.hex(bytes)
        let key = ReferenceStatistics.key(dataset: name, fingerprint: fingerprint, count: subset.count, network: network)
        let dir = ctx.layout.state + "/cache"
        try FileOps.makeDirectories(dir)
        let path = dir + "/reference-\(ConfigHash.hex(Array(key.utf8))).safetensors"
        return try ReferenceStatistics.cached(at: path, key: key, network: network) {
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

    /// Samples from `model` and measures them. Returns the report (every metric unavailable,
    /// with the reason, when the network is missing) and the seconds spent sampling.
    func evaluate(model: DiTModel, numClasses: Int, reference images: ImageSet, referenceName: String,
                  sampling record: SamplingRecord) throws -> (report: MetricsReport, samplingSeconds: Double) {
        let m = ctx.manifest
        guard settings.samples > 0, !settings.metrics.isEmpty else { return (MetricsReport(), 0) }
        let net: EfficientNetLite0
        switch network() {
        case let .failure(e):
            ctx.log.event("metrics-skipped", "metrics not computed: \(e.what)", level: .warning)
            return (selected(.unavailable(e.what)), 0)
        case let .success(n): net = n
        }
        let stats = try reference(images, name: referenceName, network: net)
        let labels = (0..<settings.samples).map { $0 % numClasses }
        let samplingSettings = SamplingSettings(steps: m.sampling.steps, sampler: m.sampling.sampler, eta: Float(m.sampling.eta),
                                                guidance: Float(m.sampling.cfgScale), guidanceMode: m.sampling.guidanceMode)
        let c = model.config, per = c.inChannels * c.inputSize * c.inputSize
        let samples = Tensor(shape: [labels.count, c.inChannels, c.inputSize, c.inputSize])
        let t0 = Date()
        var start = 0
        while start < labels.count {
            if ctx.shouldStop() { throw Stopped() }
            ctx.progress.setPhase("sampling for metrics: \(start)/\(labels.count) images")
            let end = min(labels.count, start + Self.chunk)
            let x = try model.sample(labels: Array(labels[start..<end]), settings: samplingSettings,
                                     seed: UInt64(m.sampling.seed) &+ 1 &+ UInt64(start / Self.chunk) &* 0x9E37_79B9)
            (samples.data + start * per).update(from: x.data, count: x.count)
            start = end
        }
        let samplingSeconds = Date().timeIntervalSince(t0)
        if ctx.shouldStop() { throw Stopped() }
        ctx.progress.setPhase("metrics on \(labels.count) samples")
        var report = Evaluation.evaluate(samples: samples, reference: stats, referenceName: referenceName, network: net, sampling: record)
        report.seconds["sampling"] = samplingSeconds
        return (selected(report), samplingSeconds)
    }

    /// Measures real images against the reference (the `evaluate` stage with `inputs.images`).
    func evaluate(images: ImageSet, name: String, reference: ImageSet, referenceName: String) throws -> MetricsReport {
        guard !settings.metrics.isEmpty else { return MetricsReport() }
        let net: EfficientNetLite0
        switch network() {
        case let .failure(e): return selected(.unavailable(e.what))
        case let .success(n): net = n
        }
        let stats = try self.reference(reference, name: referenceName, network: net)
        let n = settings.samples > 0 ? min(settings.samples, images.count) : images.count
        var rng = RandomStream(seed: UInt64(ctx.manifest.seed), stream: 0x696D_6773)
        let subset = n < images.count ? rng.permutation(images.count).prefix(n).sorted() : Array(0..<images.count)
        ctx.progress.setPhase("metrics on \(subset.count) images of \(name)")
        return selected(Evaluation.evaluate(samples: Self.tensor(images, subset), reference: stats, referenceName: referenceName,
                                            network: net, sampling: nil))
    }

    /// Keeps only the metrics the manifest asked for.
    func selected(_ report: MetricsReport) -> MetricsReport {
        var r = report
        r.metrics = r.metrics.filter { settings.metrics.contains($0.key) }
        r.unavailable = r.unavailable.filter { settings.metrics.contains($0.key) }
        return r
    }
}

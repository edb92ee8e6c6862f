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
    var settings: Manifest.EvaluationSection
    /// The first chunk's sampling seed (`sampling.seed + 1`; `+ 2` during training).
    var sampleSeed: UInt64

    init(ctx: JobContext) {
        self.ctx = ctx
        settings = ctx.manifest.evaluation
        sampleSeed = UInt64(ctx.manifest.sampling.seed) &+ 1
    }

    /// The metrics an evaluation during training computes: the curves worth drawing from
    /// `evaluation.every_samples` images (k-NN precision/recall and IS need more, and
    /// Inception costs 0.2 s an image).
    static let duringTrainingMetrics = ["class_accuracy_pixels", "class_accuracy_effnet_lite0", "fd_effnet_lite0"]

    /// `evaluation.every`: `every_samples` images of `model` (the same noise at every step,
    /// seed `sampling.seed + 2`) scored by `duringTrainingMetrics` (those the manifest
    /// selects). Returns metric name → value; unavailable metrics are left out.
    func duringTraining(model: DiTModel, numClasses: Int, reference: ImageSet, referenceName: String, step: Int) throws -> [String: Double] {
        var e = self
        e.settings.samples = settings.everySamples
        e.settings.metrics = Self.duringTrainingMetrics.filter(settings.metrics.contains)
        e.sampleSeed = UInt64(ctx.manifest.sampling.seed) &+ 2
        let m = ctx.manifest.sampling
        let record = SamplingRecord(sampler: m.sampler, steps: m.steps, guidance: m.cfgScale, seed: m.seed, checkpointStep: step,
                                    weights: m.useEma ? "ema" : "raw")
        let report = try e.evaluate(model: model, numClasses: numClasses, reference: reference, referenceName: referenceName, sampling: record).report
        return report.metrics.mapValues(\.value)
    }

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

    /// A network whose metrics the manifest selects: loaded, or the reason it is missing.
    struct SelectedNetwork {
        /// Its metric names (all of them; `selected` keeps the manifest's).
        var names: [String]
        var network: Result<any FeatureNetwork, MetricsError>
    }

    /// Every feature network with at least one metric in `evaluation.metrics`: EfficientNet-Lite0
    /// and the FID Inception-v3, each found under the root's `models/`, its variable or the XDG
    /// folder. Each one runs once over the samples and once (cached) over the reference.
    func networks() -> [SelectedNetwork] {
        var out: [SelectedNetwork] = []
        let wanted = Set(settings.metrics)
        if EfficientNetLite0.orderedMetricNames.contains(where: wanted.contains) {
            out.append(SelectedNetwork(names: EfficientNetLite0.orderedMetricNames, network: network().map { $0 as any FeatureNetwork }))
        }
        if InceptionV3.orderedMetricNames.contains(where: wanted.contains) {
            out.append(SelectedNetwork(names: InceptionV3.orderedMetricNames,
                                       network: InceptionV3.loadInstalled(root: ctx.layout.root).map { $0 as any FeatureNetwork }))
        }
        return out
    }

    /// `evaluation.reference_statistics` for a network with `dimension`-d pooled features:
    /// nil when not given; the reason when the file is unusable (its metric is then listed as
    /// unavailable, and the job goes on).
    func givenStatistics(dimension: Int) -> Result<Evaluation.GivenStatistics, MetricsError>? {
        guard let path = settings.referenceStatistics else { return nil }
        do {
            let stats = try FrechetStatistics(npzAt: ctx.layout.root + "/" + path, expectedDimension: dimension)
            return .success(Evaluation.GivenStatistics(statistics: stats, name: "statistics from \(path)"))
        } catch {
            return .failure(MetricsError("evaluation.reference_statistics: \(error)", fix: "give an .npz with mu (d,) and sigma (d, d) of Inception-v3 pool_3 features"))
        }
    }

    /// Measures `samples` with every selected network and merges the reports; a network
    /// whose weights are missing has its metrics listed as unavailable with the reason.
    /// `computed` holds reference statistics already made, by network identity.
    func measure(_ samples: Tensor, networks: [SelectedNetwork], reference images: ImageSet, referenceName: String,
                 computed: [String: ReferenceStatistics] = [:],
                 sampling record: SamplingRecord?, sampleLabels: [Int]?, classes: Int?, what: String) throws -> MetricsReport {
        var report = MetricsReport()
        for selected in networks {
            switch selected.network {
            case let .failure(e):
                report.merge(.unavailable(e.what, only: selected.names))
            case let .success(net):
                let stats = try computed[net.identity] ?? reference(images, name: referenceName, network: net)
                let label = type(of: net).displayName
                ctx.progress.setPhase("\(label) metrics on \(samples.shape[0]) \(what)")
                var given: Evaluation.GivenStatistics?
                var givenFailure: MetricsError?
                if net is InceptionV3, let g = givenStatistics(dimension: net.pooledDimension) {
                    switch g {
                    case let .success(x): given = x
                    case let .failure(e):
                        givenFailure = e
                        ctx.log.event("reference-statistics-unusable", "\(e.what)", level: .warning)
                    }
                }
                let clock = SystemdNotifier.monotonic()
                var r = Evaluation.evaluate(samples: samples, reference: stats, referenceName: referenceName, network: net, sampling: record,
                                            sampleLabels: sampleLabels, classes: classes, frechetReference: given,
                                            progress: { done, total in ctx.progress.work("\(label) features of the \(what)", done: done, total: total, since: clock) })
                if let givenFailure, let name = InceptionV3.metricNames[.frechet] {
                    r.metrics[name] = nil
                    r.unavailable[name] = "\(givenFailure)"
                }
                report.merge(r)
            }
        }
        return report
    }

    /// A seeded subset of `images` of `evaluation.reference_images` (all when 0 or fewer).
    func referenceSubset(_ images: ImageSet) -> [Int] {
        let n = settings.referenceImages
        guard n > 0, n < images.count else { return Array(0..<images.count) }
        var rng = RandomStream(seed: UInt64(ctx.manifest.seed), stream: 0x7265_6673)
        return rng.permutation(images.count).prefix(n).sorted()
    }

    /// The dataset's reference statistics, cached under `.state/cache/` by a key of the
    /// chosen images' pixels, their count and the network's identity. For Inception-v3 the
    /// pool_3 statistics are also exported beside the job's metrics as
    /// `reference-stats-inception_v3.npz` (`mu`, `sigma`: clean-fid's and pytorch-fid's layout).
    func reference(_ images: ImageSet, name: String, network: any FeatureNetwork) throws -> ReferenceStatistics {
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
        let label = type(of: network).displayName
        let stats = try ReferenceStatistics.cached(at: path, key: key, network: network, labels: labels,
                                                   progress: { done, total in ctx.progress.work("\(label) reference features of \(name)", done: done, total: total, since: start) }) {
            ctx.progress.setPhase("\(label) reference statistics of \(name) (\(subset.count) images)")
            return Self.tensor(images, subset)
        }
        if network is InceptionV3 {
            try FileOps.makeDirectories(ctx.outputDirectory)
            try FileOps.writeDurably(stats.pooled.npzArchive, to: ctx.outputDirectory + "/" + Self.exportedStatistics)
        }
        return stats
    }

    /// The exported Inception-v3 reference statistics' file name.
    static let exportedStatistics = "reference-stats-inception_v3.npz"

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
        let nets = networks()
        for n in nets { if case let .failure(e) = n.network { ctx.log.event("metrics-skipped", "metrics not computed: \(e.what)", level: .warning) } }
        let anyNetwork = nets.contains { if case .success = $0.network { true } else { false } }
        if !anyNetwork && !settings.metrics.contains(Self.pixelAccuracy) {
            var r = MetricsReport()
            for n in nets { if case let .failure(e) = n.network { r.merge(.unavailable(e.what, only: n.names)) } }
            return (selected(r), 0)
        }
        // Reference statistics first (cached after the first job on this dataset).
        var computed: [String: ReferenceStatistics] = [:]
        for n in nets { if case let .success(net) = n.network { computed[net.identity] = try reference(images, name: referenceName, network: net) } }
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
                                     seed: sampleSeed &+ UInt64(start / Self.chunk) &* 0x9E37_79B9)
            (samples.data + start * per).update(from: x.data, count: x.count)
            start = end
        }
        ctx.progress.work("sampling for metrics", done: labels.count, total: labels.count, since: clock)
        let samplingSeconds = Date().timeIntervalSince(t0)
        if ctx.shouldStop() { throw Stopped() }
        ctx.progress.setPhase("metrics on \(labels.count) samples")
        var report = try measure(samples, networks: nets, reference: images, referenceName: referenceName, computed: computed, sampling: record,
                                 sampleLabels: labels, classes: images.classes.count, what: "samples")
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
        var report = try measure(x, networks: networks(), reference: reference, referenceName: referenceName, sampling: nil,
                                 sampleLabels: labels, classes: sameClasses ? reference.classes.count : nil, what: "images of \(name)")
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

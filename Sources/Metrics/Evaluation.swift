import Formats
import Foundation
import Tensors

/// A dataset's side of every metric, computed once and cached in a file: the Fréchet
/// statistics of the pooled and spatial features, and the pooled features themselves (the
/// k-NN precision/recall needs the points, not just their moments).
///
/// The cache file is safetensors (means and covariances F64, features F32) whose metadata
/// holds a `key`; a file whose key differs from the one asked for is stale (another dataset,
/// another sample count, other weights or input size) and is recomputed and replaced.
public struct ReferenceStatistics: Sendable {
    public var key: String
    public var pooled: FrechetStatistics
    public var spatial: FrechetStatistics
    /// The pooled features of the reference images (for precision/recall and the class probe).
    public var features: Features
    /// The class of each feature row (nil: unlabelled images; no class accuracy then).
    public var labels: [Int]?

    public init(key: String, pooled: FrechetStatistics, spatial: FrechetStatistics, features: Features, labels: [Int]? = nil) {
        self.key = key
        self.pooled = pooled
        self.spatial = spatial
        self.features = features
        self.labels = labels
    }

    /// The images' statistics under `network`. `images` are (N, C, H, W) in [-1, 1], `labels`
    /// their classes (for `class_accuracy_*`).
    public static func compute(images: Tensor, labels: [Int]? = nil, network: any FeatureNetwork, key: String,
                               progress: FeatureProgress? = nil) throws(MetricsError) -> ReferenceStatistics {
        let out = network.networkFeatures(images: images, progress: progress)
        return ReferenceStatistics(key: key, pooled: try FrechetStatistics(features: out.pooled),
                                   spatial: try FrechetStatistics(features: out.spatial), features: out.pooled, labels: labels)
    }

    /// The cache key for a dataset: its name, a fingerprint of its content (the caller's
    /// choice: a hash of the file list and sizes, or of the pixels), the image count, and the
    /// network's identity (weights and input size).
    public static func key(dataset: String, fingerprint: String, count: Int, network: any FeatureNetwork) -> String {
        "\(dataset)|\(fingerprint)|n=\(count)|\(network.identity)"
    }

    /// Reads the cache at `path` if it exists and has `key`; otherwise computes the
    /// statistics from `images()` and writes the cache (atomically). A damaged cache file is
    /// recomputed, not an error: it holds nothing that cannot be made again.
    public static func cached(at path: String, key: String, network: any FeatureNetwork, labels: [Int]? = nil,
                              progress: FeatureProgress? = nil, images: () throws -> Tensor) throws -> ReferenceStatistics {
        if FileManager.default.fileExists(atPath: path), let file = try? SafeTensors.read(contentsOf: path),
           file.metadata["key"] == key, let stats = try? ReferenceStatistics(file: file), stats.labels == labels {
            return stats
        }
        let stats = try compute(images: try images(), labels: labels, network: network, key: key, progress: progress)
        try SafeTensors.write(stats.file, to: path)
        return stats
    }

    /// The cache file's contents.
    public var file: SafeTensors.File {
        var f = SafeTensors.File(metadata: ["key": key, "made_by": "learngene Metrics.ReferenceStatistics",
                                            "pooled_count": String(pooled.count), "spatial_count": String(spatial.count)])
        for (name, s) in [("pooled", pooled), ("spatial", spatial)] {
            f["\(name).mean"] = .f64(s.mean, shape: [s.dimension])
            f["\(name).covariance"] = .f64(s.covariance, shape: [s.dimension, s.dimension])
        }
        f["pooled.features"] = .f32(features.values, shape: [features.count, features.dimension])
        if let labels { f["pooled.labels"] = .f32(labels.map(Float.init), shape: [labels.count]) }
        return f
    }

    public init(file: SafeTensors.File) throws(MetricsError) {
        func stats(_ name: String) throws(MetricsError) -> FrechetStatistics {
            guard let m = file["\(name).mean"], let c = file["\(name).covariance"], m.shape.count == 1,
                  c.shape == [m.shape[0], m.shape[0]], let n = Int(file.metadata["\(name)_count"] ?? "") else {
                throw MetricsError("reference statistics file lacks \(name) statistics", fix: "delete it; it is recomputed")
            }
            return FrechetStatistics(count: n, dimension: m.shape[0], mean: m.doubles(), covariance: c.doubles())
        }
        guard let f = file["pooled.features"], f.shape.count == 2 else {
            throw MetricsError("reference statistics file lacks the pooled features", fix: "delete it; it is recomputed")
        }
        let labels = file["pooled.labels"].map { $0.floats().map { Int($0) } }
        if let labels, labels.count != f.shape[0] {
            throw MetricsError("reference statistics file has \(labels.count) labels for \(f.shape[0]) feature rows", fix: "delete it; it is recomputed")
        }
        self.init(key: file.metadata["key"] ?? "", pooled: try stats("pooled"), spatial: try stats("spatial"),
                  features: Features(count: f.shape[0], dimension: f.shape[1], values: f.floats()), labels: labels)
    }
}

extension EfficientNetLite0 {
    /// Names the weights and input size, for cache keys: a checksum (FNV-1a) of the
    /// classifier and head parameters — enough to tell two weight files apart — and the size.
    public var identity: String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for array in [fcBias, headBias, stemBias, fcWeight] {
            for v in array { h = (h ^ UInt64(v.bitPattern)) &* 0x100_0000_01b3 }
        }
        return "efficientnet-lite0@\(inputSize)px/\(String(h, radix: 16))"
    }
}

/// How the evaluated samples were made: recorded beside every number, so two numbers are
/// only compared when they were measured the same way.
public struct SamplingRecord: Sendable, Equatable, Codable {
    public var sampler: String
    public var steps: Int
    public var guidance: Double
    public var seed: Int
    public var checkpointStep: Int
    /// "ema" or "raw".
    public var weights: String

    public init(sampler: String, steps: Int, guidance: Double, seed: Int, checkpointStep: Int, weights: String) {
        self.sampler = sampler
        self.steps = steps
        self.guidance = guidance
        self.seed = seed
        self.checkpointStep = checkpointStep
        self.weights = weights
    }

    enum CodingKeys: String, CodingKey {
        case sampler, steps, guidance, seed, weights
        case checkpointStep = "checkpoint_step"
    }
}

/// One metric's value with everything needed to interpret it.
public struct MetricEntry: Sendable, Equatable, Codable {
    public var value: Double
    /// What the number is, in words (e.g. "Fréchet distance of EfficientNet-Lite0 pooled features (1280-d)").
    public var definition: String
    public var samples: Int
    public var referenceSamples: Int?
    public var reference: String?
    public var inputSize: Int
    public var sampling: SamplingRecord?
    /// Extra numbers: per-split scores, k.
    public var details: [String: Double]?

    public init(value: Double, definition: String, samples: Int, referenceSamples: Int?, reference: String?, inputSize: Int,
                sampling: SamplingRecord?, details: [String: Double]? = nil) {
        self.value = value
        self.definition = definition
        self.samples = samples
        self.referenceSamples = referenceSamples
        self.reference = reference
        self.inputSize = inputSize
        self.sampling = sampling
        self.details = details
    }

    enum CodingKeys: String, CodingKey {
        case value, definition, samples, reference, sampling, details
        case referenceSamples = "reference_samples"
        case inputSize = "input_size"
    }
}

/// The metrics of one evaluation: what `metrics.json` records under `"metrics"`.
/// Metrics that could not be computed are listed under `unavailable` with the reason (e.g.
/// the weights are not installed), never silently left out.
public struct MetricsReport: Sendable, Equatable, Codable {
    public var metrics: [String: MetricEntry] = [:]
    public var unavailable: [String: String] = [:]
    /// Seconds spent: "features" (network passes over the samples), "reference" (dataset
    /// statistics, 0 when cached), "statistics" (FD, precision/recall, IS).
    public var seconds: [String: Double] = [:]

    public init() {}

    /// The names of every metric an evaluation produces.
    public static let names = ["fd_effnet_lite0", "sfd_effnet_lite0", "precision_effnet_lite0", "recall_effnet_lite0", "is_effnet_lite0",
                               "class_accuracy_effnet_lite0", "class_accuracy_pixels",
                               "fid_inception_v3", "sfid_inception_v3", "precision_inception_v3", "recall_inception_v3"]

    /// Pretty JSON with sorted keys (stable diffs between runs).
    public func jsonData() -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? enc.encode(self)) ?? Data("{}".utf8)
    }

    /// A report where every metric (or each of `only`) is unavailable for `reason`.
    public static func unavailable(_ reason: String, only: [String]? = nil) -> MetricsReport {
        var r = MetricsReport()
        for n in only ?? names { r.unavailable[n] = reason }
        return r
    }

    /// Adds `other`'s metrics, reasons and seconds (seconds of the same name add up); a
    /// metric computed in either is no longer unavailable.
    public mutating func merge(_ other: MetricsReport) {
        for (k, v) in other.metrics { metrics[k] = v; unavailable[k] = nil }
        for (k, v) in other.unavailable where metrics[k] == nil { unavailable[k] = v }
        for (k, v) in other.seconds { seconds[k, default: 0] += v }
    }
}

/// Computes every metric for generated samples against a dataset's reference statistics.
public enum Evaluation {
    /// Fréchet statistics given by the user (an `.npz` of `mu`/`sigma` made elsewhere) that
    /// replace the reference's pooled statistics for the Fréchet distance; `name` says where
    /// they came from in the report.
    public struct GivenStatistics: Sendable {
        public var statistics: FrechetStatistics
        public var name: String
        public init(statistics: FrechetStatistics, name: String) {
            self.statistics = statistics
            self.name = name
        }
    }

    /// - Parameters:
    ///   - samples: generated images (N, C, H, W) in [-1, 1].
    ///   - reference: the dataset's statistics (`ReferenceStatistics.cached`).
    ///   - referenceName: how the report names the dataset (e.g. "fashion-mnist test, 2000 images").
    ///   - network: the features' network; its metrics (`FeatureNetwork.metricNames`) are
    ///     computed. nil when the weights are absent: every metric is then unavailable with
    ///     `missingReason`, and the caller's job still succeeds.
    ///   - frechetReference: statistics given by the user, used instead of the reference's
    ///     pooled ones for the Fréchet distance (sFID and precision/recall still use the reference).
    ///   - sampling: how the samples were made (nil for real images, e.g. train vs test).
    ///   - isSplitSize: the Inception-style score's split size (the ADM evaluator's 5000).
    ///   - sampleLabels, classes: the class each sample was conditioned on (real images: their
    ///     own class) and the reference's class count, for `class_accuracy_*`; nil: not measured.
    public static func evaluate(samples: Tensor, reference: ReferenceStatistics, referenceName: String,
                                network: (any FeatureNetwork)?, missingReason: String = "EfficientNet-Lite0 weights not installed",
                                sampling: SamplingRecord?, isSplitSize: Int = 5000, sampleLabels: [Int]? = nil, classes: Int? = nil,
                                frechetReference: GivenStatistics? = nil, progress: FeatureProgress? = nil) -> MetricsReport {
        guard let network else { return .unavailable(missingReason) }
        let names = type(of: network).metricNames
        var report = MetricsReport()
        let t0 = Date()
        let out = network.networkFeatures(images: samples, progress: progress)
        report.seconds["features"] = Date().timeIntervalSince(t0)
        let t1 = Date()
        let n = samples.shape[0], size = network.inputSize
        func entry(_ value: Double, _ metric: FeatureMetric, details: [String: Double]? = nil, withReference: Bool = true) -> MetricEntry {
            MetricEntry(value: value, definition: network.definition(of: metric), samples: n, referenceSamples: withReference ? reference.features.count : nil,
                        reference: withReference ? referenceName : nil, inputSize: size, sampling: sampling, details: details)
        }
        if let name = names[.frechet] {
            do {
                let sampleStats = try FrechetStatistics(features: out.pooled)
                if let given = frechetReference {
                    // Statistics made elsewhere (clean-fid, pytorch-fid): their own name and count.
                    var e = entry(try frechetDistance(sampleStats, given.statistics), .frechet)
                    e.reference = given.name
                    e.referenceSamples = given.statistics.count > 0 ? given.statistics.count : nil
                    report.metrics[name] = e
                } else {
                    report.metrics[name] = entry(try frechetDistance(sampleStats, reference.pooled), .frechet)
                }
            } catch { report.unavailable[name] = "\(error)" }
        }
        if let name = names[.spatialFrechet] {
            do {
                report.metrics[name] = entry(try frechetDistance(try FrechetStatistics(features: out.spatial), reference.spatial), .spatialFrechet)
            } catch { report.unavailable[name] = "\(error)" }
        }
        if let p = names[.precision], let r = names[.recall] {
            do {
                let pr = try precisionRecall(real: reference.features, fake: out.pooled, k: 3)
                report.metrics[p] = entry(pr.precision, .precision, details: ["k": 3])
                report.metrics[r] = entry(pr.recall, .recall, details: ["k": 3])
            } catch {
                report.unavailable[p] = "\(error)"
                report.unavailable[r] = "\(error)"
            }
        }
        if let name = names[.inceptionScore], let logits = out.logits {
            do {
                let s = try inceptionStyleScore(logits: logits, splitSize: isSplitSize)
                var details: [String: Double] = ["split_size": Double(isSplitSize)]
                for (i, v) in s.splitScores.enumerated() { details["split_\(i)"] = v }
                report.metrics[name] = entry(s.score, .inceptionScore, details: details, withReference: false)
            } catch { report.unavailable[name] = "\(error)" }
        }
        if let name = names[.classAccuracy] {
            if let sampleLabels, let classes, let refLabels = reference.labels {
                do {
                    let a = try ClassAccuracy.measure(reference: reference.features, referenceLabels: refLabels, samples: out.pooled,
                                                      sampleLabels: sampleLabels, classes: classes)
                    report.metrics[name] = entry(a.samples, .classAccuracy, details: a.details)
                } catch { report.unavailable[name] = "\(error)" }
            } else {
                report.unavailable[name] = reference.labels == nil
                    ? "the reference statistics hold no class labels" : "the samples have no class labels (not a class-conditional model)"
            }
        }
        report.seconds["statistics"] = Date().timeIntervalSince(t1)
        return report
    }
}

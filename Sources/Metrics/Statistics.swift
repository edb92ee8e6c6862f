import Tensors
import CLapack
import COpenBLAS
import Foundation

/// N feature vectors of one dimension, row-major (`values[i * dimension + j]`).
public struct Features: Sendable, Equatable, Codable {
    public var count: Int
    public var dimension: Int
    public var values: [Float]

    public init(count: Int, dimension: Int, values: [Float]) {
        precondition(values.count == count * dimension, "Features: \(values.count) values for \(count) × \(dimension)")
        self.count = count
        self.dimension = dimension
        self.values = values
    }

    /// Rows `range` as a new set.
    public func rows(_ range: Range<Int>) -> Features {
        Features(count: range.count, dimension: dimension, values: Array(values[(range.lowerBound * dimension)..<(range.upperBound * dimension)]))
    }

    /// The rows of `a` then those of `b`.
    public static func concatenating(_ parts: [Features]) -> Features {
        guard let d = parts.first?.dimension else { return Features(count: 0, dimension: 0, values: []) }
        precondition(parts.allSatisfy { $0.dimension == d }, "Features.concatenating: dimensions differ")
        return Features(count: parts.reduce(0) { $0 + $1.count }, dimension: d, values: parts.flatMap(\.values))
    }

    /// The values widened to Double (the statistics are computed in Double).
    var doubles: [Double] { values.map(Double.init) }
}

/// Why a metric could not be computed.
public typealias MetricsError = FixableError

/// Mean and covariance of a feature set: all the Fréchet distance needs of one side, so a
/// dataset's statistics are computed once and cached (`ReferenceStatistics`).
///
/// Both in Double: with 1280 dimensions the covariance's small eigenvalues matter to the
/// trace of the square root, and Float32 accumulation over thousands of samples loses them.
/// The covariance is the unbiased one (ddof 1), as `np.cov` and the ADM evaluator compute it.
public struct FrechetStatistics: Sendable, Equatable, Codable {
    public var count: Int
    public var dimension: Int
    public var mean: [Double]
    /// dimension × dimension, row-major (symmetric).
    public var covariance: [Double]

    public init(count: Int, dimension: Int, mean: [Double], covariance: [Double]) {
        self.count = count
        self.dimension = dimension
        self.mean = mean
        self.covariance = covariance
    }

    /// Statistics of `features` (at least 2 rows).
    public init(features: Features) throws(MetricsError) {
        let n = features.count, d = features.dimension
        guard n >= 2 else { throw MetricsError("Fréchet statistics need at least 2 feature vectors, got \(n)", fix: "evaluate more samples") }
        var x = features.doubles
        var mean = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += x[i * d + j] } }
        for j in 0..<d { mean[j] /= Double(n) }
        for i in 0..<n { for j in 0..<d { x[i * d + j] -= mean[j] } }
        // Σ = Xcᵀ Xc / (n − 1): dsyrk fills the upper triangle (row-major), then mirror it.
        var cov = [Double](repeating: 0, count: d * d)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, blasint(d), blasint(n), 1 / Double(n - 1), x, blasint(d), 0, &cov, blasint(d))
        for i in 0..<d { for j in 0..<i { cov[i * d + j] = cov[j * d + i] } }
        self.init(count: n, dimension: d, mean: mean, covariance: cov)
    }
}

/// The Fréchet distance between two Gaussians fitted to feature sets:
/// `|μ₁−μ₂|² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁Σ₂)^½`.
///
/// `tr (Σ₁Σ₂)^½` is computed in its symmetric form `tr (Σ₁^½ Σ₂ Σ₁^½)^½` — the matrices
/// Σ₁Σ₂ and Σ₁^½Σ₂Σ₁^½ are similar, so the eigenvalues and the trace agree — with two
/// symmetric eigendecompositions (LAPACK dsyevd) instead of scipy's general `sqrtm` of a
/// non-symmetric product. That needs no complex arithmetic, and tiny negative eigenvalues
/// from rounding (covariances of fewer samples than dimensions are singular) are clamped to
/// 0 rather than turning into imaginary parts, the failure pytorch-fid warns about.
public func frechetDistance(_ a: FrechetStatistics, _ b: FrechetStatistics) throws(MetricsError) -> Double {
    guard a.dimension == b.dimension else {
        throw MetricsError("Fréchet distance between \(a.dimension)- and \(b.dimension)-dimensional statistics", fix: "compare features of the same network layer")
    }
    let d = a.dimension
    var meanTerm = 0.0
    for j in 0..<d { let t = a.mean[j] - b.mean[j]; meanTerm += t * t }
    var traces = 0.0
    for j in 0..<d { traces += a.covariance[j * d + j] + b.covariance[j * d + j] }
    // Σ₁^½ = V diag(√λ) Vᵀ.
    let (lambda, vectors) = try SymmetricEigen.decompose(a.covariance, n: d, vectors: true)
    // V diag(√λ) as columns scaled (the eigenvector matrix is column-major from LAPACK:
    // vectors[k * d + i] is component i of vector k, i.e. row-major it is Vᵀ).
    var vtScaled = vectors  // row k = √λ_k · v_kᵀ
    for k in 0..<d {
        let s = lambda[k] > 0 ? lambda[k].squareRoot() : 0
        for i in 0..<d { vtScaled[k * d + i] *= s }
    }
    var sqrtA = [Double](repeating: 0, count: d * d)
    // Σ₁^½ = Σ_k √λ_k v_k v_kᵀ = (VᵀS)ᵀ Vᵀ with Vᵀ row-major = `vectors`.
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, blasint(d), blasint(d), blasint(d), 1, vtScaled, blasint(d), vectors, blasint(d), 0, &sqrtA, blasint(d))
    var tmp = [Double](repeating: 0, count: d * d)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(d), blasint(d), blasint(d), 1, sqrtA, blasint(d), b.covariance, blasint(d), 0, &tmp, blasint(d))
    var m = [Double](repeating: 0, count: d * d)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(d), blasint(d), blasint(d), 1, tmp, blasint(d), sqrtA, blasint(d), 0, &m, blasint(d))
    // Symmetrize away rounding before the symmetric solver reads one triangle.
    for i in 0..<d { for j in 0..<i { let s = 0.5 * (m[i * d + j] + m[j * d + i]); m[i * d + j] = s; m[j * d + i] = s } }
    let (mu, _) = try SymmetricEigen.decompose(m, n: d, vectors: false)
    var traceSqrt = 0.0
    for x in mu where x > 0 { traceSqrt += x.squareRoot() }
    return meanTerm + traces - 2 * traceSqrt
}

/// LAPACK's symmetric eigensolver (divide and conquer) on a row-major matrix.
enum SymmetricEigen {
    /// Eigenvalues (ascending) and, if asked, eigenvectors: `vectors[k * n + i]` is component
    /// i of the k-th eigenvector (LAPACK's column-major output read row-major).
    static func decompose(_ matrix: [Double], n: Int, vectors: Bool) throws(MetricsError) -> (values: [Double], vectors: [Double]) {
        precondition(matrix.count == n * n)
        if n == 0 { return ([], []) }
        var a = matrix  // symmetric: row-major and column-major are the same
        var w = [Double](repeating: 0, count: n)
        var jobz = CChar(UInt8(ascii: vectors ? "V" : "N")), uplo = CChar(UInt8(ascii: "L"))
        var n32 = Int32(n), lda = Int32(n), info: Int32 = 0
        // Workspace query, then the call.
        var lwork: Int32 = -1, liwork: Int32 = -1
        var workSize = 0.0
        var iworkSize: Int32 = 0
        dsyevd_(&jobz, &uplo, &n32, &a, &lda, &w, &workSize, &lwork, &iworkSize, &liwork, &info)
        guard info == 0 else { throw MetricsError("LAPACK dsyevd workspace query failed (info \(info))", fix: "check the OpenBLAS installation") }
        lwork = Int32(workSize.rounded(.up))
        liwork = max(1, iworkSize)
        var work = [Double](repeating: 0, count: Int(lwork))
        var iwork = [Int32](repeating: 0, count: Int(liwork))
        dsyevd_(&jobz, &uplo, &n32, &a, &lda, &w, &work, &lwork, &iwork, &liwork, &info)
        guard info == 0 else {
            throw MetricsError("the eigendecomposition of a \(n)×\(n) covariance did not converge (LAPACK dsyevd info \(info))",
                               fix: "the features hold NaN or infinite values; check the model's samples")
        }
        return (w, vectors ? a : [])
    }
}

/// Precision and recall of generated samples against real ones, after Kynkäänniemi et al.
/// (2019), as the ADM evaluator computes them (`ManifoldEstimator`, `nhood_sizes=(3,)`).
///
/// Each set's manifold is the union of balls around its points, each ball reaching that
/// point's k-th nearest neighbour in its own set. Precision is the fraction of generated
/// samples inside the real manifold (are samples realistic?), recall the fraction of real
/// images inside the generated manifold (is the data's variety covered?). Distances are
/// squared Euclidean, as in the evaluator; computed here in Double (the evaluator uses
/// Float32), so borderline points are decided exactly.
public struct PrecisionRecall: Sendable, Equatable, Codable {
    public var precision: Double
    public var recall: Double
    public var k: Int
}

public func precisionRecall(real: Features, fake: Features, k: Int = 3) throws(MetricsError) -> PrecisionRecall {
    guard real.dimension == fake.dimension else {
        throw MetricsError("precision/recall between \(real.dimension)- and \(fake.dimension)-dimensional features", fix: "use features of the same network layer")
    }
    guard k >= 1, real.count > k, fake.count > k else {
        throw MetricsError("precision/recall with k = \(k) needs more than \(k) samples per set (real \(real.count), generated \(fake.count))", fix: "evaluate more samples")
    }
    let rx = real.doubles, fx = fake.doubles
    let rRadii = Manifold.radii(rx, count: real.count, dimension: real.dimension, k: k)
    let fRadii = Manifold.radii(fx, count: fake.count, dimension: real.dimension, k: k)
    var fakeInReal = [Bool](repeating: false, count: fake.count)
    var realInFake = [Bool](repeating: false, count: real.count)
    Manifold.forEachDistanceBlock(rx, real.count, fx, fake.count, real.dimension) { rowStart, rows, block in
        let n = fake.count
        for i in 0..<rows {
            let r = rowStart + i
            for j in 0..<n {
                let dist = block[i * n + j]
                if dist <= rRadii[r] { fakeInReal[j] = true }
                if dist <= fRadii[j] { realInFake[r] = true }
            }
        }
    }
    return PrecisionRecall(precision: Double(fakeInReal.filter { $0 }.count) / Double(fake.count),
                           recall: Double(realInFake.filter { $0 }.count) / Double(real.count), k: k)
}

enum Manifold {
    /// Rows of `a` per distance block: a block of 512 × N Doubles stays small (8 MB at
    /// N = 2000) while the product is still large enough for BLAS to run fast.
    static let blockRows = 512

    /// Squared distances from every row of `a` to every row of `b`, handed over in blocks of
    /// rows: `body(firstRow, rows, block)` with `block[i * nb + j] = |a_(first+i) − b_j|²`.
    static func forEachDistanceBlock(_ a: [Double], _ na: Int, _ b: [Double], _ nb: Int, _ d: Int,
                                     _ body: (Int, Int, [Double]) -> Void) {
        let normB = (0..<nb).map { j in (0..<d).reduce(0.0) { $0 + b[j * d + $1] * b[j * d + $1] } }
        var block = [Double](repeating: 0, count: blockRows * nb)
        var start = 0
        while start < na {
            let rows = min(blockRows, na - start)
            a.withUnsafeBufferPointer { ap in
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(rows), blasint(nb), blasint(d), -2,
                            ap.baseAddress! + start * d, blasint(d), b, blasint(d), 0, &block, blasint(nb))
            }
            for i in 0..<rows {
                var na2 = 0.0
                for t in 0..<d { let v = a[(start + i) * d + t]; na2 += v * v }
                for j in 0..<nb { block[i * nb + j] = max(0, block[i * nb + j] + na2 + normB[j]) }
            }
            body(start, rows, block)
            start += rows
        }
    }

    /// Each point's squared distance to its k-th nearest neighbour in its own set. The point
    /// itself is in the set at distance 0, so this is the (k+1)-th smallest distance, as the
    /// evaluator's `np.partition(..., kth=k)` picks it.
    static func radii(_ x: [Double], count n: Int, dimension d: Int, k: Int) -> [Double] {
        var radii = [Double](repeating: 0, count: n)
        forEachDistanceBlock(x, n, x, n, d) { start, rows, block in
            var smallest = [Double](repeating: .infinity, count: k + 1)
            for i in 0..<rows {
                for s in 0...k { smallest[s] = .infinity }
                for j in 0..<n {
                    let v = block[i * n + j]
                    if v >= smallest[k] { continue }
                    // Insert into the sorted k+1 smallest.
                    var s = k
                    while s > 0 && smallest[s - 1] > v { smallest[s] = smallest[s - 1]; s -= 1 }
                    smallest[s] = v
                }
                radii[start + i] = smallest[k]
            }
        }
        return radii
    }
}

/// The Inception Score's formula, `exp(E_x KL(p(y|x) ‖ p(y)))`, on EfficientNet-Lite0's
/// ImageNet logits (so not comparable to published Inception Scores). As the ADM evaluator
/// does, the samples are cut into consecutive parts of `splitSize`, the score is computed
/// per part with that part's marginal p(y), and the parts' scores are averaged.
public struct InceptionStyleScore: Sendable, Equatable, Codable {
    /// Mean of the per-part scores.
    public var score: Double
    public var splitScores: [Double]
    public var splitSize: Int
}

public func inceptionStyleScore(logits: Features, splitSize: Int = 5000) throws(MetricsError) -> InceptionStyleScore {
    guard logits.count >= 1, logits.dimension >= 2 else {
        throw MetricsError("an Inception-style score needs logits of at least 2 classes for at least 1 sample", fix: "evaluate some samples")
    }
    guard splitSize >= 1 else { throw MetricsError("split size \(splitSize)", fix: "use a split size of at least 1 (the ADM evaluator uses 5000)") }
    let c = logits.dimension
    // Softmax in Double.
    var p = [Double](repeating: 0, count: logits.count * c)
    for i in 0..<logits.count {
        var m = -Double.infinity
        for j in 0..<c { m = max(m, Double(logits.values[i * c + j])) }
        var s = 0.0
        for j in 0..<c { let e = Foundation.exp(Double(logits.values[i * c + j]) - m); p[i * c + j] = e; s += e }
        for j in 0..<c { p[i * c + j] /= s }
    }
    var scores: [Double] = []
    var start = 0
    while start < logits.count {
        let end = min(logits.count, start + splitSize)
        var marginal = [Double](repeating: 0, count: c)
        for i in start..<end { for j in 0..<c { marginal[j] += p[i * c + j] } }
        for j in 0..<c { marginal[j] /= Double(end - start) }
        var kl = 0.0
        for i in start..<end {
            for j in 0..<c where p[i * c + j] > 0 {  // 0 · log 0 = 0
                kl += p[i * c + j] * (Foundation.log(p[i * c + j]) - Foundation.log(marginal[j]))
            }
        }
        scores.append(Foundation.exp(kl / Double(end - start)))
        start = end
    }
    return InceptionStyleScore(score: scores.reduce(0, +) / Double(scores.count), splitScores: scores, splitSize: splitSize)
}

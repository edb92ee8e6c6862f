import CLapack
import Foundation

/// Why a learngene could not be built, saved, loaded or trained: what is wrong and what to do.
public struct LearngeneError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Eigen- and singular-vector helpers for initializing factors from trained weights, in Double.
enum Spectral {
    /// The `k` leading eigenpairs (largest eigenvalue first) of a symmetric n×n matrix, by
    /// LAPACK's dsyevd. `vectors[j * n + i]` is component i of the j-th eigenvector.
    static func leadingEigen(_ matrix: [Double], n: Int, count k: Int) throws -> (values: [Double], vectors: [Double]) {
        precondition(matrix.count == n * n && k <= n)
        var a = matrix, w = [Double](repeating: 0, count: n)
        var jobz = CChar(UInt8(ascii: "V")), uplo = CChar(UInt8(ascii: "L"))
        var n32 = Int32(n), info: Int32 = 0, lwork: Int32 = -1, liwork: Int32 = -1
        var workSize = 0.0, iworkSize: Int32 = 0
        dsyevd_(&jobz, &uplo, &n32, &a, &n32, &w, &workSize, &lwork, &iworkSize, &liwork, &info)
        lwork = Int32(workSize.rounded(.up)); liwork = max(1, iworkSize)
        var work = [Double](repeating: 0, count: Int(lwork)), iwork = [Int32](repeating: 0, count: Int(liwork))
        if info == 0 { dsyevd_(&jobz, &uplo, &n32, &a, &n32, &w, &work, &lwork, &iwork, &liwork, &info) }
        guard info == 0 else {
            throw LearngeneError("the eigendecomposition of a \(n)×\(n) Gram matrix failed (LAPACK dsyevd info \(info)); the ancestry weights hold NaN or infinite values")
        }
        var values = [Double](), vectors = [Double]()
        values.reserveCapacity(k); vectors.reserveCapacity(k * n)
        for j in stride(from: n - 1, to: n - 1 - k, by: -1) {  // ascending → descending
            values.append(w[j])
            vectors += a[(j * n)..<(j * n + n)]
        }
        return (values, vectors)
    }

    /// Adds W Wᵀ (rows×rows) or, with `transposed`, Wᵀ W (cols×cols) of a row-major W into `gram`.
    static func accumulateGram(_ gram: inout [Double], _ w: UnsafePointer<Float>, rows: Int, cols: Int, transposed: Bool) {
        let n = transposed ? cols : rows
        precondition(gram.count == n * n)
        let wd = (0..<(rows * cols)).map { Double(w[$0]) }
        gram.withUnsafeMutableBufferPointer { g in
            wd.withUnsafeBufferPointer { x in
                if transposed {
                    for r in 0..<rows {
                        let row = x.baseAddress! + r * cols
                        for i in 0..<cols where row[i] != 0 {
                            let xi = row[i], gi = g.baseAddress! + i * cols
                            for j in 0..<cols { gi[j] += xi * row[j] }
                        }
                    }
                } else {
                    for i in 0..<rows {
                        let ri = x.baseAddress! + i * cols
                        for j in 0...i {
                            let rj = x.baseAddress! + j * cols
                            var s = 0.0
                            for c in 0..<cols { s += ri[c] * rj[c] }
                            g[i * rows + j] += s
                            if i != j { g[j * rows + i] += s }
                        }
                    }
                }
            }
        }
    }

    /// The leading `r` singular triples of W (out×in, row-major) from the eigenvectors of the
    /// smaller Gram matrix: u, v component-major (r×out, r×in), σ ≥ 0 descending. A component
    /// whose σ is negligible (≤ 1e-12·σ₁) gets a zero partner vector (it carries nothing).
    /// With r = min(out, in), Σ u σ vᵀ reproduces W to rounding.
    static func svd(_ w: UnsafePointer<Float>, out: Int, in inn: Int, rank r: Int) throws -> (u: [Double], s: [Double], v: [Double]) {
        let tall = out >= inn  // decompose Wᵀ W (in×in) when W is tall, W Wᵀ otherwise
        let n = tall ? inn : out
        var gram = [Double](repeating: 0, count: n * n)
        accumulateGram(&gram, w, rows: out, cols: inn, transposed: tall)
        let (lambda, vecs) = try leadingEigen(gram, n: n, count: r)
        var u = [Double](repeating: 0, count: r * out), v = [Double](repeating: 0, count: r * inn), s = [Double](repeating: 0, count: r)
        let top = max(lambda.first ?? 0, 0).squareRoot()
        for k in 0..<r {
            let sigma = max(lambda[k], 0).squareRoot()
            s[k] = sigma
            let known = Array(vecs[(k * n)..<(k * n + n)])
            // Partner = W x / σ (tall: x = v, partner u) or Wᵀ x / σ (wide: x = u, partner v).
            var partner = [Double](repeating: 0, count: tall ? out : inn)
            if sigma > 1e-12 * top && sigma > 0 {
                for o in 0..<out {
                    for i in 0..<inn {
                        let wv = Double(w[o * inn + i])
                        if tall { partner[o] += wv * known[i] } else { partner[i] += wv * known[o] }
                    }
                }
                for j in partner.indices { partner[j] /= sigma }
            }
            if tall {
                v.replaceSubrange((k * inn)..<(k * inn + inn), with: known)
                u.replaceSubrange((k * out)..<(k * out + out), with: partner)
            } else {
                u.replaceSubrange((k * out)..<(k * out + out), with: known)
                v.replaceSubrange((k * inn)..<(k * inn + inn), with: partner)
            }
        }
        return (u, s, v)
    }
}

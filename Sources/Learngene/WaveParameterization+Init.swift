import COpenBLAS
import DiT
import Foundation
import Tensors

/// How a WAVE parameterization's templates and scalers start.
public enum WaveInitialization: String, Codable, Sendable, CaseIterable {
    /// From an ancestry DiT: the best sum-of-N-Kroneckers approximation with templates shared
    /// over the layers (Van Loan–Pitsianis rearrangement + truncated SVD).
    case vanLoan = "van_loan"
    /// Random templates and scalers at DiT's initialization scale (adaLN scalers zero).
    case random
}

/// ‖W − Ŵ‖_F / ‖W‖_F of a WAVE parameterization against the dense weights it approximates,
/// per matrix type (over all layers) and in total (0 when both are zero).
public struct WaveApproximationError: Sendable, Equatable, CustomStringConvertible {
    public var perMatrix: [BlockMatrix: Double]
    public var total: Double
    public var description: String {
        "relative error \(String(format: "%.3e", total)) ("
            + BlockMatrix.allCases.map { "\($0.shortName) \(String(format: "%.3e", perMatrix[$0] ?? .nan))" }.joined(separator: ", ") + ")"
    }
}

extension WaveParameterization {
    /// A WAVE parameterization of `ancestry`'s config, initialized as `initialization` says.
    ///
    /// **Van Loan–Pitsianis** (`.vanLoan`, the default). Rearranging a matrix W (m1×m2) into
    /// R(W) ((m1/w1)·(m2/w2) × w1·w2), row (a, c) = block (a, c) of W flattened, turns
    /// Σ_t S_t ⊗ T_t into the rank-N product Σ_t vec(S_t) vec(T_t)ᵀ, so the best Frobenius
    /// approximation of one W is a truncated SVD of R(W) (Van Loan & Pitsianis 1993). With
    /// templates shared over the layers, the per-layer R(W_l) are stacked vertically into one
    /// (L·A·C × B·D) matrix; its top-N singular triplets (σ_t, u_t, v_t) give the best such
    /// approximation with shared templates: T_t = v_t reshaped, S^(l)_t = the layer-l rows of
    /// u_t, with σ_t split between them. The SVD is taken through the symmetric
    /// eigendecomposition (LAPACK dsyevd, Double) of the smaller Gram matrix, R Rᵀ or Rᵀ R,
    /// the other side recovered as Rᵀu/σ or Rv/σ.
    ///
    /// **Scale split**: S_t = c·u_t, T_t = (σ_t/c)·v_t with c = √(L·A·C / N), so the scalers
    /// have RMS 1/√N over the layers (mixing coefficients) and the templates carry the
    /// weight scale — the same convention as `.random`, so Adam's per-parameter steps mean
    /// the same in both. Signs: each u_t is flipped to a non-negative sum (deterministic).
    /// **Degenerate components** (t beyond the rank, or σ_t ≤ 1e-6·σ_1, e.g. the all-zero
    /// adaLN weights of a freshly initialized ancestry): scalers 0 and a random template
    /// (N(0, rms(W)²), or Xavier's std when W = 0), so Ŵ is unchanged but the component can
    /// still learn (its scalers get gradient through the template).
    ///
    /// **Random** (`.random`): templates N(0, 2/(m1+m2)) (Xavier's variance for the whole
    /// matrix), scalers N(0, 1/N), so Ŵ has Xavier's variance; the adaLN scalers are zero
    /// (adaLN-Zero: the blocks start as identities, as DiT's init).
    ///
    /// The ancestry's block weights are its dense parameters, or, when it is hooked to a
    /// learngene parameterization, that one's materialized weights.
    public static func condense(from ancestry: DiTModel, settings: WaveSettings,
                                initialization: WaveInitialization = .vanLoan, seed: UInt64 = 0) throws -> WaveParameterization {
        let w = try WaveParameterization(config: ancestry.config, settings: settings)
        switch initialization {
        case .random: w.initializeRandom(seed: seed)
        case .vanLoan:
            for m in BlockMatrix.allCases {
                try w.vanLoanInitialize(m, weights: { l, out in ancestryWeight(ancestry, m, l, out) }, seed: seed)
            }
        }
        return w
    }

    /// Random templates and scalers (see `condense`'s `.random`).
    public func initializeRandom(seed: UInt64) {
        for m in BlockMatrix.allCases {
            let s = shapes[m.rawValue]
            var rng = RandomStream(seed: seed, stream: 0x3A7E_0000 + UInt32(m.rawValue))
            let xavier = Float((2.0 / Double(s.rows + s.cols)).squareRoot())
            rng.fillNormal(templates(m), count: s.count * s.templateSize, std: xavier)
            let scalerCount = config.depth * s.count * s.scalerSize
            if m == .adaLN {
                scalers(m, layer: 0).update(repeating: 0, count: scalerCount)
            } else {
                rng.fillNormal(scalers(m, layer: 0), count: scalerCount, std: Float(1 / Double(s.count).squareRoot()))
            }
        }
    }

    /// Van Loan–Pitsianis for one matrix type; `weights(l, out)` writes W_l (m1 × m2).
    func vanLoanInitialize(_ m: BlockMatrix, weights: (Int, UnsafeMutablePointer<Float>) -> Void, seed: UInt64) throws {
        let s = shapes[m.rawValue], L = config.depth
        let AC = s.scalerSize, BD = s.templateSize, N = s.count, rows = L * AC
        // R (rows × BD) in Double: layer l's rearranged matrix in rows [l·AC, (l+1)·AC).
        var R = [Double](repeating: 0, count: rows * BD)
        var sumSquares = 0.0
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * s.rows * s.cols) { tmp in
            let wl = tmp.baseAddress!, rl = wl + s.rows * s.cols
            for l in 0..<L {
                weights(l, wl)
                kroneckerRearrange(s, wl, rl, toRearranged: true)
                for i in 0..<(AC * BD) {
                    let x = Double(rl[i])
                    R[l * AC * BD + i] = x
                    sumSquares += x * x
                }
            }
        }
        // Top-N singular triplets through the smaller Gram matrix.
        let n = min(rows, BD)
        let small = rows <= BD  // Gram = R Rᵀ (rows × rows), else Rᵀ R (BD × BD)
        var gram = [Double](repeating: 0, count: n * n)
        cblas_dgemm(CblasRowMajor, small ? CblasNoTrans : CblasTrans, small ? CblasTrans : CblasNoTrans,
                    blasint(n), blasint(n), blasint(small ? BD : rows), 1, R, blasint(BD), R, blasint(BD), 0, &gram, blasint(n))
        let k = min(N, n)
        let (lambda, vectors) = try Spectral.leadingEigen(gram, n: n, count: k)  // descending
        let sigma1 = lambda.first.map { max($0, 0).squareRoot() } ?? 0
        let c = (Double(rows) / Double(N)).squareRoot()
        let rms = (sumSquares / Double(rows * BD)).squareRoot()
        var rng = RandomStream(seed: seed, stream: 0x7A4E_0000 + UInt32(m.rawValue))
        let T = templates(m)
        var u = [Double](repeating: 0, count: rows), v = [Double](repeating: 0, count: BD)
        for t in 0..<N {
            let sigma = t < k ? max(lambda[t], 0).squareRoot() : 0
            if t >= k || sigma1 == 0 || sigma <= 1e-6 * sigma1 {
                // Degenerate: zero scalers, a random template that can still learn.
                let std = Float(rms > 0 ? rms : (2.0 / Double(s.rows + s.cols)).squareRoot())
                rng.fillNormal(T + t * BD, count: BD, std: std)
                for l in 0..<L { (scalers(m, layer: l) + t * AC).update(repeating: 0, count: AC) }
                continue
            }
            let e = Array(vectors[(t * n)..<(t * n + n)])  // unit eigenvector
            if small {
                u = e
                // v = Rᵀ u / σ
                cblas_dgemv(CblasRowMajor, CblasTrans, blasint(rows), blasint(BD), 1 / sigma, R, blasint(BD), u, 1, 0, &v, 1)
            } else {
                v = e
                cblas_dgemv(CblasRowMajor, CblasNoTrans, blasint(rows), blasint(BD), 1 / sigma, R, blasint(BD), v, 1, 0, &u, 1)
            }
            let flip: Double = u.reduce(0, +) < 0 ? -1 : 1
            for i in 0..<BD { T[t * BD + i] = Float(flip * sigma / c * v[i]) }
            for l in 0..<L {
                let S = scalers(m, layer: l) + t * AC
                for i in 0..<AC { S[i] = Float(flip * c * u[l * AC + i]) }
            }
        }
    }

    /// ‖W − Ŵ‖/‖W‖ against `model`'s block weights (its dense parameters, or its hooked
    /// learngene's materialized weights), per matrix type over all layers and in total.
    public func approximationError(to model: DiTModel) -> WaveApproximationError {
        precondition(model.config == config, "approximationError: the model's config differs from the WAVE parameterization's")
        var per: [BlockMatrix: Double] = [:]
        var totalNum = 0.0, totalDen = 0.0
        for m in BlockMatrix.allCases {
            let s = shapes[m.rawValue], count = s.rows * s.cols
            var num = 0.0, den = 0.0
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * count) { buf in
                let w = buf.baseAddress!, what = w + count
                for l in 0..<config.depth {
                    Self.ancestryWeight(model, m, l, w)
                    denseWeight(m, layer: l, into: what)
                    for i in 0..<count {
                        let d = Double(w[i]) - Double(what[i])
                        num += d * d
                        den += Double(w[i]) * Double(w[i])
                    }
                }
            }
            per[m] = relative(num, den)
            totalNum += num
            totalDen += den
        }
        return WaveApproximationError(perMatrix: per, total: relative(totalNum, totalDen))
    }

    static func ancestryWeight(_ model: DiTModel, _ m: BlockMatrix, _ l: Int, _ out: UnsafeMutablePointer<Float>) {
        if let source = model.blockWeights as? any LearngeneParameterization {
            source.denseWeight(m, layer: l, into: out)
        } else {
            let (o, i) = m.shape(model.config)
            out.update(from: model.parameter("blocks.\(l).\(m.weightName)"), count: o * i)
        }
    }
}

private func relative(_ num: Double, _ den: Double) -> Double {
    den > 0 ? (num / den).squareRoot() : (num > 0 ? .infinity : 0)
}

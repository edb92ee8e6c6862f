import DiT
import Foundation
import Formats
import Tensors

/// FINE's settings (methods.md §3).
public struct FineSettings: Codable, Sendable, Equatable {
    /// How the factors start.
    public enum Initialization: String, Codable, Sendable, CaseIterable {
        /// From a trained ancestry DiT (`FineParameterization.fromAncestry`): U⋆ = the top-r
        /// eigenvectors of Σ_l W_l W_lᵀ, V⋆ = those of Σ_l W_lᵀ W_l, σ_l = diag(U⋆ᵀ W_l V⋆).
        case ancestry
        /// Random (`FineParameterization.random`): see there.
        case random
    }

    /// The rank r, one setting for all five matrix types, clamped per type to min(out, in)
    /// (r⋆ = min(rank, out⋆, in⋆); larger is never useful for orthonormal U, V). nil: full
    /// rank, r⋆ = min(out⋆, in⋆) = hidden size for every type.
    public var rank: Int?
    public var initialization: Initialization

    public init(rank: Int? = nil, initialization: Initialization = .ancestry) {
        self.rank = rank
        self.initialization = initialization
    }

    /// r⋆ for one matrix type of a config.
    public func rank(_ m: BlockMatrix, _ c: DiTConfig) -> Int {
        let (o, i) = m.shape(c)
        return min(rank ?? Int.max, o, i)
    }

    public func problems() -> [String] {
        if let r = rank, r < 1 { return ["fine rank \(r) must be at least 1 (or absent for full rank)"] }
        return []
    }
}

/// FINE (methods.md §3): per matrix type ⋆ ∈ {qkv, proj, fc1, fc2, adaLN} shared factors
/// U⋆, V⋆ and per layer a vector σ⋆^(l) ∈ ℝ^r, W⋆^(l) = U⋆ diag(σ⋆^(l)) V⋆ᵀ.
///
/// Storage: component-major, U⋆ as (r, out) and V⋆ as (r, in) (row k = the k-th column of
/// the paper's U⋆, V⋆), so the forward y = ((x V⋆) ⊙ σ) U⋆ᵀ runs as two sgemms and a scale
/// (`factoredLinearForward`), never materializing W. x V⋆ is kept per (matrix, layer) for
/// the backward (`FactoredScratch`).
///
/// Layout of `params`: every U⋆, V⋆ first (the learngene, one contiguous range), then every
/// σ⋆^(l) (the size-specific part, one contiguous range). Tensor names: `qkv.U` (r, 3D),
/// `qkv.V` (r, D), …, `blocks.<l>.qkv.sigma` (r), ….
public final class FineParameterization: LearngeneParameterization {
    public let method = LearngeneMethod.fine
    public let config: DiTConfig
    public let settings: FineSettings
    public let params: Tensor
    public let grads: Tensor
    public let tensors: [FactorTensor]
    public let learngeneRanges: [Range<Int>]
    public let sizeSpecificRanges: [Range<Int>]
    /// r⋆ per matrix type.
    public let ranks: [BlockMatrix: Int]

    private var uOffset: [Int] = [], vOffset: [Int] = [], sigmaOffset: [Int] = []
    private let scratch = FactoredScratch()

    /// Zero factors of the right shapes (fill them, or use `random`, `fromAncestry`, `load`).
    public init(config: DiTConfig, settings: FineSettings = .init()) {
        precondition(settings.problems().isEmpty, settings.problems().joined(separator: "; "))
        self.config = config
        self.settings = settings
        var ranks: [BlockMatrix: Int] = [:]
        for m in BlockMatrix.allCases { ranks[m] = settings.rank(m, config) }
        self.ranks = ranks
        var b = FactorLayoutBuilder()
        var uOff: [Int] = [], vOff: [Int] = [], sOff: [Int] = []
        for m in BlockMatrix.allCases {
            let (o, i) = m.shape(config), r = ranks[m]!
            uOff.append(b.add("\(m.shortName).U", [r, o]))
            vOff.append(b.add("\(m.shortName).V", [r, i]))
        }
        let split = b.count
        for l in 0..<config.depth {
            for m in BlockMatrix.allCases { sOff.append(b.add("blocks.\(l).\(m.shortName).sigma", [ranks[m]!])) }
        }
        tensors = b.tensors
        params = Tensor(shape: [b.count])
        grads = Tensor(shape: [b.count])
        learngeneRanges = [0..<split]
        sizeSpecificRanges = [split..<b.count]
        uOffset = uOff; vOffset = vOff; sigmaOffset = sOff
    }

    /// Pointers to the factors of one matrix type and one layer's σ.
    public func u(_ m: BlockMatrix) -> UnsafeMutablePointer<Float> { params.data + uOffset[m.rawValue] }
    public func v(_ m: BlockMatrix) -> UnsafeMutablePointer<Float> { params.data + vOffset[m.rawValue] }
    public func sigma(_ m: BlockMatrix, layer l: Int) -> UnsafeMutablePointer<Float> { params.data + sigmaOffset[m.key(layer: l)] }

    // MARK: - Initializations

    /// Random factors: rows of U⋆ ~ N(0, 1/out), rows of V⋆ ~ N(0, 1/in) (near unit norm),
    /// σ ~ N(0, s⋆²) with s⋆² = 2·out·in / (r (out + in)), so W has Xavier's variance; the
    /// adaLN σ are zero (DiT's adaLN-Zero: every block starts as the identity; σ still gets
    /// gradients, U and V follow once σ ≠ 0). Philox stream of `seed`, in tensor order.
    public static func random(config: DiTConfig, settings: FineSettings = .init(initialization: .random), seed: UInt64) -> FineParameterization {
        let f = FineParameterization(config: config, settings: settings)
        var rng = RandomStream(seed: seed, stream: 0xF1E)
        for m in BlockMatrix.allCases {
            let (o, i) = m.shape(config)
            fillRandomFactors(&rng, u: f.u(m), v: f.v(m), sigma: nil, OC: o, IC: i, rank: f.ranks[m]!)
        }
        var sigmas = RandomStream(seed: seed, stream: 0xF1F)
        for l in 0..<config.depth {
            for m in BlockMatrix.allCases where m != .adaLN {
                let (o, i) = m.shape(config), r = f.ranks[m]!
                sigmas.fillNormal(f.sigma(m, layer: l), count: r, std: xavierSigmaStd(OC: o, IC: i, rank: r))
            }
        }
        return f
    }

    /// FINE's factors fitted to a trained ancestry DiT of the same config: per type,
    /// U⋆ = the top-r eigenvectors of Σ_l W_l W_lᵀ and V⋆ = those of Σ_l W_lᵀ W_l (LAPACK
    /// dsyevd, in Double), then σ_l = diag(U⋆ᵀ W_l V⋆), the least-squares diagonal for the
    /// orthonormal U⋆, V⋆ (min ‖W_l − U⋆ diag(σ) V⋆ᵀ‖_F). When every W_l is U diag(σ_l) Vᵀ with
    /// shared orthonormal U, V of rank ≤ r, this recovers them exactly (up to signs). The
    /// condense stage then trains U, V, σ jointly from there.
    public static func fromAncestry(_ model: DiTModel, settings: FineSettings = .init()) throws -> FineParameterization {
        let c = model.config
        let f = FineParameterization(config: c, settings: settings)
        for m in BlockMatrix.allCases {
            let (o, i) = m.shape(c), r = f.ranks[m]!
            var gu = [Double](repeating: 0, count: o * o), gv = [Double](repeating: 0, count: i * i)
            for l in 0..<c.depth {
                let w = model.parameter("blocks.\(l).\(m.weightName)")
                Spectral.accumulateGram(&gu, w, rows: o, cols: i, transposed: false)
                Spectral.accumulateGram(&gv, w, rows: o, cols: i, transposed: true)
            }
            let u = try Spectral.leadingEigen(gu, n: o, count: r).vectors
            let v = try Spectral.leadingEigen(gv, n: i, count: r).vectors
            for j in 0..<(r * o) { f.u(m)[j] = Float(u[j]) }
            for j in 0..<(r * i) { f.v(m)[j] = Float(v[j]) }
            for l in 0..<c.depth {
                let w = model.parameter("blocks.\(l).\(m.weightName)"), s = f.sigma(m, layer: l)
                for k in 0..<r {
                    var acc = 0.0  // u_kᵀ W v_k
                    for a in 0..<o where u[k * o + a] != 0 {
                        var row = 0.0
                        for b in 0..<i { row += Double(w[a * i + b]) * v[k * i + b] }
                        acc += u[k * o + a] * row
                    }
                    s[k] = Float(acc)
                }
            }
        }
        return f
    }

    /// How a descendant's σ start (methods.md §3.3 Table 5).
    public enum SigmaInit: String, Codable, Sendable, CaseIterable {
        /// σ⋆^(l) ~ N(0, s⋆²), s⋆ the RMS of the learngene's σ⋆ over its layers and
        /// components. The ablation "Random": used as is (0 `init` steps).
        case random
        /// Every layer the mean over the learngene's layers of σ⋆^(l). Ablation, 0 steps.
        case identical
        /// σ interpolated in depth: descendant layer l' takes the learngene's σ at position
        /// p = l'·(L−1)/(L'−1) (`LayerMapping.position`), linear between ⌊p⌋ and ⌈p⌉. Ablation, 0 steps.
        case linear
        /// The paper's FINE: the same random draw as `random`, then trained by the `init`
        /// stage (`LearngeneTrainer` with phase `.initialize`, U and V frozen). This function
        /// only draws; the difference from `random` is the training that follows.
        case trained

        /// Whether the `init` stage must train σ before the descendant is used.
        public var needsTraining: Bool { self == .trained }
    }

    /// A FINE parameterization of another depth sharing this learngene (U⋆, V⋆ copied), σ
    /// per `sigmaInit` (random draws from a Philox stream of `seed`).
    public static func descendant(of learngene: FineParameterization, depth: Int, sigmaInit: SigmaInit,
                                  seed: UInt64 = 0) -> FineParameterization {
        var c = learngene.config
        c.depth = depth
        let f = FineParameterization(config: c, settings: learngene.settings)
        let lg = learngene.learngeneRanges[0]
        (f.params.data + lg.lowerBound).update(from: learngene.params.data + lg.lowerBound, count: lg.count)
        let L = learngene.config.depth
        var rng = RandomStream(seed: seed, stream: 0xF1E5)
        for m in BlockMatrix.allCases {
            let r = f.ranks[m]!
            let old = (0..<L).map { Array(UnsafeBufferPointer(start: learngene.sigma(m, layer: $0), count: r)) }
            for l in 0..<depth {
                let s = f.sigma(m, layer: l)
                switch sigmaInit {
                case .random, .trained:
                    let ms = old.joined().reduce(0.0) { $0 + Double($1) * Double($1) } / Double(L * r)
                    rng.fillNormal(s, count: r, std: Float(ms.squareRoot()))
                case .identical:
                    for k in 0..<r { s[k] = Float(old.reduce(0.0) { $0 + Double($1[k]) } / Double(L)) }
                case .linear:
                    let p = LayerMapping.position(l, depth: depth, ancestryDepth: L)
                    let lo = Int(p.rounded(.down)), hi = min(lo + 1, L - 1), f = Float(p - Double(lo))
                    for k in 0..<r { s[k] = (1 - f) * old[lo][k] + f * old[hi][k] }
                }
            }
        }
        return f
    }

    // MARK: - Files

    public var metadata: [String: String] {
        FactorFile.metadata(method: .fine, config: config, settings: settings, ranks: ranks)
    }

    /// A FINE parameterization from its `file()`. Refuses a file of another method, of
    /// another config than `expected` (when given), or whose tensors do not match its settings.
    public static func load(from file: SafeTensors.File, config expected: DiTConfig? = nil) throws -> FineParameterization {
        let (config, settings) = try FactorFile.header(file, method: .fine, expected: expected, settings: FineSettings.self)
        let problems = config.problems() + settings.problems()
        guard problems.isEmpty else { throw LearngeneError("the FINE file's settings are invalid: \(problems.joined(separator: "; "))") }
        let f = FineParameterization(config: config, settings: settings)
        try FactorFile.read(file, tensors: f.tensors, into: f.params, method: .fine)
        return f
    }

    // MARK: - BlockWeights

    public func forward(_ matrix: BlockMatrix, layer: Int, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                        rows M: Int, rowsPerSample: Int, labels: [Int]) {
        let (OC, IC) = matrix.shape(config), r = ranks[matrix]!
        factoredLinearForward(out: out, xv: scratch.xv(matrix.key(layer: layer), rows: M, rank: r),
                              h: scratch.scratch(0, rows: M, rank: r), inp: inp, u: u(matrix), v: v(matrix),
                              scale: sigma(matrix, layer: layer), rowsPerScale: M, M: M, IC: IC, OC: OC, rank: r)
    }

    public func backward(_ matrix: BlockMatrix, layer: Int, dInp: UnsafeMutablePointer<Float>?, dOut: UnsafePointer<Float>,
                         inp: UnsafePointer<Float>, rows M: Int, rowsPerSample: Int, labels: [Int], overwriteInput: Bool) {
        let (OC, IC) = matrix.shape(config), r = ranks[matrix]!
        let G = grads.data
        factoredLinearBackward(dInp: dInp, dU: G + uOffset[matrix.rawValue], dV: G + vOffset[matrix.rawValue],
                               dScale: G + sigmaOffset[matrix.key(layer: layer)], dOut: dOut,
                               xv: scratch.xv(matrix.key(layer: layer), rows: M, rank: r),
                               scratch1: scratch.scratch(0, rows: M, rank: r), scratch2: scratch.scratch(1, rows: M, rank: r),
                               inp: inp, u: u(matrix), v: v(matrix), scale: sigma(matrix, layer: layer), rowsPerScale: M,
                               M: M, IC: IC, OC: OC, rank: r, overwriteInput: overwriteInput)
    }

    public func denseWeight(_ matrix: BlockMatrix, layer: Int, into out: UnsafeMutablePointer<Float>) {
        let (OC, IC) = matrix.shape(config), r = ranks[matrix]!
        materializeFactored(out: out, u: u(matrix), v: v(matrix), scale: sigma(matrix, layer: layer), OC: OC, IC: IC, rank: r)
    }
}

/// W (OC, IC) = Uᵀ diag(s) V for component-major U (r, OC), V (r, IC).
func materializeFactored(out: UnsafeMutablePointer<Float>, u: UnsafePointer<Float>, v: UnsafePointer<Float>,
                         scale: UnsafePointer<Float>, OC: Int, IC: Int, rank r: Int) {
    let sv = Tensor(shape: [r, IC])
    for k in 0..<r {
        for i in 0..<IC { sv.data[k * IC + i] = scale[k] * v[k * IC + i] }
    }
    withExtendedLifetime(sv) {
        Blas.tn(m: OC, n: IC, k: r, a: u, b: sv.data, c: out)
    }
}

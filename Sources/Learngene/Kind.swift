import DiT
import Foundation
import Formats
import Tensors

/// KIND's settings (methods.md §2).
public struct KindSettings: Codable, Sendable, Equatable {
    /// Which tailors a class opens (the binary class gate g(c) ∈ {0,1}^{N_T}).
    public enum Gate: String, Codable, Sendable, CaseIterable {
        /// Tailors split into K contiguous groups, one per class, as equal as possible: class c
        /// opens tailors [⌊c·N_T/K⌋, ⌊(c+1)·N_T/K⌋). Needs N_T ≥ K.
        case partition
        /// Each class opens a fixed random half (⌊N_T/2⌋, at least 1) of the tailors, drawn
        /// with `gateSeed` per matrix type (DivControl's 288 of 576). Classes overlap.
        case randomHalf = "random-half"
    }

    public enum Initialization: String, Codable, Sendable, CaseIterable {
        /// Per-layer truncated SVD of the ancestry's W (`KindParameterization.fromAncestry`):
        /// the leading components (largest σ) are the learngenes, the next ones the tailors.
        case ancestry
        /// Random factors (`KindParameterization.random`).
        case random
    }

    /// Components r per matrix, one setting for all types, clamped per type to min(out, in);
    /// nil: full rank (r⋆ = hidden size).
    public var rank: Int?
    /// The learngene share: N_G⋆ = round(fraction · r⋆) leading components, N_T⋆ = r⋆ − N_G⋆ tailors.
    public var learngeneFraction: Double
    public var gate: Gate
    public var gateSeed: UInt64
    public var initialization: Initialization

    public init(rank: Int? = nil, learngeneFraction: Double = 0.5, gate: Gate = .partition, gateSeed: UInt64 = 0,
                initialization: Initialization = .ancestry) {
        self.rank = rank
        self.learngeneFraction = learngeneFraction
        self.gate = gate
        self.gateSeed = gateSeed
        self.initialization = initialization
    }

    /// (r⋆, N_G⋆) for one matrix type of a config.
    public func components(_ m: BlockMatrix, _ c: DiTConfig) -> (rank: Int, learngenes: Int) {
        let (o, i) = m.shape(c)
        let r = min(rank ?? Int.max, o, i)
        return (r, min(r, max(0, Int((learngeneFraction * Double(r)).rounded()))))
    }

    /// What makes these settings unusable for a config, each with the fix.
    public func problems(_ c: DiTConfig) -> [String] {
        var out: [String] = []
        if let r = rank, r < 1 { out.append("kind rank \(r) must be at least 1 (or absent for full rank)") }
        if !(0...1).contains(learngeneFraction) { out.append("kind learngene_fraction \(learngeneFraction) must be in [0, 1]") }
        if out.isEmpty, gate == .partition {
            for m in BlockMatrix.allCases {
                let (r, g) = components(m, c)
                if r - g > 0 && r - g < c.numClasses {
                    out.append("kind partition gate: \(m.shortName) has \(r - g) tailors for \(c.numClasses) classes; raise the rank, lower learngene_fraction, or use gate random-half")
                    break
                }
            }
        }
        return out
    }
}

/// KIND (methods.md §2): every block matrix of every layer as r SVD-shaped components
/// W = Σ_k u_k σ_k v_kᵀ; components [0, N_G) are learngenes (always on), [N_G, r) tailors,
/// switched per sample by the class gate: y = ((x V) ⊙ (σ ⊙ m(c))) Uᵀ with
/// m(c) = [1_{N_G}; g(c)], per sample and broadcast over its rows (`labels[row / rowsPerSample]`).
/// The null class (label = num_classes, classifier-free guidance's unconditional pass)
/// opens no tailor: it sees the learngenes only. All five matrix types are factored (adaLN
/// with one row per sample).
///
/// Storage per (layer, type), component-major so each part is a contiguous range:
/// `blocks.<l>.<type>.U` (r, out), `.sigma` (r), `.V` (r, in). The learngene ranges are the
/// first N_G rows of U and V and σ[0..<N_G]; the size-specific part (trained by `init`) the
/// tailors. `denseWeight` materializes the all-tailors-open matrix (not a class's); see
/// `denseWeight(_:layer:label:into:)` for one class.
public final class KindParameterization: LearngeneParameterization {
    public let method = LearngeneMethod.kind
    public let config: DiTConfig
    public let settings: KindSettings
    public let params: Tensor
    public let grads: Tensor
    public let tensors: [FactorTensor]
    public let learngeneRanges: [Range<Int>]
    public let sizeSpecificRanges: [Range<Int>]
    /// (r⋆, N_G⋆) per matrix type.
    public let components: [BlockMatrix: (rank: Int, learngenes: Int)]

    private var offsets: [(u: Int, sigma: Int, v: Int)] = []
    /// Per type: (K + 1) × r masks, row c = m(c), row K (null class) = learngenes only.
    private var masks: [Tensor] = []
    private let scratch = FactoredScratch()

    /// Zero factors of the right shapes.
    public init(config: DiTConfig, settings: KindSettings = .init()) throws {
        let problems = config.problems() + settings.problems(config)
        guard problems.isEmpty else { throw LearngeneError("KIND settings: \(problems.joined(separator: "; "))") }
        self.config = config
        self.settings = settings
        var comps: [BlockMatrix: (rank: Int, learngenes: Int)] = [:]
        for m in BlockMatrix.allCases { comps[m] = settings.components(m, config) }
        components = comps
        var b = FactorLayoutBuilder()
        var lg: [Range<Int>] = [], ss: [Range<Int>] = []
        var offs: [(u: Int, sigma: Int, v: Int)] = []
        for l in 0..<config.depth {
            for m in BlockMatrix.allCases {
                let (o, i) = m.shape(config), (r, g) = comps[m]!
                let p = "blocks.\(l).\(m.shortName)."
                let u = b.add(p + "U", [r, o]), s = b.add(p + "sigma", [r]), v = b.add(p + "V", [r, i])
                offs.append((u, s, v))
                for (start, width) in [(u, o), (s, 1), (v, i)] {
                    if g > 0 { lg.append(start..<(start + g * width)) }
                    if r > g { ss.append((start + g * width)..<(start + r * width)) }
                }
            }
        }
        tensors = b.tensors
        params = Tensor(shape: [b.count])
        grads = Tensor(shape: [b.count])
        learngeneRanges = lg
        sizeSpecificRanges = ss
        offsets = offs
        masks = BlockMatrix.allCases.map { Self.gateMasks($0, config: config, settings: settings, components: comps[$0]!) }
    }

    /// The (K + 1) × r masks m(c) of one matrix type.
    static func gateMasks(_ m: BlockMatrix, config c: DiTConfig, settings: KindSettings,
                          components: (rank: Int, learngenes: Int)) -> Tensor {
        let (r, g) = components, K = c.numClasses, nT = r - g
        let t = Tensor(shape: [K + 1, r])
        var rng = RandomStream(seed: settings.gateSeed, stream: 0x6A7E + UInt32(m.rawValue))
        for cls in 0...K {
            let row = t.data + cls * r
            for k in 0..<g { row[k] = 1 }
            guard cls < K, nT > 0 else { continue }  // the null class opens no tailor
            switch settings.gate {
            case .partition:
                for k in (cls * nT / K)..<((cls + 1) * nT / K) { row[g + k] = 1 }
            case .randomHalf:
                for k in rng.permutation(nT).prefix(max(1, nT / 2)) { row[g + k] = 1 }
            }
        }
        return t
    }

    /// m(c) of one matrix type (label = num_classes: the null class).
    public func mask(_ m: BlockMatrix, label: Int) -> [Float] {
        let r = components[m]!.rank
        return Array(UnsafeBufferPointer(start: masks[m.rawValue].data + label * r, count: r))
    }

    public func u(_ m: BlockMatrix, layer l: Int) -> UnsafeMutablePointer<Float> { params.data + offsets[m.key(layer: l)].u }
    public func sigma(_ m: BlockMatrix, layer l: Int) -> UnsafeMutablePointer<Float> { params.data + offsets[m.key(layer: l)].sigma }
    public func v(_ m: BlockMatrix, layer l: Int) -> UnsafeMutablePointer<Float> { params.data + offsets[m.key(layer: l)].v }

    // MARK: - Initializations

    /// Random factors (`fillRandomFactors`: near-unit-norm u, v; σ with Xavier's variance for
    /// W), adaLN σ zero (adaLN-Zero). Philox stream of `seed`, in tensor order.
    public static func random(config: DiTConfig, settings: KindSettings = .init(initialization: .random), seed: UInt64) throws -> KindParameterization {
        let k = try KindParameterization(config: config, settings: settings)
        var rng = RandomStream(seed: seed, stream: 0x4B1D)
        for l in 0..<config.depth {
            for m in BlockMatrix.allCases {
                let (o, i) = m.shape(config)
                fillRandomFactors(&rng, u: k.u(m, layer: l), v: k.v(m, layer: l), sigma: m == .adaLN ? nil : k.sigma(m, layer: l),
                                  OC: o, IC: i, rank: k.components[m]!.rank)
            }
        }
        return k
    }

    /// Per-layer truncated SVD of a trained ancestry of the same config (in Double, from the
    /// eigenvectors of the smaller Gram matrix): the r leading triples, the first N_G of them
    /// the learngenes. At full rank the factors reproduce W to rounding.
    public static func fromAncestry(_ model: DiTModel, settings: KindSettings = .init()) throws -> KindParameterization {
        let c = model.config
        let k = try KindParameterization(config: c, settings: settings)
        for l in 0..<c.depth {
            for m in BlockMatrix.allCases {
                let (o, i) = m.shape(c), r = k.components[m]!.rank
                let (u, s, v) = try Spectral.svd(model.parameter("blocks.\(l).\(m.weightName)"), out: o, in: i, rank: r)
                for j in 0..<(r * o) { k.u(m, layer: l)[j] = Float(u[j]) }
                for j in 0..<r { k.sigma(m, layer: l)[j] = Float(s[j]) }
                for j in 0..<(r * i) { k.v(m, layer: l)[j] = Float(v[j]) }
            }
        }
        return k
    }

    /// A descendant for another depth and/or class set (same width): the learngene
    /// components of descendant layer l' are those of learngene layer
    /// `LayerMapping.ancestryLayer(l')`; the tailors are fresh, rows of U and V random
    /// (near unit norm, Philox stream of `seed`) and their σ zero, so the descendant starts
    /// as its learngenes alone and `init` (phase `.initialize`) grows the tailors for the new
    /// classes (σ gets gradients at once, U and V once σ ≠ 0). The gate is rebuilt for
    /// `config.numClasses` with the learngene's settings.
    public static func descendant(of learngene: KindParameterization, config: DiTConfig, seed: UInt64 = 0) throws -> KindParameterization {
        let a = learngene.config
        guard a.hiddenSize == config.hiddenSize, a.mlpRatio == config.mlpRatio else {
            throw LearngeneError("a KIND descendant must keep the learngene's width (hidden_size \(a.hiddenSize), mlp_ratio \(a.mlpRatio)); asked for hidden_size \(config.hiddenSize), mlp_ratio \(config.mlpRatio)")
        }
        let d = try KindParameterization(config: config, settings: learngene.settings)
        var rng = RandomStream(seed: seed, stream: 0x4B1E)
        for l in 0..<config.depth {
            let src = LayerMapping.ancestryLayer(l, depth: config.depth, ancestryDepth: a.depth)
            for m in BlockMatrix.allCases {
                let (o, i) = m.shape(config), (r, g) = d.components[m]!
                d.u(m, layer: l).update(from: learngene.u(m, layer: src), count: g * o)
                d.sigma(m, layer: l).update(from: learngene.sigma(m, layer: src), count: g)
                d.v(m, layer: l).update(from: learngene.v(m, layer: src), count: g * i)
                fillRandomFactors(&rng, u: d.u(m, layer: l) + g * o, v: d.v(m, layer: l) + g * i, sigma: nil,
                                  OC: o, IC: i, rank: r - g)
            }
        }
        return d
    }

    // MARK: - Files

    public var metadata: [String: String] {
        var ranks: [BlockMatrix: Int] = [:]
        for m in BlockMatrix.allCases { ranks[m] = components[m]!.rank }
        var meta = FactorFile.metadata(method: .kind, config: config, settings: settings, ranks: ranks)
        meta["learngene.learngenes"] = BlockMatrix.allCases.map { "\($0.shortName):\(components[$0]!.learngenes)" }.joined(separator: ",")
        return meta
    }

    /// A KIND parameterization from its `file()`; refuses another method, another config than
    /// `expected` (when given), or tensors that do not match the settings.
    public static func load(from file: SafeTensors.File, config expected: DiTConfig? = nil) throws -> KindParameterization {
        let (config, settings) = try FactorFile.header(file, method: .kind, expected: expected, settings: KindSettings.self)
        let k = try KindParameterization(config: config, settings: settings)
        try FactorFile.read(file, tensors: k.tensors, into: k.params, method: .kind)
        return k
    }

    // MARK: - BlockWeights

    /// scales (N, r) = σ ⊙ m(label_n).
    private func sampleScales(_ m: BlockMatrix, layer l: Int, labels: [Int], into s: UnsafeMutablePointer<Float>) {
        let r = components[m]!.rank, sigma = self.sigma(m, layer: l), mk = masks[m.rawValue].data
        for (n, label) in labels.enumerated() {
            precondition((0...config.numClasses).contains(label), "KIND: label \(label) outside 0…\(config.numClasses)")
            let row = mk + label * r, out = s + n * r
            for k in 0..<r { out[k] = sigma[k] * row[k] }
        }
    }

    public func forward(_ matrix: BlockMatrix, layer: Int, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                        rows M: Int, rowsPerSample: Int, labels: [Int]) {
        let (OC, IC) = matrix.shape(config), r = components[matrix]!.rank
        precondition(M == labels.count * rowsPerSample, "KIND forward: \(M) rows for \(labels.count) labels")
        let scales = scratch.scratch(2, rows: M, rank: r)
        sampleScales(matrix, layer: layer, labels: labels, into: scales)
        factoredLinearForward(out: out, xv: scratch.xv(matrix.key(layer: layer), rows: M, rank: r),
                              h: scratch.scratch(0, rows: M, rank: r), inp: inp, u: u(matrix, layer: layer), v: v(matrix, layer: layer),
                              scale: scales, rowsPerScale: rowsPerSample, M: M, IC: IC, OC: OC, rank: r)
    }

    public func backward(_ matrix: BlockMatrix, layer: Int, dInp: UnsafeMutablePointer<Float>?, dOut: UnsafePointer<Float>,
                         inp: UnsafePointer<Float>, rows M: Int, rowsPerSample: Int, labels: [Int], overwriteInput: Bool) {
        let (OC, IC) = matrix.shape(config), r = components[matrix]!.rank, N = labels.count
        let o = offsets[matrix.key(layer: layer)], G = grads.data
        let scales = scratch.scratch(2, rows: M, rank: r), dScales = scratch.scratch(3, rows: M, rank: r)
        sampleScales(matrix, layer: layer, labels: labels, into: scales)
        dScales.update(repeating: 0, count: N * r)
        factoredLinearBackward(dInp: dInp, dU: G + o.u, dV: G + o.v, dScale: dScales, dOut: dOut,
                               xv: scratch.xv(matrix.key(layer: layer), rows: M, rank: r),
                               scratch1: scratch.scratch(0, rows: M, rank: r), scratch2: scratch.scratch(1, rows: M, rank: r),
                               inp: inp, u: u(matrix, layer: layer), v: v(matrix, layer: layer), scale: scales,
                               rowsPerScale: rowsPerSample, M: M, IC: IC, OC: OC, rank: r, overwriteInput: overwriteInput)
        // dσ_k = Σ_n dScale[n, k] · m_k(c_n), samples in order.
        let dSigma = G + o.sigma, mk = masks[matrix.rawValue].data
        for (n, label) in labels.enumerated() {
            let row = mk + label * r, ds = dScales + n * r
            for k in 0..<r { dSigma[k] += ds[k] * row[k] }
        }
    }

    /// The matrix with every component on (learngenes and all tailors).
    public func denseWeight(_ matrix: BlockMatrix, layer: Int, into out: UnsafeMutablePointer<Float>) {
        let (OC, IC) = matrix.shape(config)
        materializeFactored(out: out, u: u(matrix, layer: layer), v: v(matrix, layer: layer), scale: sigma(matrix, layer: layer),
                            OC: OC, IC: IC, rank: components[matrix]!.rank)
    }

    /// The matrix class `label` sees: learngenes plus its open tailors (num_classes: the null
    /// class, learngenes only).
    public func denseWeight(_ matrix: BlockMatrix, layer: Int, label: Int, into out: UnsafeMutablePointer<Float>) {
        let (OC, IC) = matrix.shape(config), r = components[matrix]!.rank
        let s = Tensor(shape: [r])
        sampleScales(matrix, layer: layer, labels: [label], into: s.data)
        withExtendedLifetime(s) {
            materializeFactored(out: out, u: u(matrix, layer: layer), v: v(matrix, layer: layer), scale: s.data, OC: OC, IC: IC, rank: r)
        }
    }
}

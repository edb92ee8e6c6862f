import DiT
import Foundation
import Formats
import Tensors

/// The template bank of one matrix type: `count` templates of `rows × cols`.
public struct WaveTemplateShape: Codable, Sendable, Equatable, Hashable {
    public var rows: Int
    public var cols: Int
    public var count: Int
    public init(rows: Int, cols: Int, count: Int) {
        self.rows = rows
        self.cols = cols
        self.count = count
    }
}

/// WAVE's settings: the template size (w1, w2) and count N⋆ per matrix type ⋆.
public struct WaveSettings: Codable, Sendable, Equatable, Hashable {
    /// One entry per `BlockMatrix`, in `BlockMatrix.allCases` order.
    public var templates: [WaveTemplateShape]

    /// The same template bank shape for every matrix type.
    public init(templateRows: Int, templateCols: Int, count: Int) {
        templates = BlockMatrix.allCases.map { _ in WaveTemplateShape(rows: templateRows, cols: templateCols, count: count) }
    }

    /// Square templates of `templateSize` for every matrix type.
    public init(templateSize: Int, count: Int) {
        self.init(templateRows: templateSize, templateCols: templateSize, count: count)
    }

    /// A bank shape per matrix type.
    public init(_ shape: (BlockMatrix) -> WaveTemplateShape) {
        templates = BlockMatrix.allCases.map(shape)
    }

    public subscript(_ m: BlockMatrix) -> WaveTemplateShape {
        get { templates[m.rawValue] }
        set { templates[m.rawValue] = newValue }
    }

    /// The Kronecker shape of matrix type `m` in a DiT of config `c`.
    public func shape(_ m: BlockMatrix, _ c: DiTConfig) -> KroneckerShape {
        let (o, i) = m.shape(c), t = self[m]
        return KroneckerShape(rows: o, cols: i, tileRows: t.rows, tileCols: t.cols, count: t.count)
    }

    /// What makes these settings unusable for a DiT of config `c`, each with its fix (empty
    /// when fine). The template size must divide both dimensions of every matrix it serves.
    public func problems(for c: DiTConfig) -> [String] {
        guard templates.count == BlockMatrix.allCases.count else {
            return ["WAVE settings list \(templates.count) template banks, one per block matrix (\(BlockMatrix.allCases.count)) is needed"]
        }
        var out: [String] = []
        for m in BlockMatrix.allCases {
            let t = self[m], (o, i) = m.shape(c)
            if t.count < 1 { out.append("WAVE \(m.shortName): template count \(t.count) must be at least 1") }
            if t.rows < 1 || t.cols < 1 {
                out.append("WAVE \(m.shortName): template size \(t.rows)×\(t.cols) must be positive")
            } else if o % t.rows != 0 || i % t.cols != 0 {
                let rowDivisors = divisors(o).filter { i % $0 == 0 }
                out.append("WAVE \(m.shortName): template size \(t.rows)×\(t.cols) does not divide the \(o)×\(i) matrix of hidden size \(c.hiddenSize); "
                           + "pick template rows dividing \(o) and columns dividing \(i) (square sizes that work: \(rowDivisors.map(String.init).joined(separator: ", ")))")
            }
        }
        return out
    }

    /// A readable summary for logs: `qkv 32×32×4, proj 32×32×4, …`.
    public var summary: String {
        BlockMatrix.allCases.map { m in "\(m.shortName) \(self[m].rows)×\(self[m].cols)×\(self[m].count)" }.joined(separator: ", ")
    }
}

private func divisors(_ n: Int) -> [Int] { (1...max(1, n)).filter { n % $0 == 0 } }

/// WAVE (methods.md §4) on a DiT's block matrices: per matrix type ⋆ ∈ {qkv, proj, fc1, fc2,
/// adaLN} a bank of N⋆ shared **templates** T⋆^(t) (w1 × w2, the learngene) and per layer l
/// **scalers** S⋆^(l,t) ((m1/w1) × (m2/w2), size-specific), with
///
///     W⋆^(l) = Σ_t S⋆^(l,t) ⊗ T⋆^(t)          (tile-and-weight order, §4.1)
///
/// so block (i, j) of W is Σ_t S_ij T^(t). The product is computed by reshaping (one sgemm
/// and an axis permutation, `kroneckerSumForward`), never as explicit Kronecker matrices.
///
/// **Layout** of `params` (and of the saved file): first every bank `templates.<type>`
/// (N, w1, w2), types in `BlockMatrix` order — the learngene, one contiguous range — then
/// every `scalers.<type>` (L, N, m1/w1, m2/w2) — the size-specific part.
///
/// **Serving the DiT.** As a host model's `blockWeights`, each (type, layer) weight W is
/// materialized densely once and kept; the forward and backward then run the ordinary
/// `linearForward` / `linearBackward` with it, and the backward's dW (a scratch) is mapped
/// back to dS and dT (`kroneckerSumBackward`). **Staleness is detected by content**: each
/// cached W remembers the bits of the scalers it was built from (a snapshot of that layer's
/// scaler slice) and the version of its type's templates (bumped whenever the template bank
/// differs from its snapshot). `forward` compares these before use (a memcmp of at most a
/// bank and a scaler grid, tiny next to the products) and rebuilds what changed. No
/// `prepare()` call is needed after an optimizer step, a `load`, an EMA swap or a direct
/// write into `params`; `invalidateCache()` exists only to free or force a rebuild.
/// `backward` uses the W of the matching `forward`.
///
/// Initialization: `init(config:settings:)` gives all zeros; `condense(from:settings:
/// initialization:seed:)` (WaveParameterization+Init.swift) starts from an ancestry DiT
/// (Van Loan–Pitsianis) or at random, and `approximationError(to:)` measures the fit;
/// `descendant(for:scalers:seed:)` and `descendantModel` (WaveDescendant.swift) grow other
/// depths and widths over the same templates. Files: `file()` and `load(from:config:)`.
public final class WaveParameterization: LearngeneParameterization, @unchecked Sendable {
    public var method: LearngeneMethod { .wave }
    public let config: DiTConfig
    public let settings: WaveSettings
    public let params: Tensor
    public let grads: Tensor
    public let tensors: [FactorTensor]
    public let learngeneRanges: [Range<Int>]
    public let sizeSpecificRanges: [Range<Int>]

    /// Kronecker shape per matrix type (indexed by `BlockMatrix.rawValue`).
    public let shapes: [KroneckerShape]
    /// Offset of each type's template bank (N × w1 × w2) in `params`.
    let templateOffsets: [Int]
    /// Offset of each type's scalers (L × N × A × C) in `params`.
    let scalerOffsets: [Int]

    // Dense cache (see the type's doc comment).
    private var dense: [Tensor?]               // per (layer, type)
    private var builtTemplateVersion: [Int]    // per (layer, type): templateVersion used
    private let snapshot: Tensor               // params bits the cache was built from
    private var templateVersion: [Int]         // per type
    private var scratchR: [Tensor] = []        // per type, m1·m2 (rearranged product)
    private var scratchDW: [Tensor] = []       // per type, m1·m2 (dW of one call)
    /// How many dense weights have been (re)built; for tests and logs.
    public private(set) var denseBuilds = 0

    /// A parameterization with every template and scaler zero.
    public init(config: DiTConfig, settings: WaveSettings) throws {
        let problems = config.problems() + settings.problems(for: config)
        guard problems.isEmpty else { throw LearngeneError(problems.joined(separator: "; ")) }
        self.config = config
        self.settings = settings
        let shapes = BlockMatrix.allCases.map { settings.shape($0, config) }
        self.shapes = shapes
        var tensors: [FactorTensor] = []
        var offset = 0
        var tOff: [Int] = [], sOff: [Int] = []
        for m in BlockMatrix.allCases {
            let s = shapes[m.rawValue]
            tOff.append(offset)
            tensors.append(FactorTensor(name: "templates.\(m.shortName)", offset: offset, shape: [s.count, s.tileRows, s.tileCols]))
            offset += s.count * s.templateSize
        }
        let learngeneEnd = offset
        for m in BlockMatrix.allCases {
            let s = shapes[m.rawValue]
            sOff.append(offset)
            tensors.append(FactorTensor(name: "scalers.\(m.shortName)", offset: offset,
                                        shape: [config.depth, s.count, s.gridRows, s.gridCols]))
            offset += config.depth * s.count * s.scalerSize
        }
        self.tensors = tensors
        templateOffsets = tOff
        scalerOffsets = sOff
        learngeneRanges = [0..<learngeneEnd]
        sizeSpecificRanges = [learngeneEnd..<offset]
        params = Tensor(shape: [offset])
        grads = Tensor(shape: [offset])
        snapshot = Tensor(shape: [offset])
        let slots = config.depth * BlockMatrix.allCases.count
        dense = Array(repeating: nil, count: slots)
        builtTemplateVersion = Array(repeating: -1, count: slots)
        templateVersion = Array(repeating: 0, count: BlockMatrix.allCases.count)
        snapshot.copy(from: params)
    }

    // MARK: - Addressing

    /// The template bank of type `m`: N × w1 × w2.
    public func templates(_ m: BlockMatrix) -> UnsafeMutablePointer<Float> { params.data + templateOffsets[m.rawValue] }
    /// The scalers of type `m` at layer `l`: N × A × C.
    public func scalers(_ m: BlockMatrix, layer l: Int) -> UnsafeMutablePointer<Float> {
        params.data + scalerOffset(m, l)
    }
    func templateRange(_ m: BlockMatrix) -> Range<Int> {
        let s = shapes[m.rawValue]
        return templateOffsets[m.rawValue]..<(templateOffsets[m.rawValue] + s.count * s.templateSize)
    }
    func scalerOffset(_ m: BlockMatrix, _ l: Int) -> Int {
        let s = shapes[m.rawValue]
        return scalerOffsets[m.rawValue] + l * s.count * s.scalerSize
    }
    func scalerRange(_ m: BlockMatrix, _ l: Int) -> Range<Int> {
        let o = scalerOffset(m, l)
        return o..<(o + shapes[m.rawValue].count * shapes[m.rawValue].scalerSize)
    }
    private func slot(_ m: BlockMatrix, _ l: Int) -> Int { l * BlockMatrix.allCases.count + m.rawValue }

    /// Template floats (the learngene) and scaler floats (size-specific) per matrix type.
    public var parameterCounts: [(matrix: BlockMatrix, templates: Int, scalers: Int)] {
        BlockMatrix.allCases.map { m in
            let s = shapes[m.rawValue]
            return (m, s.count * s.templateSize, config.depth * s.count * s.scalerSize)
        }
    }

    // MARK: - Dense weights

    public func denseWeight(_ matrix: BlockMatrix, layer: Int, into out: UnsafeMutablePointer<Float>) {
        precondition((0..<config.depth).contains(layer), "WAVE: layer \(layer) outside 0..<\(config.depth)")
        let s = shapes[matrix.rawValue]
        withUnsafeTemporaryAllocation(of: Float.self, capacity: s.rows * s.cols) { r in
            kroneckerSumForward(out: out, scratch: r.baseAddress!, scalers: scalers(matrix, layer: layer),
                                templates: templates(matrix), shape: s)
        }
    }

    /// Drops every cached dense weight (they are rebuilt on the next `forward`).
    public func invalidateCache() {
        for i in dense.indices { dense[i] = nil; builtTemplateVersion[i] = -1 }
    }

    private func sameBits(_ r: Range<Int>) -> Bool {
        memcmp(params.data + r.lowerBound, snapshot.data + r.lowerBound, r.count * MemoryLayout<Float>.stride) == 0
    }

    private func scratch(_ m: BlockMatrix) -> (r: Tensor, dW: Tensor) {
        if scratchR.isEmpty {
            scratchR = shapes.map { Tensor(shape: [$0.rows * $0.cols]) }
            scratchDW = shapes.map { Tensor(shape: [$0.rows * $0.cols]) }
        }
        return (scratchR[m.rawValue], scratchDW[m.rawValue])
    }

    /// The dense W of (m, l), rebuilt when its templates or scalers changed since it was built.
    func cachedDense(_ m: BlockMatrix, _ l: Int) -> Tensor {
        let tr = templateRange(m), sr = scalerRange(m, l), k = slot(m, l)
        if !sameBits(tr) {
            templateVersion[m.rawValue] += 1
            Ops.copy(params.data + tr.lowerBound, to: snapshot.data + tr.lowerBound, count: tr.count)
        }
        if let w = dense[k], builtTemplateVersion[k] == templateVersion[m.rawValue], sameBits(sr) { return w }
        let s = shapes[m.rawValue]
        let w = dense[k] ?? Tensor(shape: [s.rows, s.cols])
        Ops.copy(params.data + sr.lowerBound, to: snapshot.data + sr.lowerBound, count: sr.count)
        kroneckerSumForward(out: w.data, scratch: scratch(m).r.data, scalers: params.data + sr.lowerBound,
                            templates: params.data + tr.lowerBound, shape: s)
        dense[k] = w
        builtTemplateVersion[k] = templateVersion[m.rawValue]
        denseBuilds += 1
        return w
    }

    // MARK: - BlockWeights

    public func forward(_ matrix: BlockMatrix, layer: Int, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                        rows M: Int, rowsPerSample: Int, labels: [Int]) {
        let s = shapes[matrix.rawValue]
        let w = cachedDense(matrix, layer)
        linearForward(out: out, inp: inp, weight: w.data, bias: nil, M: M, IC: s.cols, OC: s.rows)
    }

    public func backward(_ matrix: BlockMatrix, layer: Int, dInp: UnsafeMutablePointer<Float>?, dOut: UnsafePointer<Float>,
                         inp: UnsafePointer<Float>, rows M: Int, rowsPerSample: Int, labels: [Int], overwriteInput: Bool) {
        let s = shapes[matrix.rawValue]
        guard let w = dense[slot(matrix, layer)] else {
            preconditionFailure("WAVE backward of \(matrix.shortName) layer \(layer) without its forward")
        }
        let (r, dW) = scratch(matrix)
        dW.zero()
        linearBackward(dInp: dInp, dWeight: dW.data, dBias: nil, dOut: dOut, inp: inp, weight: w.data,
                       M: M, IC: s.cols, OC: s.rows, overwriteInput: overwriteInput)
        let so = scalerOffset(matrix, layer), to = templateOffsets[matrix.rawValue]
        // The factors as of the forward (the snapshot), so a write into params between forward
        // and backward cannot mix two parameter states into one gradient.
        kroneckerSumBackward(dScalers: grads.data + so, dTemplates: grads.data + to, scratch: r.data, dOut: dW.data,
                             scalers: snapshot.data + so, templates: snapshot.data + to, shape: s)
    }

    // MARK: - Files

    /// `FactorFile`'s metadata (method, config, settings; the template counts N⋆ as the
    /// "rank", which they are: the rank of the rearranged matrix) plus a readable summary.
    public var metadata: [String: String] {
        var meta = FactorFile.metadata(method: .wave, config: config, settings: settings,
                                       ranks: Dictionary(uniqueKeysWithValues: BlockMatrix.allCases.map { ($0, settings[$0].count) }))
        meta["learngene.wave.templates"] = settings.summary
        return meta
    }

    /// A WAVE parameterization from its `file()`. Refuses a file of another method, of
    /// another config than `expected` (when given, naming the fields that differ), with
    /// settings that do not fit its config, or with missing, misshapen or extra tensors.
    public static func load(from file: SafeTensors.File, config expected: DiTConfig? = nil) throws -> WaveParameterization {
        let (config, settings) = try FactorFile.header(file, method: .wave, expected: expected, settings: WaveSettings.self)
        let w: WaveParameterization
        do { w = try WaveParameterization(config: config, settings: settings) } catch let e as LearngeneError {
            throw LearngeneError("the WAVE file's settings do not fit its own config: \(e.description); re-export it")
        }
        try FactorFile.read(file, tensors: w.tensors, into: w.params, method: .wave)
        return w
    }
}

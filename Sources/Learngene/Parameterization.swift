import DiT
import Formats
import Tensors

/// The three ways of condensing an ancestry DiT into learngenes.
public enum LearngeneMethod: String, Codable, Sendable, CaseIterable {
    /// FINE: shared U⋆, V⋆ per matrix type, a σ vector per layer (methods.md §3).
    case fine
    /// KIND: per-layer SVD-shaped components split into learngenes and class-gated tailors (§2).
    case kind
    /// WAVE: shared weight templates per matrix type, per-layer Kronecker scalers (§4).
    case wave
}

/// One named tensor inside a parameterization's flat buffer.
public struct FactorTensor: Sendable, Equatable {
    public var name: String
    public var offset: Int
    public var shape: [Int]
    public var count: Int { shape.reduce(1, *) }
    public init(name: String, offset: Int, shape: [Int]) {
        self.name = name
        self.offset = offset
        self.shape = shape
    }
}

/// A learngene parameterization of a DiT's block matrices. It serves the matrices to a host
/// `DiTModel` through `BlockWeights` and owns its parameters in one flat buffer (with a
/// name table, so it saves as safetensors). Its parameters split into the learngene (the
/// size-agnostic part that is condensed and transferred) and the size-specific part (what
/// `init` trains for a descendant: FINE's σ, WAVE's scalers, KIND's tailors).
public protocol LearngeneParameterization: BlockWeights {
    var method: LearngeneMethod { get }
    /// The host model's config this parameterization serves (depth, width).
    var config: DiTConfig { get }
    /// All parameters, laid out by `tensors`.
    var params: Tensor { get }
    /// Gradients, same layout; `backward` accumulates into it.
    var grads: Tensor { get }
    /// Name → (offset, shape) of every tensor in `params`.
    var tensors: [FactorTensor] { get }
    /// Ranges of `params` holding the learngene (transferred, frozen during `init`).
    var learngeneRanges: [Range<Int>] { get }
    /// Ranges of `params` holding the size-specific part (trained during `init`).
    var sizeSpecificRanges: [Range<Int>] { get }
    /// The dense weight (out, in) of one block matrix, materialized (export and tests).
    func denseWeight(_ matrix: BlockMatrix, layer: Int, into out: UnsafeMutablePointer<Float>)
    /// Settings and anything else needed to rebuild the parameterization from its tensors,
    /// stored as safetensors metadata.
    var metadata: [String: String] { get }
}

extension LearngeneParameterization {
    public func zeroGrad() { grads.zero() }

    /// Floats in the learngene part (what is stored and transferred).
    public var learngeneCount: Int { learngeneRanges.reduce(0) { $0 + $1.count } }
    /// Floats in the size-specific part.
    public var sizeSpecificCount: Int { sizeSpecificRanges.reduce(0) { $0 + $1.count } }

    /// The parameters as a safetensors file (F32, one tensor per factor, with `metadata`).
    public func file(extra: [String: String] = [:]) -> SafeTensors.File {
        var file = SafeTensors.File(metadata: metadata.merging(extra) { _, new in new })
        for t in tensors {
            file.tensors[t.name] = .f32(UnsafeBufferPointer(start: params.data + t.offset, count: t.count), shape: t.shape)
        }
        return file
    }

    /// Writes every block matrix, materialized, into the matching slots of a dense model of
    /// the same config (biases and non-block parameters are the caller's).
    public func writeDenseWeights(into model: DiTModel) {
        precondition(model.config == config, "writeDenseWeights: config mismatch")
        for l in 0..<config.depth {
            for m in BlockMatrix.allCases {
                denseWeight(m, layer: l, into: model.parameter("blocks.\(l).\(m.weightName)"))
            }
        }
    }
}

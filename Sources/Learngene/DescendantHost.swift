import DiT
import Foundation
import Tensors

/// Which ancestry layer a descendant layer corresponds to, when depths differ: descendant
/// layer l' of L' sits at position p = l'·(L−1)/(L'−1) in an ancestry of depth L (first to
/// first, last to last, evenly between; a depth-1 descendant sits at the middle, (L−1)/2).
public enum LayerMapping {
    public static func position(_ l: Int, depth: Int, ancestryDepth L: Int) -> Double {
        precondition(depth >= 1 && L >= 1 && (0..<depth).contains(l))
        if depth == 1 { return Double(L - 1) / 2 }
        return Double(l) * Double(L - 1) / Double(depth - 1)
    }

    /// The nearest ancestry layer, round(p) with halves away from zero (up).
    public static func ancestryLayer(_ l: Int, depth: Int, ancestryDepth L: Int) -> Int {
        min(L - 1, Int(position(l, depth: depth, ancestryDepth: L).rounded(.toNearestOrAwayFromZero)))
    }
}

/// Builds the dense host DiT of a descendant from an ancestry DiT: everything that is not a
/// block weight matrix, which the learngene parameterization (`blockWeights`) serves.
///
/// - Non-block parameters (patch, timestep and label embedders, final layer) are copied.
///   When the class count differs (a new label set), the label table is freshly drawn as
///   DiT's init (N(0, 0.02), Philox stream of `seed`) except the null-class row (the
///   unconditional embedding, class-agnostic), which is copied when both have one.
/// - The biases of descendant layer l' come from ancestry layer
///   `LayerMapping.ancestryLayer(l')` = round(l'·(L−1)/(L'−1)).
/// - The block weight slots are left zero: the host must run with `blockWeights` set (or
///   have them written by `writeDenseWeights`).
/// - Width changes (hidden size, MLP ratio) and changes of the token geometry (input size,
///   patch size, channels) are refused: FINE's and KIND's factors fix the width, and the
///   embedders could not be copied.
public enum DescendantHost {
    public static func build(target: DiTConfig, ancestry: DiTModel, method: LearngeneMethod, seed: UInt64 = 0) throws -> DiTModel {
        let a = ancestry.config
        let problems = target.problems()
        guard problems.isEmpty else { throw LearngeneError("descendant config is invalid: \(problems.joined(separator: "; "))") }
        if a.hiddenSize != target.hiddenSize || a.mlpRatio != target.mlpRatio {
            throw LearngeneError("a \(method.rawValue.uppercased()) descendant must keep the ancestry's width (hidden_size \(a.hiddenSize), mlp_ratio \(a.mlpRatio)); asked for hidden_size \(target.hiddenSize), mlp_ratio \(target.mlpRatio). The shared factors fix the matrix shapes: vary the depth instead")
        }
        if a.inputSize != target.inputSize || a.patchSize != target.patchSize || a.inChannels != target.inChannels
            || a.frequencyEmbeddingSize != target.frequencyEmbeddingSize {
            throw LearngeneError("a descendant must keep the ancestry's token geometry (\(FactorFile.differences(a, target).joined(separator: ", ")), ancestry vs asked): the embedders and final layer are copied as they are")
        }
        let host = DiTModel(config: target)
        let table = "y_embedder.embedding_table.weight"
        for e in host.layout.entries {
            let dst = host.params.data + e.offset
            if e.name.hasPrefix("blocks.") {
                let parts = e.name.split(separator: ".", maxSplits: 2)
                guard let l = Int(parts[1]), BlockMatrix.allCases.contains(where: { $0.biasName == parts[2] }) else { continue }
                let src = "blocks.\(LayerMapping.ancestryLayer(l, depth: target.depth, ancestryDepth: a.depth)).\(parts[2])"
                dst.update(from: ancestry.parameter(src), count: e.count)
            } else if e.name == table, ancestry.layout[table]!.shape != e.shape {
                var rng = RandomStream(seed: seed, stream: 0xDE5C)
                rng.fillNormal(dst, count: e.count, std: 0.02)
                let D = target.hiddenSize
                if target.classDropoutProb > 0, a.classDropoutProb > 0 {
                    (dst + target.numClasses * D).update(from: ancestry.parameter(table) + a.numClasses * D, count: D)
                }
            } else {
                guard let src = ancestry.layout[e.name], src.shape == e.shape else {
                    throw LearngeneError("the descendant's \(e.name) \(e.shape) has no counterpart of that shape in the ancestry (\(ancestry.layout[e.name].map { "\($0.shape)" } ?? "absent")); keep the ancestry's conditioning and output settings")
                }
                dst.update(from: ancestry.params.data + src.offset, count: e.count)
            }
        }
        return host
    }
}

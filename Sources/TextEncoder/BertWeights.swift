import Formats
import Tensors

/// A BERT's weights, read from a HF `BertModel` state dict (safetensors) under HF's key names.
/// Keys may carry a prefix (`bert.` in task models); the pooler and `position_ids` are ignored.
/// Linear weights stay in PyTorch's (out, in) layout; Q, K and V are stacked into one
/// (3·hidden, hidden) matrix so a layer's projections are one product.
public final class BertWeights: Sendable {
    public struct Layer: Sendable {
        public let qkvWeight: Tensor       // (3C, C): query, key, value rows
        public let qkvBias: Tensor         // (3C)
        public let attentionOutWeight: Tensor  // (C, C)
        public let attentionOutBias: Tensor    // (C)
        public let attentionNormWeight: Tensor, attentionNormBias: Tensor  // (C)
        public let intermediateWeight: Tensor  // (I, C)
        public let intermediateBias: Tensor    // (I)
        public let outputWeight: Tensor        // (C, I)
        public let outputBias: Tensor          // (C)
        public let outputNormWeight: Tensor, outputNormBias: Tensor  // (C)
    }

    public let wordEmbeddings: Tensor      // (V, C)
    public let positionEmbeddings: Tensor  // (P, C)
    public let tokenTypeEmbeddings: Tensor // (types, C); only type 0 is used
    public let embeddingNormWeight: Tensor, embeddingNormBias: Tensor  // (C)
    public let layers: [Layer]

    public init(_ file: SafeTensors.File, config c: BertConfig) throws {
        let suffix = "embeddings.word_embeddings.weight"
        guard let wordKey = file.tensors.keys.filter({ $0.hasSuffix(suffix) }).min(by: { $0.count < $1.count }) else {
            throw TextEncoderError("the weights have no \(suffix)", fix: "use a HF BertModel model.safetensors")
        }
        let prefix = String(wordKey.dropLast(suffix.count))
        func tensor(_ name: String, _ shape: [Int]) throws -> Tensor {
            guard let e = file[prefix + name] else {
                throw TextEncoderError("the weights have no \(prefix + name)", fix: "use a HF BertModel model.safetensors matching config.json")
            }
            guard e.shape == shape else {
                throw TextEncoderError("\(prefix + name) has shape \(e.shape), config.json implies \(shape)",
                                       fix: "use the config.json that came with these weights")
            }
            return e.tensor()
        }
        let C = c.hidden, I = c.intermediate
        wordEmbeddings = try tensor("embeddings.word_embeddings.weight", [c.vocabularySize, C])
        positionEmbeddings = try tensor("embeddings.position_embeddings.weight", [c.maxPositions, C])
        tokenTypeEmbeddings = try tensor("embeddings.token_type_embeddings.weight", [c.typeVocabularySize, C])
        embeddingNormWeight = try tensor("embeddings.LayerNorm.weight", [C])
        embeddingNormBias = try tensor("embeddings.LayerNorm.bias", [C])
        layers = try (0..<c.layers).map { l in
            let p = "encoder.layer.\(l)."
            let qkvW = Tensor(shape: [3 * C, C]), qkvB = Tensor(shape: [3 * C])
            for (i, name) in ["query", "key", "value"].enumerated() {
                let w = try tensor(p + "attention.self.\(name).weight", [C, C])
                let b = try tensor(p + "attention.self.\(name).bias", [C])
                Ops.copy(w.data, to: qkvW.data + i * C * C, count: C * C)
                Ops.copy(b.data, to: qkvB.data + i * C, count: C)
            }
            return Layer(
                qkvWeight: qkvW, qkvBias: qkvB,
                attentionOutWeight: try tensor(p + "attention.output.dense.weight", [C, C]),
                attentionOutBias: try tensor(p + "attention.output.dense.bias", [C]),
                attentionNormWeight: try tensor(p + "attention.output.LayerNorm.weight", [C]),
                attentionNormBias: try tensor(p + "attention.output.LayerNorm.bias", [C]),
                intermediateWeight: try tensor(p + "intermediate.dense.weight", [I, C]),
                intermediateBias: try tensor(p + "intermediate.dense.bias", [I]),
                outputWeight: try tensor(p + "output.dense.weight", [C, I]),
                outputBias: try tensor(p + "output.dense.bias", [C]),
                outputNormWeight: try tensor(p + "output.LayerNorm.weight", [C]),
                outputNormBias: try tensor(p + "output.LayerNorm.bias", [C]))
        }
    }
}

import Formats
import Foundation
import Tensors

/// One vocabulary row replaced by another vector for a forward pass (the learned `<CreTok>`
/// embedding), without copying the table: every token with id `row` reads `vector` instead.
/// `row` may lie past the vocabulary (an added token's own id).
public struct EmbeddingOverride: Sendable, Equatable {
    public var row: Int
    public var vector: [Float]
    public init(row: Int, vector: [Float]) {
        self.row = row
        self.vector = vector
    }
}

/// A frozen BERT sentence encoder: word + position + token-type-0 embeddings → LayerNorm →
/// `layers` post-LN transformer layers (masked self-attention, exact-GELU FFN) → mean over
/// the sentence's tokens → L2 normalization, as sentence-transformers runs all-MiniLM-L6-v2.
///
/// A batch holds sentences of any lengths. They are packed one after another rather than
/// padded to the longest with a mask: the same numbers as HF's masked batch (a masked key's
/// softmax weight is exactly 0) without computing padding rows. A sentence gets the same
/// embedding alone or in any batch, up to the last bits of OpenBLAS's split of a product.
///
/// `backward` runs the chain rule from d(loss)/d(sentence embedding) back to the input word
/// vectors (no weight gradients: the encoder is frozen). It needs a forward pass that kept
/// its activations (`keepActivations: true`); without, nothing is kept past the call.
public final class BertEncoder: Sendable {
    public let config: BertConfig
    public let weights: BertWeights

    public init(config: BertConfig, weights: SafeTensors.File) throws {
        self.config = config
        self.weights = try BertWeights(weights, config: config)
    }

    /// A HF BertModel folder: config.json and model.safetensors.
    public convenience init(folder: String) throws {
        let config = try BertConfig(contentsOf: folder + "/config.json")
        let file: SafeTensors.File
        do {
            file = try SafeTensors.read(contentsOf: folder + "/model.safetensors")
        } catch {
            throw TextEncoderError("cannot read \(folder)/model.safetensors: \(error)", fix: "install the model again")
        }
        try self.init(config: config, weights: file)
    }

    /// The sentence embeddings (B, hidden), each of unit length.
    public func embed(_ batch: [[Int]], override: EmbeddingOverride? = nil) throws -> [[Float]] {
        try forward(batch, override: override).embeddings
    }

    /// The forward pass; with `keepActivations`, the result can be passed to `backward`.
    public func forward(_ batch: [[Int]], override: EmbeddingOverride? = nil, keepActivations: Bool = false) throws -> BertForward {
        try check(batch, override: override)
        let c = config, C = c.hidden, I = c.intermediate, H = c.heads
        let layout = PackedLayout(lengths: batch.map(\.count), heads: H)
        let R = layout.rows, B = batch.count
        // The embedding sum, LayerNorm'ed into x, the residual stream.
        let embedSum = Tensor(shape: [R, C]), embedMean = Tensor(shape: [R]), embedRstd = Tensor(shape: [R])
        embeddingForward(out: embedSum.data, batch: batch, layout: layout, override: override)
        let x = Tensor(shape: [R, C])
        bertLayerNormForward(out: x.data, mean: embedMean.data, rstd: embedRstd.data, inp: embedSum.data,
                             weight: weights.embeddingNormWeight.data, bias: weights.embeddingNormBias.data, R: R, C: C, eps: c.layerNormEps)
        // Scratch (not needed by backward), and the caches (one set reused unless kept).
        let context = Tensor(shape: [R, C]), x1 = Tensor(shape: [R, C]), gelu = Tensor(shape: [R, I])
        var caches: [LayerCache] = []
        var cache = LayerCache(rows: R, probs: layout.probCount, C: C, I: I)
        for (l, w) in weights.layers.enumerated() {
            if keepActivations && l > 0 { cache = LayerCache(rows: R, probs: layout.probCount, C: C, I: I) }
            bertLinearForward(out: cache.qkv.data, inp: x.data, weight: w.qkvWeight, bias: w.qkvBias, R: R, K: C, N: 3 * C)
            bertAttentionForward(out: context.data, probs: cache.probs.data, qkv: cache.qkv.data, layout: layout, C: C, H: H)
            bertLinearForward(out: cache.attentionSum.data, inp: context.data, weight: w.attentionOutWeight, bias: w.attentionOutBias,
                              residual: x.data, R: R, K: C, N: C)
            bertLayerNormForward(out: x1.data, mean: cache.mean1.data, rstd: cache.rstd1.data, inp: cache.attentionSum.data,
                                 weight: w.attentionNormWeight.data, bias: w.attentionNormBias.data, R: R, C: C, eps: c.layerNormEps)
            bertLinearForward(out: cache.preGelu.data, inp: x1.data, weight: w.intermediateWeight, bias: w.intermediateBias, R: R, K: C, N: I)
            bertGeluForward(out: gelu.data, inp: cache.preGelu.data, count: R * I)
            bertLinearForward(out: cache.outputSum.data, inp: gelu.data, weight: w.outputWeight, bias: w.outputBias,
                              residual: x1.data, R: R, K: I, N: C)
            bertLayerNormForward(out: x.data, mean: cache.mean2.data, rstd: cache.rstd2.data, inp: cache.outputSum.data,
                                 weight: w.outputNormWeight.data, bias: w.outputNormBias.data, R: R, C: C, eps: c.layerNormEps)
            if keepActivations { caches.append(cache) }
        }
        let pooled = Tensor(shape: [B, C]), out = Tensor(shape: [B, C])
        bertMeanPoolNormalizeForward(out: out.data, pooled: pooled.data, inp: x.data, layout: layout, C: C)
        let embeddings = (0..<B).map { b in Array(UnsafeBufferPointer(start: out.data + b * C, count: C)) }
        let kept = keepActivations
            ? ForwardCache(embedSum: embedSum, embedMean: embedMean, embedRstd: embedRstd, layers: caches, pooled: pooled, out: out)
            : nil
        return BertForward(ids: batch, embeddings: embeddings, layout: layout, cache: kept)
    }

    /// d(loss)/d(input word vector) at every token of every sentence, given d(loss)/d(sentence
    /// embedding) for each sentence (B rows of `hidden`). The forward pass must have kept its
    /// activations.
    public func backward(_ forward: BertForward, dEmbeddings: [[Float]]) throws -> TokenGradients {
        guard let cache = forward.cache else {
            throw TextEncoderError("backward needs the activations of its forward pass", fix: "call forward(_:keepActivations: true)")
        }
        let C = config.hidden, I = config.intermediate, H = config.heads
        let layout = forward.layout, R = layout.rows
        guard dEmbeddings.count == forward.ids.count, dEmbeddings.allSatisfy({ $0.count == C }) else {
            throw TextEncoderError("backward got \(dEmbeddings.count) gradients of sizes \(Set(dEmbeddings.map(\.count)).sorted())",
                                   fix: "pass one gradient of \(C) values per sentence of the forward pass")
        }
        let dOut = Tensor(shape: [forward.ids.count, C], values: dEmbeddings.flatMap { $0 })
        let dx = Tensor(shape: [R, C]), dA = Tensor(shape: [R, C]), dG = Tensor(shape: [R, I])
        let dQKV = Tensor(shape: [R, 3 * C]), dScratch = Tensor(shape: [layout.probCount])
        bertMeanPoolNormalizeBackward(dInp: dx.data, dOut: dOut.data, out: cache.out.data, pooled: cache.pooled.data, layout: layout, C: C)
        for (w, a) in zip(weights.layers, cache.layers).reversed() {
            // x = LN2(outputSum), outputSum = x1 + gelu(x1 W1ᵀ + b1) W2ᵀ + b2.
            bertLayerNormBackward(dInp: dA.data, dOut: dx.data, inp: a.outputSum.data, mean: a.mean2.data, rstd: a.rstd2.data,
                                  weight: w.outputNormWeight.data, R: R, C: C)
            Blas.nn(m: R, n: I, k: C, a: dA.data, b: w.outputWeight.data, c: dG.data)
            bertGeluBackwardInPlace(dG.data, inp: a.preGelu.data, count: R * I)
            Blas.nn(m: R, n: C, k: I, a: dG.data, b: w.intermediateWeight.data, c: dA.data, beta: 1)
            // x1 = LN1(attentionSum), attentionSum = x + attention(x W_qkvᵀ + b) W_oᵀ + b_o.
            bertLayerNormBackward(dInp: dx.data, dOut: dA.data, inp: a.attentionSum.data, mean: a.mean1.data, rstd: a.rstd1.data,
                                  weight: w.attentionNormWeight.data, R: R, C: C)
            Blas.nn(m: R, n: C, k: C, a: dx.data, b: w.attentionOutWeight.data, c: dA.data)
            bertAttentionBackward(dQKV: dQKV.data, dScratch: dScratch.data, dOut: dA.data, probs: a.probs.data, qkv: a.qkv.data,
                                  layout: layout, C: C, H: H)
            Blas.nn(m: R, n: C, k: 3 * C, a: dQKV.data, b: w.qkvWeight.data, c: dx.data, beta: 1)
        }
        bertLayerNormBackward(dInp: dx.data, dOut: dx.data, inp: cache.embedSum.data, mean: cache.embedMean.data,
                              rstd: cache.embedRstd.data, weight: weights.embeddingNormWeight.data, R: R, C: C)
        return TokenGradients(ids: forward.ids, hidden: C, offsets: layout.offsets, values: dx.toArray())
    }

    /// Refuses ids the table does not have (unless overridden) and sentences too long for
    /// the position table, by name.
    func check(_ batch: [[Int]], override: EmbeddingOverride?) throws {
        let V = config.vocabularySize
        if let override {
            guard override.row >= 0, override.vector.count == config.hidden else {
                throw TextEncoderError("override of row \(override.row) has \(override.vector.count) values",
                                       fix: "give a row ≥ 0 and a vector of \(config.hidden) values")
            }
        }
        for (b, ids) in batch.enumerated() {
            guard !ids.isEmpty else {
                throw TextEncoderError("sentence \(b) has no tokens", fix: "tokenize it first: every sentence has at least [CLS] [SEP]")
            }
            guard ids.count <= config.maxPositions else {
                throw TextEncoderError("sentence \(b) has \(ids.count) tokens, more than the \(config.maxPositions) positions",
                                       fix: "truncate it (the tokenizer's maxLength)")
            }
            if let bad = ids.first(where: { ($0 < 0 || $0 >= V) && $0 != override?.row }) {
                throw TextEncoderError("sentence \(b) has token id \(bad), outside the vocabulary of \(V)",
                                       fix: "give an override for an added token's id")
            }
        }
    }

    /// out[row] = word[id] (or the override) + position[t] + tokenType[0].
    func embeddingForward(out: UnsafeMutablePointer<Float>, batch: [[Int]], layout: PackedLayout, override: EmbeddingOverride?) {
        let C = config.hidden, w = weights
        for (b, ids) in batch.enumerated() {
            for (t, id) in ids.enumerated() {
                let o = out + (layout.offsets[b] + t) * C, pos = w.positionEmbeddings.data + t * C
                let type0 = w.tokenTypeEmbeddings.data
                if let override, id == override.row {
                    for i in 0..<C { o[i] = override.vector[i] + pos[i] + type0[i] }
                } else {
                    let word = w.wordEmbeddings.data + id * C
                    for i in 0..<C { o[i] = word[i] + pos[i] + type0[i] }
                }
            }
        }
    }
}

/// What one layer's backward needs: LayerNorm inputs and statistics, the QKV projections and
/// attention probabilities, and the GELU's input.
struct LayerCache: Sendable {
    let qkv: Tensor, probs: Tensor
    let attentionSum: Tensor, mean1: Tensor, rstd1: Tensor
    let preGelu: Tensor
    let outputSum: Tensor, mean2: Tensor, rstd2: Tensor

    init(rows R: Int, probs: Int, C: Int, I: Int) {
        qkv = Tensor(shape: [R, 3 * C])
        self.probs = Tensor(shape: [probs])
        attentionSum = Tensor(shape: [R, C]); mean1 = Tensor(shape: [R]); rstd1 = Tensor(shape: [R])
        preGelu = Tensor(shape: [R, I])
        outputSum = Tensor(shape: [R, C]); mean2 = Tensor(shape: [R]); rstd2 = Tensor(shape: [R])
    }
}

struct ForwardCache: Sendable {
    let embedSum: Tensor, embedMean: Tensor, embedRstd: Tensor
    let layers: [LayerCache]
    let pooled: Tensor, out: Tensor
}

/// A forward pass's result: the sentence embeddings and, when kept, what backward needs.
public struct BertForward: Sendable {
    public let ids: [[Int]]
    /// (B, hidden), each of unit length.
    public let embeddings: [[Float]]
    let layout: PackedLayout
    let cache: ForwardCache?

    /// Whether `backward` can run from this result.
    public var keptActivations: Bool { cache != nil }
}

/// d(loss)/d(input word vector) at every token position: rows of `hidden` values, sentence
/// after sentence (sentence b's token t at row offsets[b] + t).
public struct TokenGradients: Sendable {
    public let ids: [[Int]]
    public let hidden: Int
    let offsets: [Int]
    /// All rows, (total tokens, hidden).
    public let values: [Float]

    init(ids: [[Int]], hidden: Int, offsets: [Int], values: [Float]) {
        self.ids = ids
        self.hidden = hidden
        self.offsets = offsets
        self.values = values
    }

    /// The gradient at token t of sentence b.
    public func at(sentence b: Int, token t: Int) -> ArraySlice<Float> {
        let start = (offsets[b] + t) * hidden
        return values[start..<(start + hidden)]
    }

    /// Sentence b's rows, one per token.
    public func sentence(_ b: Int) -> [[Float]] {
        (0..<ids[b].count).map { Array(at(sentence: b, token: $0)) }
    }

    /// The gradient of vocabulary row `row` (what CreTok trains): the sum over every position
    /// whose id is `row`; zeros when it does not occur.
    public func sum(forRow row: Int) -> [Float] {
        var out = [Float](repeating: 0, count: hidden)
        for (b, sentence) in ids.enumerated() {
            for (t, id) in sentence.enumerated() where id == row {
                let g = at(sentence: b, token: t)
                for i in 0..<hidden { out[i] += g[g.startIndex + i] }
            }
        }
        return out
    }
}

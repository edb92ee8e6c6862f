import Foundation
import Tensors

// Glossary: N batch, C image channels, S image side, p patch, g = S/p, T = g² tokens,
// D hidden, H heads, F = 4D MLP hidden, K classes (row K of the label table = null class),
// L depth. Shapes in trailing comments.

/// Offsets of one block's parameters in the flat buffer.
struct BlockOffsets {
    let qkvW, qkvB, projW, projB, fc1W, fc1B, fc2W, fc2B, adaW, adaB: Int
    init(_ layout: ParameterLayout, _ i: Int) {
        let b = "blocks.\(i)."
        qkvW = layout.offset(b + "attn.qkv.weight"); qkvB = layout.offset(b + "attn.qkv.bias")
        projW = layout.offset(b + "attn.proj.weight"); projB = layout.offset(b + "attn.proj.bias")
        fc1W = layout.offset(b + "mlp.fc1.weight"); fc1B = layout.offset(b + "mlp.fc1.bias")
        fc2W = layout.offset(b + "mlp.fc2.weight"); fc2B = layout.offset(b + "mlp.fc2.bias")
        adaW = layout.offset(b + "adaLN_modulation.1.weight"); adaB = layout.offset(b + "adaLN_modulation.1.bias")
    }
}

/// Everything one block's forward saves for its backward.
final class BlockActivations {
    let mod: Tensor        // (N, 6D) shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp
    let ln1Mean, ln1Rstd, ln2Mean, ln2Rstd: Tensor  // (N·T)
    let h1: Tensor         // (N, T, D) modulate(LN(x)) into attention
    let qkv: Tensor        // (N, T, 3D)
    let probs: Tensor      // (N, H, T, T) attention probabilities
    let attnO: Tensor      // (N, T, D) heads concatenated, before proj
    let attnY: Tensor      // (N, T, D) proj output (gated into the residual)
    let xMid: Tensor       // (N, T, D) residual after attention
    let h2: Tensor         // (N, T, D) modulate(LN(xMid)) into the MLP
    let fc1: Tensor        // (N, T, F) before GELU
    let gelu: Tensor       // (N, T, F)
    let mlpY: Tensor       // (N, T, D) fc2 output (gated into the residual)

    init(N: Int, T: Int, D: Int, H: Int, F: Int) {
        mod = Tensor(shape: [N, 6 * D])
        ln1Mean = Tensor(shape: [N * T]); ln1Rstd = Tensor(shape: [N * T])
        ln2Mean = Tensor(shape: [N * T]); ln2Rstd = Tensor(shape: [N * T])
        h1 = Tensor(shape: [N, T, D]); qkv = Tensor(shape: [N, T, 3 * D]); probs = Tensor(shape: [N, H, T, T])
        attnO = Tensor(shape: [N, T, D]); attnY = Tensor(shape: [N, T, D]); xMid = Tensor(shape: [N, T, D])
        h2 = Tensor(shape: [N, T, D]); fc1 = Tensor(shape: [N, T, F]); gelu = Tensor(shape: [N, T, F])
        mlpY = Tensor(shape: [N, T, D])
    }

    var floatCount: Int {
        [mod, ln1Mean, ln1Rstd, ln2Mean, ln2Rstd, h1, qkv, probs, attnO, attnY, xMid, h2, fc1, gelu, mlpY].reduce(0) { $0 + $1.count }
    }
}

/// All activation and scratch buffers for one batch size, allocated once and reused by every
/// step (no allocation inside the training step).
final class Activations {
    let N: Int
    // conditioning
    let tFreq: Tensor      // (N, 256) [cos | sin] timestep features
    let tH, tHs, tEmb, yEmb, c, siluC: Tensor  // (N, D)
    let textIn: Tensor     // (N, textDim) gathered text embeddings (zeros for null labels); empty when class-conditioned
    var labels: [Int]
    // tokens
    let patches: Tensor    // (N, T, C·p·p)
    let resid: [Tensor]    // L+1 × (N, T, D): resid[0] = embedded patches, resid[l+1] = block l output
    let blocks: [BlockActivations]
    // final layer
    let modF: Tensor       // (N, 2D)
    let lnFMean, lnFRstd: Tensor
    let hF: Tensor         // (N, T, D)
    let outTok: Tensor     // (N, T, p²·2C)
    // backward scratch (shared by all blocks)
    let dResid, dH, dY, dAttnO: Tensor   // (N, T, D)
    let dQKV: Tensor       // (N, T, 3D)
    let dFc: Tensor        // (N, T, F)
    let dMod: Tensor       // (N, 6D)
    let dSiluC, dC, dTHs, dTH: Tensor  // (N, D)
    let dOutTok: Tensor    // (N, T, p²·2C)
    let attnScratch: Tensor  // workers × T × T

    /// True when only the forward pass will run (sampling): one block's buffers are reused by
    /// every layer and the residual stream ping-pongs between two buffers, so memory does not
    /// grow with depth.
    let inference: Bool

    /// Buffers of layer l (shared by all layers in inference mode).
    func block(_ l: Int) -> BlockActivations { blocks[inference ? 0 : l] }
    /// Residual stream entering layer l (l = depth: entering the final layer).
    func residual(_ l: Int) -> Tensor { resid[inference ? l % 2 : l] }

    init(config c0: DiTConfig, N: Int, inference: Bool = false) {
        let D = c0.hiddenSize, T = c0.tokens, H = c0.numHeads, F = c0.mlpHidden
        self.N = N
        self.inference = inference
        tFreq = Tensor(shape: [N, c0.frequencyEmbeddingSize])
        tH = Tensor(shape: [N, D]); tHs = Tensor(shape: [N, D]); tEmb = Tensor(shape: [N, D])
        yEmb = Tensor(shape: [N, D]); c = Tensor(shape: [N, D]); siluC = Tensor(shape: [N, D])
        textIn = Tensor(shape: [N, c0.textDim])
        labels = []
        patches = Tensor(shape: [N, T, c0.patchDim])
        resid = (0...(inference ? 1 : c0.depth)).map { _ in Tensor(shape: [N, T, D]) }
        blocks = (0..<(inference ? 1 : c0.depth)).map { _ in BlockActivations(N: N, T: T, D: D, H: H, F: F) }
        modF = Tensor(shape: [N, 2 * D])
        lnFMean = Tensor(shape: [N * T]); lnFRstd = Tensor(shape: [N * T])
        hF = Tensor(shape: [N, T, D])
        let outDim = c0.patchSize * c0.patchSize * c0.outChannels
        outTok = Tensor(shape: [N, T, outDim])
        dResid = Tensor(shape: [N, T, D]); dH = Tensor(shape: [N, T, D]); dY = Tensor(shape: [N, T, D])
        dAttnO = Tensor(shape: [N, T, D]); dQKV = Tensor(shape: [N, T, 3 * D]); dFc = Tensor(shape: [N, T, F])
        dMod = Tensor(shape: [N, 6 * D])
        dSiluC = Tensor(shape: [N, D]); dC = Tensor(shape: [N, D]); dTHs = Tensor(shape: [N, D]); dTH = Tensor(shape: [N, D])
        dOutTok = Tensor(shape: [N, T, outDim])
        attnScratch = Tensor(shape: [Parallel.workers, T, T])
    }

    /// Floats held by the buffers the backward pass needs (the "saved activations").
    var savedFloatCount: Int {
        [tFreq, tH, tHs, tEmb, yEmb, c, siluC, textIn, patches, modF, lnFMean, lnFRstd, hF, outTok].reduce(0) { $0 + $1.count }
            + resid.reduce(0) { $0 + $1.count } + blocks.reduce(0) { $0 + $1.floatCount }
    }

    /// Floats held by backward scratch buffers.
    var scratchFloatCount: Int {
        [dResid, dH, dY, dAttnO, dQKV, dFc, dMod, dSiluC, dC, dTHs, dTH, dOutTok, attnScratch].reduce(0) { $0 + $1.count }
    }
}

/// A DiT (adaLN-Zero, learn_sigma) with hand-written forward and backward passes over one
/// flat parameter buffer. `forward` caches what `backward` needs; `backward` accumulates into
/// `grads` (call `zeroGrad()` first), llm.c style.
public final class DiTModel: @unchecked Sendable {
    public let config: DiTConfig
    public let layout: ParameterLayout
    /// All trainable parameters, laid out by `layout`.
    public let params: Tensor
    /// Gradients, same layout as `params`.
    public let grads: Tensor
    /// DiT's fixed 2-D sin-cos table (T, D); saved as `pos_embed` (1, T, D), never trained.
    public let posEmbed: Tensor

    let blockOffsets: [BlockOffsets]
    var acts: Activations?

    /// When set, the block weight matrices come from this learngene parameterization instead
    /// of `params` (whose block-weight slots are then unused); biases and everything outside
    /// the blocks stay dense.
    public var blockWeights: (any BlockWeights)?

    /// Text-conditioned models only (`config.textDim > 0`): the text embedding of every label,
    /// (numClasses, textDim). Row k is what label k means — the frozen encoder's embedding of a
    /// class caption during training, any prompt's embedding at sampling time — and label
    /// `numClasses` is the learned null embedding. It is the caller's data, not a parameter:
    /// not trained, not in `params`, `stateDict` or trainer checkpoints, so whoever builds or
    /// restores a model sets it (`setTextTable`) before the first `forward`.
    public internal(set) var textTable: Tensor?

    /// A model with all parameters zero; call `initializeWeights(seed:)` for DiT's init.
    public init(config: DiTConfig) {
        precondition(config.problems().isEmpty, "invalid DiT config: \(config.problems().joined(separator: "; "))")
        self.config = config
        let layout = ParameterLayout(config: config)
        self.layout = layout
        params = Tensor(shape: [layout.count])
        grads = Tensor(shape: [layout.count])
        posEmbed = Tensor(shape: [config.tokens, config.hiddenSize],
                          values: sinCosPositionTable(D: config.hiddenSize, grid: config.grid))
        blockOffsets = (0..<config.depth).map { BlockOffsets(layout, $0) }
    }

    /// Pointer to a named parameter inside `params`.
    public func parameter(_ name: String) -> UnsafeMutablePointer<Float> { params.data + layout.offset(name) }
    /// Pointer to a named gradient inside `grads`.
    public func gradient(_ name: String) -> UnsafeMutablePointer<Float> { grads.data + layout.offset(name) }

    public func zeroGrad() { grads.zero() }

    /// Why a text table does not fit this model.
    public struct TextTableError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Sets `textTable` from one embedding per label: exactly `config.numClasses` rows, each of
    /// `config.textDim` finite floats (copied). Throws for a class-conditioned model.
    public func setTextTable(_ rows: [[Float]]) throws {
        let c = config
        guard c.textDim > 0 else {
            throw TextTableError(description: "this DiT is class-conditioned (text_dim 0); it has no text table")
        }
        guard rows.count == c.numClasses else {
            throw TextTableError(description: "text table has \(rows.count) rows, the model has num_classes \(c.numClasses) (one row per label)")
        }
        if let bad = rows.firstIndex(where: { $0.count != c.textDim }) {
            throw TextTableError(description: "text table row \(bad) has \(rows[bad].count) values, the model's text_dim is \(c.textDim)")
        }
        if let bad = rows.firstIndex(where: { !$0.allSatisfy(\.isFinite) }) {
            throw TextTableError(description: "text table row \(bad) has a non-finite value")
        }
        textTable = Tensor(shape: [c.numClasses, c.textDim], values: rows.flatMap { $0 })
    }

    /// Sets `textTable` to a copy of `table` ((numClasses, textDim) values, e.g. another
    /// model's `textTable`), validated as `setTextTable(_ rows:)`.
    public func setTextTable(_ table: Tensor) throws {
        let E = max(config.textDim, 1)
        guard table.count % E == 0 else {
            throw TextTableError(description: "text table has \(table.count) values, not a multiple of the model's text_dim \(config.textDim)")
        }
        let v = table.toArray()
        try setTextTable((0..<(table.count / E)).map { Array(v[($0 * E)..<(($0 + 1) * E)]) })
    }

    /// Forward-only mode (sampling, evaluation): activations are not kept per layer, so
    /// `backward` is unavailable. Set before the first `forward`.
    public var inferenceOnly = false {
        didSet { if inferenceOnly != oldValue { acts = nil } }
    }

    /// Buffers for batch size N (reallocated only when N changes).
    func activations(_ N: Int) -> Activations {
        if let a = acts, a.N == N { return a }
        acts = nil  // free the old buffers before allocating the new ones
        let a = Activations(config: config, N: N, inference: inferenceOnly)
        acts = a
        return a
    }

    /// Releases the activation buffers (e.g. between training and sampling at another batch).
    public func releaseActivations() { acts = nil }

    /// Floats of saved activations and of backward scratch for batch N, counted from the
    /// buffer list of `Activations` without allocating it (for the analytic memory figure).
    public static func activationFloats(config c: DiTConfig, batch N: Int) -> (saved: Int, scratch: Int) {
        let D = c.hiddenSize, T = c.tokens, H = c.numHeads, F = c.mlpHidden, L = c.depth
        let outDim = c.patchSize * c.patchSize * c.outChannels
        let conditioning = N * c.frequencyEmbeddingSize + 6 * N * D + N * c.textDim
        let perBlock = N * 6 * D + 4 * N * T + 9 * N * T * D + N * H * T * T + 2 * N * T * F
        let saved = conditioning + N * T * c.patchDim + (L + 1) * N * T * D + L * perBlock
            + 2 * N * D + 2 * N * T + N * T * D + N * T * outDim
        let scratch = 4 * N * T * D + 3 * N * T * D + N * T * F + 6 * N * D + 4 * N * D + N * T * outDim + Parallel.workers * T * T
        return (saved, scratch)
    }
}

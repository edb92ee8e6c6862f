import Tensors

/// The shape of a DiT (facebookresearch/DiT `models.py: DiT.__init__`), always with
/// `learn_sigma=True` (2C output channels) and a null class row for classifier-free guidance.
///
/// With `textDim > 0` the DiT is text-conditioned: the label embedder projects a frozen text
/// embedding instead of looking up a class row (see `textDim`); labels then index the model's
/// caller-set text table (`DiTModel.textTable`) and `numClasses` is that table's row count.
public struct DiTConfig: Codable, Sendable, Equatable, Hashable {
    public var inputSize: Int
    public var patchSize: Int
    public var inChannels: Int
    public var hiddenSize: Int
    public var depth: Int
    public var numHeads: Int
    /// Class count (labels 0..<numClasses; label numClasses is the null class). For a
    /// text-conditioned config, the number of rows of the model's text table.
    public var numClasses: Int
    public var mlpRatio: Int = 4
    public var classDropoutProb: Float = 0.1
    public var frequencyEmbeddingSize: Int = 256
    /// Width of the text embeddings the label embedder projects (e.g. 384 for
    /// all-MiniLM-L6-v2); 0 (the default) is DiT's class-conditioned label table.
    ///
    /// With `textDim > 0`: y_emb = W_text·e + b_text for the text embedding e of a label's row
    /// in the model's text table, and a learned null embedding for label `numClasses` (the
    /// unconditional branch of classifier-free guidance; present when `classDropoutProb > 0`,
    /// as DiT's null class row). The parameter layout then no longer depends on `numClasses`.
    ///
    /// JSON: the key `textDim` is written only when non-zero, and a missing key decodes as 0,
    /// so a class-conditioned config encodes to the same bytes as before the field existed
    /// and configs stored in old checkpoints and model files still decode and compare equal.
    public var textDim: Int = 0

    public init(inputSize: Int, patchSize: Int, inChannels: Int, hiddenSize: Int, depth: Int,
                numHeads: Int, numClasses: Int, mlpRatio: Int = 4, classDropoutProb: Float = 0.1, textDim: Int = 0) {
        self.inputSize = inputSize
        self.patchSize = patchSize
        self.inChannels = inChannels
        self.hiddenSize = hiddenSize
        self.depth = depth
        self.numHeads = numHeads
        self.numClasses = numClasses
        self.mlpRatio = mlpRatio
        self.classDropoutProb = classDropoutProb
        self.textDim = textDim
    }

    private enum CodingKeys: String, CodingKey {
        case inputSize, patchSize, inChannels, hiddenSize, depth, numHeads, numClasses, mlpRatio, classDropoutProb,
             frequencyEmbeddingSize, textDim
    }

    /// As the synthesized decoder (every original key required), except that `textDim` is
    /// optional (absent in configs written before text conditioning) and defaults to 0.
    public init(from decoder: any Decoder) throws {
        let k = try decoder.container(keyedBy: CodingKeys.self)
        inputSize = try k.decode(Int.self, forKey: .inputSize)
        patchSize = try k.decode(Int.self, forKey: .patchSize)
        inChannels = try k.decode(Int.self, forKey: .inChannels)
        hiddenSize = try k.decode(Int.self, forKey: .hiddenSize)
        depth = try k.decode(Int.self, forKey: .depth)
        numHeads = try k.decode(Int.self, forKey: .numHeads)
        numClasses = try k.decode(Int.self, forKey: .numClasses)
        mlpRatio = try k.decode(Int.self, forKey: .mlpRatio)
        classDropoutProb = try k.decode(Float.self, forKey: .classDropoutProb)
        frequencyEmbeddingSize = try k.decode(Int.self, forKey: .frequencyEmbeddingSize)
        textDim = try k.decodeIfPresent(Int.self, forKey: .textDim) ?? 0
    }

    /// As the synthesized encoder, except that `textDim` is omitted when 0 (class-conditioned
    /// configs keep their pre-text JSON bytes, which checkpoints and model files embed).
    public func encode(to encoder: any Encoder) throws {
        var k = encoder.container(keyedBy: CodingKeys.self)
        try k.encode(inputSize, forKey: .inputSize)
        try k.encode(patchSize, forKey: .patchSize)
        try k.encode(inChannels, forKey: .inChannels)
        try k.encode(hiddenSize, forKey: .hiddenSize)
        try k.encode(depth, forKey: .depth)
        try k.encode(numHeads, forKey: .numHeads)
        try k.encode(numClasses, forKey: .numClasses)
        try k.encode(mlpRatio, forKey: .mlpRatio)
        try k.encode(classDropoutProb, forKey: .classDropoutProb)
        try k.encode(frequencyEmbeddingSize, forKey: .frequencyEmbeddingSize)
        if textDim != 0 { try k.encode(textDim, forKey: .textDim) }
    }

    /// True when labels index a text table (`textDim > 0`) rather than class rows.
    public var isTextConditioned: Bool { textDim > 0 }

    /// Patches per side (g) and tokens (T = g²).
    public var grid: Int { inputSize / patchSize }
    public var tokens: Int { grid * grid }
    /// Output channels: ε and the variance interpolation v per input channel.
    public var outChannels: Int { 2 * inChannels }
    public var patchDim: Int { inChannels * patchSize * patchSize }
    public var mlpHidden: Int { mlpRatio * hiddenSize }

    /// Problems that make the config unusable, each with the fix (empty when fine).
    public func problems() -> [String] {
        var out: [String] = []
        if inputSize < 1 || inputSize > 1024 { out.append("input_size \(inputSize) must be in 1…1024") }
        if patchSize < 1 || inputSize % max(patchSize, 1) != 0 { out.append("patch_size \(patchSize) must divide input_size \(inputSize)") }
        if inChannels < 1 || inChannels > 16 { out.append("in_channels \(inChannels) must be in 1…16") }
        if hiddenSize < 4 || hiddenSize % 4 != 0 { out.append("hidden_size \(hiddenSize) must be a positive multiple of 4 (2-D sin-cos positions)") }
        if numHeads < 1 || hiddenSize % max(numHeads, 1) != 0 { out.append("num_heads \(numHeads) must divide hidden_size \(hiddenSize)") }
        if depth < 1 || depth > 64 { out.append("depth \(depth) must be in 1…64") }
        if numClasses < 1 || numClasses > 100_000 { out.append("num_classes \(numClasses) must be in 1…100000") }
        if !(0...1).contains(classDropoutProb) { out.append("class_dropout_prob \(classDropoutProb) must be in [0, 1]") }
        if textDim < 0 || textDim > 65_536 { out.append("text_dim \(textDim) must be in 0…65536 (0 = class-conditioned)") }
        // Upper bounds: configs also come from files (model metadata, learngene factors), and a
        // huge field would overflow the layout arithmetic or abort in an allocation.
        if hiddenSize > Self.maxHiddenSize { out.append("hidden_size \(hiddenSize) must be at most \(Self.maxHiddenSize)") }
        if mlpRatio < 1 || mlpRatio > 16 { out.append("mlp_ratio \(mlpRatio) must be in 1…16") }
        if frequencyEmbeddingSize < 2 || frequencyEmbeddingSize > 4096 || frequencyEmbeddingSize % 2 != 0 {
            out.append("frequency_embedding_size \(frequencyEmbeddingSize) must be even and in 2…4096")
        }
        if out.isEmpty {
            if tokens > Self.maxTokens { out.append("input_size \(inputSize) / patch_size \(patchSize) gives \(tokens) tokens, more than \(Self.maxTokens); use a larger patch_size") }
            let count = Self.parameterCountEstimate(self)
            if count > Double(Self.maxParameters) {
                out.append("the model would have about \(Int(count / 1e6)) M parameters, more than \(Self.maxParameters / 1_000_000) M; use a smaller hidden_size, depth or num_classes")
            }
        }
        return out
    }

    public static let maxHiddenSize = 16_384
    /// Attention holds T² scores per head: 16384 tokens is already 1 GiB per head and image.
    public static let maxTokens = 16_384
    /// Parameters, gradients and two AdamW moments at 4 bytes each: 16 GB at this bound.
    public static let maxParameters = 1_000_000_000

    /// The parameter count in floating point (no overflow for any Int fields).
    static func parameterCountEstimate(_ c: DiTConfig) -> Double {
        let D = Double(c.hiddenSize), M = Double(c.mlpRatio) * D
        let perBlock = 3 * D * D + D * D + 2 * D * M + 6 * D * D + 11 * D + M
        let table = c.textDim > 0 ? D * Double(c.textDim) : D * Double(c.numClasses + 1)
        let p2 = Double(c.patchSize) * Double(c.patchSize)
        return Double(c.depth) * perBlock + table + D * Double(c.frequencyEmbeddingSize) + D * D
            + D * Double(c.inChannels) * p2 + p2 * Double(2 * c.inChannels) * D + 2 * D * D
    }

    /// Throws what is wrong with a config read from outside (a file, a manifest), naming
    /// `source`, instead of reaching `DiTModel(config:)`'s precondition.
    public func check(source: String) throws(FixableError) {
        let p = problems()
        guard !p.isEmpty else { return }
        throw FixableError("\(source) describes an unusable DiT: \(p.joined(separator: "; "))",
                           fix: "use a file written by learngene, or fix the config it records")
    }

    /// DiT's registry (`DiT_models`): S/B/L/XL × patch 2/4/8, at a given latent/input size.
    public static func dit(_ name: String, inputSize: Int = 32, inChannels: Int = 4, numClasses: Int = 1000) -> DiTConfig? {
        let parts = name.replacingOccurrences(of: "DiT-", with: "").split(separator: "/")
        guard parts.count == 2, let p = Int(parts[1]), [2, 4, 8].contains(p) else { return nil }
        let (depth, hidden, heads): (Int, Int, Int)
        switch parts[0] {
        case "S": (depth, hidden, heads) = (12, 384, 6)
        case "B": (depth, hidden, heads) = (12, 768, 12)
        case "L": (depth, hidden, heads) = (24, 1024, 16)
        case "XL": (depth, hidden, heads) = (28, 1152, 16)
        default: return nil
        }
        return DiTConfig(inputSize: inputSize, patchSize: p, inChannels: inChannels, hiddenSize: hidden,
                         depth: depth, numHeads: heads, numClasses: numClasses)
    }

    /// Named presets: DiT's twelve (`DiT-S/2` … `DiT-XL/8`, at 32×32×4 latents and 1000
    /// classes), the benchmark configs of perf.md (`tiny`, `mnist`, `s2`) and small CPU
    /// presets for 28–32 px images (`cpu-28-small`, `cpu-28`, `cpu-32-small`, `cpu-32`).
    public static func preset(_ name: String) -> DiTConfig? {
        switch name {
        case "tiny": return DiTConfig(inputSize: 32, patchSize: 2, inChannels: 3, hiddenSize: 192, depth: 6, numHeads: 3, numClasses: 10)
        case "mnist": return DiTConfig(inputSize: 28, patchSize: 4, inChannels: 1, hiddenSize: 256, depth: 6, numHeads: 4, numClasses: 10)
        case "s2": return dit("DiT-S/2")
        case "cpu-28-small": return DiTConfig(inputSize: 28, patchSize: 4, inChannels: 1, hiddenSize: 128, depth: 4, numHeads: 4, numClasses: 10)
        case "cpu-28": return DiTConfig(inputSize: 28, patchSize: 4, inChannels: 1, hiddenSize: 256, depth: 8, numHeads: 4, numClasses: 10)
        case "cpu-32-small": return DiTConfig(inputSize: 32, patchSize: 4, inChannels: 3, hiddenSize: 128, depth: 4, numHeads: 4, numClasses: 10)
        case "cpu-32": return DiTConfig(inputSize: 32, patchSize: 2, inChannels: 3, hiddenSize: 192, depth: 8, numHeads: 3, numClasses: 10)
        default: return dit(name)
        }
    }

    public static let presetNames: [String] =
        ["tiny", "mnist", "s2", "cpu-28-small", "cpu-28", "cpu-32-small", "cpu-32"]
        + ["S", "B", "L", "XL"].flatMap { s in [2, 4, 8].map { "DiT-\(s)/\($0)" } }
}

/// One named parameter tensor inside the flat buffer.
public struct ParameterEntry: Sendable, Equatable {
    public var name: String
    public var offset: Int
    public var shape: [Int]
    public var count: Int { shape.reduce(1, *) }
}

/// Where every trainable tensor lives in the one flat parameter buffer (llm.c's
/// `fill_in_parameter_sizes`). Names are DiT's PyTorch `state_dict` keys and shapes PyTorch's
/// (out, in) layout, in `named_parameters()` order. `pos_embed` is fixed (not trainable) and is
/// kept outside the buffer. A text-conditioned config (`textDim > 0`) has, in place of the
/// class table, `y_embedder.embedding_table.weight` (1, D) (the null embedding, only when
/// class_dropout_prob > 0), `y_embedder.text_proj.weight` (D, textDim) and
/// `y_embedder.text_proj.bias` (D), in that order.
public struct ParameterLayout: Sendable {
    public let entries: [ParameterEntry]
    public let count: Int
    private let index: [String: Int]

    public init(config c: DiTConfig) {
        let D = c.hiddenSize, F = c.frequencyEmbeddingSize
        var list: [(String, [Int])] = [
            ("x_embedder.proj.weight", [D, c.inChannels, c.patchSize, c.patchSize]),
            ("x_embedder.proj.bias", [D]),
            ("t_embedder.mlp.0.weight", [D, F]), ("t_embedder.mlp.0.bias", [D]),
            ("t_embedder.mlp.2.weight", [D, D]), ("t_embedder.mlp.2.bias", [D]),
        ]
        if c.textDim > 0 {
            // Text conditioning: the table keeps only the learned null embedding (the CFG row,
            // present as in DiT when class_dropout_prob > 0), then the projection of the frozen
            // text embedding. None of these depend on num_classes (the size of the text table).
            if c.classDropoutProb > 0 { list.append(("y_embedder.embedding_table.weight", [1, D])) }
            list += [("y_embedder.text_proj.weight", [D, c.textDim]), ("y_embedder.text_proj.bias", [D])]
        } else {
            list.append(("y_embedder.embedding_table.weight", [c.numClasses + (c.classDropoutProb > 0 ? 1 : 0), D]))
        }
        for i in 0..<c.depth {
            let b = "blocks.\(i)."
            list += [
                (b + "attn.qkv.weight", [3 * D, D]), (b + "attn.qkv.bias", [3 * D]),
                (b + "attn.proj.weight", [D, D]), (b + "attn.proj.bias", [D]),
                (b + "mlp.fc1.weight", [c.mlpHidden, D]), (b + "mlp.fc1.bias", [c.mlpHidden]),
                (b + "mlp.fc2.weight", [D, c.mlpHidden]), (b + "mlp.fc2.bias", [D]),
                (b + "adaLN_modulation.1.weight", [6 * D, D]), (b + "adaLN_modulation.1.bias", [6 * D]),
            ]
        }
        list += [
            ("final_layer.linear.weight", [c.patchSize * c.patchSize * c.outChannels, D]),
            ("final_layer.linear.bias", [c.patchSize * c.patchSize * c.outChannels]),
            ("final_layer.adaLN_modulation.1.weight", [2 * D, D]),
            ("final_layer.adaLN_modulation.1.bias", [2 * D]),
        ]
        var entries: [ParameterEntry] = []
        var offset = 0
        for (name, shape) in list {
            entries.append(ParameterEntry(name: name, offset: offset, shape: shape))
            offset += shape.reduce(1, *)
        }
        self.entries = entries
        self.count = offset
        var index: [String: Int] = [:]
        for (i, e) in entries.enumerated() { index[e.name] = i }
        self.index = index
    }

    public subscript(name: String) -> ParameterEntry? { index[name].map { entries[$0] } }

    /// Offset of a parameter that must exist (a programming error otherwise).
    public func offset(_ name: String) -> Int {
        guard let i = index[name] else { preconditionFailure("no parameter named \(name)") }
        return entries[i].offset
    }
}

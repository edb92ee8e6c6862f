import Foundation

/// CreTok's objective on a frozen sentence encoder (methods.md §5.2): the tokenizer with the
/// token added at its row, the prompts, the capped cosine loss and its gradient with respect
/// to the token's vector, and the embedding-space evaluation.
///
/// For a set of pairs, every pair gives two prompts pairs, (t1, t2) and (t2, t1); prompt k's
/// loss is 1 − min(cos(E(P_r), E(P_a)), θ) and the loss is their mean. E is the encoder's unit
/// sentence embedding, so cos is a dot product. A prompt whose cosine reaches θ adds nothing to
/// the gradient; the others add −E(P_r)/(2n) at E(P_a), carried back to the token's input
/// vector by `BertEncoder.backward` and summed over the token's positions.
public struct CreTokObjective: Sendable {
    public let settings: CreTokSettings
    /// The model's tokenizer plus the token at `settings.row`, cutting sentences at the
    /// encoder's position count.
    public let tokenizer: WordPieceTokenizer
    public let encoder: BertEncoder
    /// The initial word's embedding row: where training starts.
    public let initialVector: [Float]

    /// Sentences per encoder call when many are embedded (evaluation, the P_r cache).
    public static let chunk = 64

    public init(model: MiniLM, settings: CreTokSettings = .init()) throws {
        try self.init(tokenizer: model.tokenizer, encoder: model.encoder, settings: settings)
    }

    /// - Throws: `TextEncoderError` naming the setting when the settings are invalid, the row
    ///   is not an `[unusedN]` row of this vocabulary, or the initial word is not one piece.
    public init(tokenizer base: WordPieceTokenizer, encoder: BertEncoder, settings: CreTokSettings) throws {
        try settings.validate()
        let vocabulary = base.vocabulary, row = settings.row
        guard row < min(vocabulary.count, encoder.config.vocabularySize), vocabulary[row].hasPrefix("[unused") else {
            let what = row < vocabulary.count ? "is \(vocabulary[row])" : "is past the vocabulary of \(vocabulary.count)"
            throw TextEncoderError("CreTok row \(row) \(what), not an [unusedN] row",
                                   fix: "pick an [unusedN] row of vocab.txt (1 is [unused0] in BERT's uncased vocabulary)")
        }
        var added = base.addedTokens
        if let other = added.first(where: { $0.value == row && $0.key != settings.token }) {
            throw TextEncoderError("CreTok row \(row) is already the added token \(other.key)", fix: "pick another [unusedN] row")
        }
        if let id = added[settings.token], id != row {
            throw TextEncoderError("CreTok token \(settings.token) is already added at row \(id), not \(row)",
                                   fix: "load the model without it, or set row to \(id)")
        }
        added[settings.token] = row
        tokenizer = try WordPieceTokenizer(vocabulary: vocabulary, addedTokens: added,
                                           maxLength: min(base.maxLength, encoder.config.maxPositions))
        let pieces = tokenizer.tokens(settings.initialWord)
        guard pieces.count == 1, let id = tokenizer.id(of: pieces[0]), id != tokenizer.unknownID,
              !added.values.contains(id) || id == row else {
            throw TextEncoderError("CreTok initialWord \"\(settings.initialWord)\" is the pieces \(pieces), not one vocabulary word",
                                   fix: "pick a word that is one WordPiece of vocab.txt (\"creative\" is, in BERT's uncased vocabulary)")
        }
        let C = encoder.config.hidden
        initialVector = Array(UnsafeBufferPointer(start: encoder.weights.wordEmbeddings.data + id * C, count: C))
        self.settings = settings
        self.encoder = encoder
    }

    // MARK: - Prompts and embeddings

    /// The ordered pairs of a pair list, as the objective lays out its prompts: pair i's
    /// (t1, t2) at 2i, (t2, t1) at 2i + 1.
    public static func ordered(_ pairs: [CreTokPair]) -> [CreTokPair] { pairs.flatMap { [$0, $0.reversed] } }

    /// The ids of P_a for every ordered pair; refuses a prompt whose token was cut off.
    func adaptiveIDs(_ ordered: [CreTokPair]) throws -> [[Int]] {
        try ordered.map { p in
            let ids = tokenizer.encode(settings.adaptivePrompt(p.first, p.second))
            guard ids.contains(settings.row) else {
                throw TextEncoderError("the CreTok prompt \"\(settings.adaptivePrompt(p.first, p.second))\" loses \(settings.token) to truncation at \(tokenizer.maxLength) tokens",
                                       fix: "shorten adaptiveTemplate or the concepts")
            }
            return ids
        }
    }

    /// Unit sentence embeddings of `prompts`, `chunk` at a time; with `vector`, the token's
    /// row reads it (nil: the token's row is never used, e.g. for constant prompts).
    public func embed(_ prompts: [String], vector: [Float]? = nil) throws -> [[Float]] {
        let override = vector.map { EmbeddingOverride(row: settings.row, vector: $0) }
        let ids = prompts.map(tokenizer.encode)
        return try stride(from: 0, to: ids.count, by: Self.chunk).flatMap { start in
            try encoder.embed(Array(ids[start..<min(start + Self.chunk, ids.count)]), override: override)
        }
    }

    /// E(P_r) for every ordered pair of `pairs` (layout of `ordered`), `chunk` at a time: a
    /// pure function of the list, so a cache of it is the same however training is resumed.
    public func restrictiveEmbeddings(_ pairs: [CreTokPair]) throws -> [[Float]] {
        try embed(Self.ordered(pairs).map { settings.restrictivePrompt($0.first, $0.second) })
    }

    // MARK: - Loss

    /// The mean capped loss over both orders of `pairs` with the token at `vector`, one
    /// encoder call for all 2n adaptive prompts.
    /// - Parameters:
    ///   - restrictive: E(P_r) in the layout of `ordered(pairs)` (computed when nil).
    ///   - gradient: whether to run the backward pass for d(loss)/d(vector).
    public func loss(_ pairs: [CreTokPair], vector: [Float], restrictive: [[Float]]? = nil, gradient: Bool = true) throws -> CreTokLoss {
        let ordered = Self.ordered(pairs)
        let targets = try restrictive ?? restrictiveEmbeddings(pairs)
        guard targets.count == ordered.count else {
            throw TextEncoderError("\(targets.count) restrictive embeddings for \(ordered.count) ordered pairs",
                                   fix: "pass restrictiveEmbeddings(pairs)")
        }
        guard !ordered.isEmpty else { throw TextEncoderError("CreTok loss of no pairs", fix: "pass at least one pair") }
        let theta = settings.threshold, K = Double(ordered.count)
        let forward = try encoder.forward(adaptiveIDs(ordered), override: EmbeddingOverride(row: settings.row, vector: vector),
                                          keepActivations: gradient)
        let cosines = zip(targets, forward.embeddings).map { Self.dot($0, $1) }
        let loss = cosines.reduce(0.0) { $0 + (1 - min($1, theta)) } / K
        let open = cosines.map { $0 < theta }
        var g: [Float]?
        if gradient {
            if open.contains(true) {
                let scale = Float(-1 / K)
                let dE = zip(targets, open).map { t, o in o ? t.map { $0 * scale } : [Float](repeating: 0, count: t.count) }
                g = try encoder.backward(forward, dEmbeddings: dE).sum(forRow: settings.row)
            } else {
                g = [Float](repeating: 0, count: vector.count)
            }
        }
        return CreTokLoss(loss: loss, cosines: cosines, capped: open.filter { !$0 }.count, gradient: g)
    }

    // MARK: - Evaluation

    /// cos(E(P_r), E(P_a)) and the cosines of E(P_a) to each concept alone, for each pair
    /// (each the mean over both orders), with the token at `vector`, or with the literal
    /// initial word where the token stands when `vector` is nil (the untrained baseline).
    public func evaluate(_ pairs: [CreTokPair], vector: [Float]?) throws -> CreTokEvaluation {
        let ordered = Self.ordered(pairs)
        let adaptive = try embed(ordered.map { settings.adaptivePrompt($0.first, $0.second, literal: vector == nil) }, vector: vector)
        let restrictive = try restrictiveEmbeddings(pairs)
        var concepts: [String] = []
        for p in pairs { for c in [p.first, p.second] where !concepts.contains(c) { concepts.append(c) } }
        let single = Dictionary(uniqueKeysWithValues: zip(concepts, try embed(concepts.map(settings.conceptPrompt))))
        let scores = pairs.indices.map { i -> CreTokPairScore in
            let a = adaptive[2 * i], b = adaptive[2 * i + 1], p = pairs[i]
            func both(_ x: [Float], _ y: [Float]) -> Double { (Self.dot(x, a) + Self.dot(y, b)) / 2 }
            return CreTokPairScore(pair: p, cosine: both(restrictive[2 * i], restrictive[2 * i + 1]),
                                   cosineFirst: both(single[p.first]!, single[p.first]!),
                                   cosineSecond: both(single[p.second]!, single[p.second]!))
        }
        return CreTokEvaluation(scores: scores)
    }

    /// Σ a·b, accumulated in Double (the cosine of two unit embeddings).
    static func dot(_ a: [Float], _ b: [Float]) -> Double {
        var s = 0.0
        for i in a.indices { s += Double(a[i]) * Double(b[i]) }
        return s
    }
}

/// The objective at one vector.
public struct CreTokLoss: Sendable {
    /// Mean over the 2n prompts of 1 − min(cos, θ).
    public var loss: Double
    /// cos(E(P_r), E(P_a)) per prompt, pair i's (t1, t2) at 2i and (t2, t1) at 2i + 1.
    public var cosines: [Double]
    /// Prompts whose cosine reached θ (no gradient).
    public var capped: Int
    /// d(loss)/d(token vector), when asked for.
    public var gradient: [Float]?

    public var meanCosine: Double { cosines.reduce(0, +) / Double(max(1, cosines.count)) }
}

/// One pair's evaluation, each value the mean over both orders.
public struct CreTokPairScore: Sendable, Codable, Equatable {
    public var pair: CreTokPair
    /// cos(E(P_r), E(P_a)): how close the token's prompt is to the plain pair.
    public var cosine: Double
    /// cos(E("a {t1}"), E(P_a)) and cos(E("a {t2}"), E(P_a)): a token that fuses keeps both
    /// high; one that collapses to one concept raises one and drops the other.
    public var cosineFirst: Double
    public var cosineSecond: Double
}

/// An evaluation over a pair list.
public struct CreTokEvaluation: Sendable, Codable, Equatable {
    public var scores: [CreTokPairScore]

    public var meanCosine: Double { mean(\.cosine) }
    public var meanCosineFirst: Double { mean(\.cosineFirst) }
    public var meanCosineSecond: Double { mean(\.cosineSecond) }
    /// Mean of the weaker single-concept cosine (high when both concepts are kept).
    public var meanWeakerConcept: Double { mean { min($0.cosineFirst, $0.cosineSecond) } }
    /// Mean |cos to t1 − cos to t2| (high when the prompt leans to one concept).
    public var meanImbalance: Double { mean { abs($0.cosineFirst - $0.cosineSecond) } }

    func mean(_ f: (CreTokPairScore) -> Double) -> Double {
        scores.isEmpty ? 0 : scores.reduce(0.0) { $0 + f($1) } / Double(scores.count)
    }
}

import Foundation

/// CreTok's settings (methods.md §5.2): the token and its row, the prompt templates, the
/// capped cosine loss and its optimizer. The defaults are the paper's where it gives them.
public struct CreTokSettings: Codable, Sendable, Equatable, Hashable {
    /// The learned token, matched verbatim in prompts (an added token).
    public var token: String
    /// The vocabulary row the token occupies: an `[unusedN]` row (1 = `[unused0]` in BERT's
    /// uncased vocabulary). Only the vector is learned; the table stays frozen.
    public var row: Int
    /// The word whose embedding row starts the token, and which replaces the token in the
    /// untrained baseline prompt. Must be one WordPiece.
    public var initialWord: String
    /// P_r, the constant prompt: must contain {t1} and {t2}, not the token.
    public var restrictiveTemplate: String
    /// P_a, the prompt with the token: must contain the token, {t1} and {t2}.
    public var adaptiveTemplate: String
    /// The single-concept prompt of the evaluation ("a {t}"): must contain {t}.
    public var conceptTemplate: String
    /// Total optimizer steps; the cosine schedule decays to 0 over them.
    public var steps: Int
    /// Pairs sampled per step (distinct within a step); each gives 2 prompts (both orders).
    public var pairsPerStep: Int
    /// θ: a prompt's similarity reward is capped at θ (loss 1 − min(cos, θ)).
    public var threshold: Double
    /// Adam (no weight decay), peak learning rate, cosine decay, no warmup.
    public var learningRate: Double
    public var beta1: Double
    public var beta2: Double
    public var eps: Double
    /// Seeds the pair sampler (a Philox stream).
    public var seed: UInt64

    public static let defaultToken = "<CreTok>"
    public static let defaultAdaptiveTemplate = "a photo of a <CreTok> mixture that resembles a {t1} and a {t2}"

    public init(token: String = defaultToken, row: Int = 1, initialWord: String = "creative",
                restrictiveTemplate: String = "a {t1} {t2}", adaptiveTemplate: String = defaultAdaptiveTemplate,
                conceptTemplate: String = "a {t}", steps: Int = 10_000, pairsPerStep: Int = 16, threshold: Double = 0.5,
                learningRate: Double = 0.01, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8, seed: UInt64 = 0) {
        self.token = token
        self.row = row
        self.initialWord = initialWord
        self.restrictiveTemplate = restrictiveTemplate
        self.adaptiveTemplate = adaptiveTemplate
        self.conceptTemplate = conceptTemplate
        self.steps = steps
        self.pairsPerStep = pairsPerStep
        self.threshold = threshold
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.seed = seed
    }

    /// What makes these settings unusable, each naming the setting and the fix (empty when
    /// they are fine). The model-dependent checks (the row, the initial word) are
    /// `CreTokObjective`'s.
    public func problems() -> [String] {
        var out: [String] = []
        if token.isEmpty || token.unicodeScalars.contains(where: { $0.properties.isWhitespace }) {
            out.append("CreTok token \"\(token)\" must be non-empty without spaces, e.g. \(Self.defaultToken)")
        }
        if row < 0 { out.append("CreTok row \(row) must be a vocabulary row ≥ 0 (an [unusedN] row; 1 is [unused0])") }
        if initialWord.isEmpty || initialWord.contains(" ") {
            out.append("CreTok initialWord \"\(initialWord)\" must be one word, e.g. creative")
        }
        for (name, template) in [("restrictiveTemplate", restrictiveTemplate), ("adaptiveTemplate", adaptiveTemplate)] {
            for slot in ["{t1}", "{t2}"] where !template.contains(slot) {
                out.append("CreTok \(name) \"\(template)\" has no \(slot); it must name both concepts")
            }
        }
        if !token.isEmpty && !adaptiveTemplate.contains(token) {
            out.append("CreTok adaptiveTemplate \"\(adaptiveTemplate)\" has no \(token); the token is what is learned")
        }
        if !token.isEmpty && restrictiveTemplate.contains(token) {
            out.append("CreTok restrictiveTemplate \"\(restrictiveTemplate)\" contains \(token); it must be constant text")
        }
        if !conceptTemplate.contains("{t}") {
            out.append("CreTok conceptTemplate \"\(conceptTemplate)\" has no {t}; it must name the concept")
        }
        if steps < 1 { out.append("CreTok steps \(steps) must be at least 1") }
        if pairsPerStep < 1 { out.append("CreTok pairsPerStep \(pairsPerStep) must be at least 1") }
        if !threshold.isFinite { out.append("CreTok threshold \(threshold) must be finite (the paper's θ is 0.5)") }
        if !(learningRate.isFinite && learningRate > 0) { out.append("CreTok learningRate \(learningRate) must be positive") }
        if !(0..<1).contains(beta1) { out.append("CreTok beta1 \(beta1) must be in [0, 1)") }
        if !(0..<1).contains(beta2) { out.append("CreTok beta2 \(beta2) must be in [0, 1)") }
        if !(eps.isFinite && eps > 0) { out.append("CreTok eps \(eps) must be positive") }
        return out
    }

    /// Throws the problems, if any, as one error.
    public func validate() throws {
        let p = problems()
        if !p.isEmpty { throw TextEncoderError(p.joined(separator: "; "), fix: "correct the CreTok settings named") }
    }

    /// P_r for the ordered pair (t1, t2).
    public func restrictivePrompt(_ t1: String, _ t2: String) -> String { Self.fill(restrictiveTemplate, t1, t2) }

    /// P_a for (t1, t2); with `literal`, the initial word stands where the token is (the
    /// untrained "creative" baseline).
    public func adaptivePrompt(_ t1: String, _ t2: String, literal: Bool = false) -> String {
        let p = Self.fill(adaptiveTemplate, t1, t2)
        return literal ? p.replacingOccurrences(of: token, with: initialWord) : p
    }

    /// The single-concept prompt for `t`.
    public func conceptPrompt(_ t: String) -> String { conceptTemplate.replacingOccurrences(of: "{t}", with: t) }

    /// `template` with {t1} and {t2} filled in one pass (a concept containing "{t2}" stays as is).
    static func fill(_ template: String, _ t1: String, _ t2: String) -> String {
        template.components(separatedBy: "{t1}").map { $0.replacingOccurrences(of: "{t2}", with: t2) }.joined(separator: t1)
    }
}

import Foundation
import TextEncoder

extension Manifest {
    /// `text:` — how a text-conditioned model (`model.conditioning: text`) turns class folders
    /// into captions. Written back only for text-conditioned jobs.
    public struct TextSection: Sendable, Equatable {
        /// The caption of each class; `{class}` is the folder name made readable (a leading
        /// `<digits>_` dropped, underscores as spaces: `9_ankle_boot` → "ankle boot").
        public var caption = "a photo of a {class}"

        public init() {}

        var json: JSONValue { .object([("caption", .string(caption))]) }

        static func read(_ node: ConfigNode?, reader r: inout ConfigReader) -> TextSection {
            var s = TextSection()
            let f = r.fields(node, at: "text", known: ["caption"])
            s.caption = r.string(f, "caption", default: s.caption) ?? s.caption
            if !s.caption.contains("{class}") {
                r.add("text.caption", "`\(s.caption)` has no {class}; every class would get the same caption",
                      fix: "write a template naming the class, e.g. `caption: \"a photo of a {class}\"`", line: f.values["caption"]?.line)
            }
            return s
        }
    }

    /// `stage: cretok` (methods.md §5.2): the `<CreTok>` token's training (CreTokSettings, the
    /// job's `seed` seeding the pair sampler) and, with `inputs.model`, the blends it samples.
    /// Written back only for `cretok` jobs.
    public struct CreTokSection: Sendable, Equatable {
        public var token = CreTokSettings.defaultToken
        /// The `[unusedN]` vocabulary row the token occupies (1 is `[unused0]`).
        public var row = 1
        /// Where the token starts, and the word of the untrained baseline.
        public var initialWord = "creative"
        /// P_r, constant text with {t1} and {t2}.
        public var restrictiveTemplate = "a {t1} {t2}"
        /// P_a, with the token, {t1} and {t2}.
        public var adaptiveTemplate = CreTokSettings.defaultAdaptiveTemplate
        /// The single-concept prompt of the evaluation, with {t}.
        public var conceptTemplate = "a {t}"
        /// Adam steps (cosine decay to 0 over them).
        public var steps = 300
        /// Concept pairs per step (each in both orders).
        public var pairsPerStep = 16
        /// θ: loss 1 − min(cos(E(P_r), E(P_a)), θ).
        public var threshold = 0.5
        public var learningRate = 0.01
        public var adamBeta1 = 0.9
        public var adamBeta2 = 0.999
        public var adamEps = 1e-8
        /// With `inputs.model`: how many pairs of the dataset's classes to sample blends for
        /// (0: every pair; else a subset seeded by the job's seed).
        public var classPairs = 0
        /// Images per class pair and prompt kind (token prompt, plain P_r prompt).
        public var samplesPerPair = 8

        public static let fields = ["token", "row", "initial_word", "restrictive_template", "adaptive_template", "concept_template",
                                    "steps", "pairs_per_step", "threshold", "learning_rate", "adam_beta1", "adam_beta2", "adam_eps",
                                    "class_pairs", "samples_per_pair"]
        /// CreTokSettings' names (in its problems) → manifest fields.
        static let settingFields = ["token": "token", "row": "row", "initialWord": "initial_word",
                                    "restrictiveTemplate": "restrictive_template", "adaptiveTemplate": "adaptive_template",
                                    "conceptTemplate": "concept_template", "steps": "steps", "pairsPerStep": "pairs_per_step",
                                    "threshold": "threshold", "learningRate": "learning_rate", "beta1": "adam_beta1",
                                    "beta2": "adam_beta2", "eps": "adam_eps"]

        public init() {}

        /// The trainer's settings (the pair sampler seeded by the job's seed).
        public func settings(seed: Int) -> CreTokSettings {
            CreTokSettings(token: token, row: row, initialWord: initialWord, restrictiveTemplate: restrictiveTemplate,
                           adaptiveTemplate: adaptiveTemplate, conceptTemplate: conceptTemplate, steps: steps,
                           pairsPerStep: pairsPerStep, threshold: threshold, learningRate: learningRate, beta1: adamBeta1,
                           beta2: adamBeta2, eps: adamEps, seed: UInt64(seed))
        }

        var json: JSONValue {
            .object([("token", .string(token)), ("row", .int(row)), ("initial_word", .string(initialWord)),
                     ("restrictive_template", .string(restrictiveTemplate)), ("adaptive_template", .string(adaptiveTemplate)),
                     ("concept_template", .string(conceptTemplate)), ("steps", .int(steps)), ("pairs_per_step", .int(pairsPerStep)),
                     ("threshold", .double(threshold)), ("learning_rate", .double(learningRate)),
                     ("adam_beta1", .double(adamBeta1)), ("adam_beta2", .double(adamBeta2)), ("adam_eps", .double(adamEps)),
                     ("class_pairs", .int(classPairs)), ("samples_per_pair", .int(samplesPerPair))])
        }

        static func read(_ node: ConfigNode?, reader r: inout ConfigReader) -> CreTokSection {
            var s = CreTokSection()
            let f = r.fields(node, at: "cretok", known: fields)
            s.token = r.string(f, "token", default: s.token) ?? s.token
            s.row = r.int(f, "row", default: s.row, range: 0...1_000_000, fix: "use an [unusedN] row of vocab.txt; 1 is [unused0]")
            s.initialWord = r.string(f, "initial_word", default: s.initialWord) ?? s.initialWord
            s.restrictiveTemplate = r.string(f, "restrictive_template", default: s.restrictiveTemplate) ?? s.restrictiveTemplate
            s.adaptiveTemplate = r.string(f, "adaptive_template", default: s.adaptiveTemplate) ?? s.adaptiveTemplate
            s.conceptTemplate = r.string(f, "concept_template", default: s.conceptTemplate) ?? s.conceptTemplate
            s.steps = r.int(f, "steps", default: s.steps, range: 1...10_000_000, fix: "use a positive step count, e.g. 300")
            let pairs = CreTokPairs.training.count
            s.pairsPerStep = r.int(f, "pairs_per_step", default: s.pairsPerStep, range: 1...pairs,
                                   fix: "use 1…\(pairs) (the shipped training pairs); the paper's n is 16")
            s.threshold = r.double(f, "threshold", default: s.threshold, range: -1...2, fix: "use a cosine cap such as 0.5 (the paper's θ)")
            s.learningRate = r.double(f, "learning_rate", default: s.learningRate, range: 0...10, openLower: true,
                                      fix: "use a positive learning rate, e.g. 0.01")
            s.adamBeta1 = r.double(f, "adam_beta1", default: s.adamBeta1, range: 0...0.999999, fix: "use a value in [0, 1), e.g. 0.9")
            s.adamBeta2 = r.double(f, "adam_beta2", default: s.adamBeta2, range: 0...0.999999999, fix: "use a value in [0, 1), e.g. 0.999")
            s.adamEps = r.double(f, "adam_eps", default: s.adamEps, range: 0...1, openLower: true, fix: "use a small positive value, e.g. 1e-8")
            s.classPairs = r.int(f, "class_pairs", default: s.classPairs, range: 0...100_000, fix: "use 0 (every pair of classes) or a count, e.g. 6")
            s.samplesPerPair = r.int(f, "samples_per_pair", default: s.samplesPerPair, range: 1...256, fix: "use 1…256 images per pair, e.g. 8")
            // The trainer's own checks (templates, token), each under its manifest field.
            for message in s.settings(seed: 0).problems() {
                let words = message.split(separator: " ")
                let name = words.count > 1 ? String(words[1]) : ""
                guard let field = settingFields[name] else { continue }
                guard !r.problems.contains(where: { $0.field == "cretok.\(field)" }) else { continue }
                r.add("cretok.\(field)", message, fix: "correct cretok.\(field)", line: f.values[field]?.line ?? f.line)
            }
            return s
        }
    }
}

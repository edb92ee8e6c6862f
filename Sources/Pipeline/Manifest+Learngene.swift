import DiT
import Foundation
import Learngene

extension Manifest {
    /// `condense` and `init`: how an ancestry DiT is condensed into learngenes and which
    /// descendants are grown from them (methods.md §2–§4). Fields of another method are
    /// ignored by this one (and still written back, so the manifest stays one format).
    public struct LearngeneSection: Sendable, Equatable {
        /// `fine`, `kind` or `wave`.
        public var method = "fine"
        /// How the factors start: `ancestry` (FINE: joint eigenvectors of the ancestry's
        /// layers; KIND: per-layer SVD; WAVE: Van Loan–Pitsianis) or `random`.
        public var initialization = "ancestry"
        /// FINE/KIND: components per matrix (0: full rank, the hidden size).
        public var rank = 0
        /// KIND: share of each matrix's components that are learngenes (the rest are tailors).
        public var learngeneFraction = 0.5
        /// KIND: which tailors a class opens: `partition` or `random-half`.
        public var gate = "partition"
        /// WAVE: square template size (must divide the hidden size and the MLP width).
        public var templateSize = 32
        /// WAVE: templates per matrix type.
        public var templates = 4
        /// Weight of the distillation term (MSE to the ancestry's noise prediction) during
        /// `condense`; the default is 1 for WAVE (its integration is a distillation) and 0 for
        /// FINE and KIND (trained with the diffusion loss alone, as their papers say).
        public var distillWeight = 0.0
        /// `init`: descendant depths (default: the ancestry's depth).
        public var depths: [Int] = []
        /// `init`: descendant hidden sizes (WAVE only; default: the ancestry's width).
        public var widths: [Int] = []
        /// `init`, FINE: how each layer's σ starts: `trained` (the paper: random, then trained
        /// on the data subset for training.steps), or the untrained ablations `random`,
        /// `identical` (mean over the ancestry's layers), `linear` (interpolated in depth).
        public var sigmaInit = "trained"
        /// `init`, WAVE: descendant scalers `interpolate` (from the ancestry's) or `random`.
        public var scalerInit = "interpolate"

        public static let methods = LearngeneMethod.allCases.map(\.rawValue)
        public static let initializations = ["ancestry", "random"]
        public static let gates = KindSettings.Gate.allCases.map(\.rawValue)
        public static let sigmaInits = FineParameterization.SigmaInit.allCases.map(\.rawValue)
        public static let scalerInits = WaveScalerInit.allCases.map(\.rawValue)
        public static let fields = ["method", "initialization", "rank", "learngene_fraction", "gate", "template_size", "templates",
                                    "distill_weight", "depths", "widths", "sigma_init", "scaler_init"]

        public init() {}

        var json: JSONValue {
            .object([("method", .string(method)), ("initialization", .string(initialization)), ("rank", .int(rank)),
                     ("learngene_fraction", .double(learngeneFraction)), ("gate", .string(gate)),
                     ("template_size", .int(templateSize)), ("templates", .int(templates)),
                     ("distill_weight", .double(distillWeight)),
                     ("depths", .array(depths.map { .int($0) })), ("widths", .array(widths.map { .int($0) })),
                     ("sigma_init", .string(sigmaInit)), ("scaler_init", .string(scalerInit))])
        }

        static func read(_ node: ConfigNode?, reader r: inout ConfigReader) -> LearngeneSection {
            var s = LearngeneSection()
            let f = r.fields(node, at: "learngene", known: fields)
            s.method = r.choice(f, "method", default: s.method, choices: methods)
            s.initialization = r.choice(f, "initialization", default: s.initialization, choices: initializations)
            s.rank = r.int(f, "rank", default: 0, range: 0...4096, fix: "use 0 (full rank) or a rank such as 32")
            s.learngeneFraction = r.double(f, "learngene_fraction", default: s.learngeneFraction, range: 0...1,
                                           fix: "use a share in [0, 1], e.g. 0.5 (half learngenes, half tailors)")
            s.gate = r.choice(f, "gate", default: s.gate, choices: gates)
            s.templateSize = r.int(f, "template_size", default: s.templateSize, range: 1...4096,
                                   fix: "use a size that divides the hidden size, e.g. 32")
            s.templates = r.int(f, "templates", default: s.templates, range: 1...1024, fix: "use 1…1024 templates per matrix type, e.g. 4")
            s.distillWeight = r.double(f, "distill_weight", default: s.method == "wave" ? 1 : 0, range: 0...1000,
                                       fix: "use 0 (no distillation) or a positive weight such as 1")
            s.depths = r.ints(f, "depths", default: [], range: 1...64, fix: "use depths 1…64, e.g. [2, 6]")
            s.widths = r.ints(f, "widths", default: [], range: 4...4096, fix: "use hidden sizes such as [128, 256]")
            s.sigmaInit = r.choice(f, "sigma_init", default: s.sigmaInit, choices: sigmaInits)
            s.scalerInit = r.choice(f, "scaler_init", default: s.scalerInit, choices: scalerInits)
            if !s.widths.isEmpty && s.method != "wave" {
                r.add("learngene.widths", "method \(s.method) shares U⋆ and V⋆ across sizes, which fixes the width",
                      fix: "remove `widths` (only WAVE's templates serve other widths) or use `method: wave`", line: f.values["widths"]?.line)
            }
            return s
        }

        var methodValue: LearngeneMethod { LearngeneMethod(rawValue: method) ?? .fine }
        var fineSettings: FineSettings {
            FineSettings(rank: rank > 0 ? rank : nil, initialization: initialization == "random" ? .random : .ancestry)
        }
        func kindSettings(seed: Int) -> KindSettings {
            KindSettings(rank: rank > 0 ? rank : nil, learngeneFraction: learngeneFraction,
                         gate: KindSettings.Gate(rawValue: gate) ?? .partition, gateSeed: UInt64(seed),
                         initialization: initialization == "random" ? .random : .ancestry)
        }
        var waveSettings: WaveSettings { WaveSettings(templateSize: templateSize, count: templates) }
    }
}

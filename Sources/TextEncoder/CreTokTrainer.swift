import Foundation
import Formats
import Tensors

/// Everything a CreTok run needs to continue bit-identically: the token's vector, Adam's
/// moments, the step, the sampler's position, and the curves so far. Codable (JSON) and
/// convertible to and from a safetensors file (`file()`, `init(file:)`).
public struct CreTokState: Codable, Sendable, Equatable {
    public var settings: CreTokSettings
    public var vector: [Float]
    /// Adam's first and second moments.
    public var m: [Float]
    public var v: [Float]
    /// Steps taken.
    public var step: Int
    /// The pair sampler (Philox: seed, stream, position).
    public var random: RandomStream
    /// Per step: the loss, the mean cos(E(P_r), E(P_a)) and the share of capped prompts.
    public var losses: [Float]
    public var cosines: [Float]
    public var capped: [Float]

    /// A fresh run from `vector`.
    public init(settings: CreTokSettings, vector: [Float]) {
        self.settings = settings
        self.vector = vector
        m = [Float](repeating: 0, count: vector.count)
        v = m
        step = 0
        random = RandomStream(seed: settings.seed)
        losses = []
        cosines = []
        capped = []
    }

    public static let format = "learngene.cretok.state.v1"

    /// The state as safetensors: the float arrays as F32 tensors, the rest (step, sampler,
    /// settings as JSON) in the metadata, all exactly.
    public func file() throws -> SafeTensors.File {
        let settingsJSON = String(decoding: try Self.encoder.encode(settings), as: UTF8.self)
        return SafeTensors.File(
            tensors: ["vector": .f32(vector, shape: [vector.count]), "adam.m": .f32(m, shape: [m.count]),
                      "adam.v": .f32(v, shape: [v.count]), "curve.loss": .f32(losses, shape: [losses.count]),
                      "curve.cosine": .f32(cosines, shape: [cosines.count]), "curve.capped": .f32(capped, shape: [capped.count])],
            metadata: ["format": Self.format, "step": String(step), "random.seed": String(random.seed),
                       "random.stream": String(random.stream), "random.position": String(random.position), "settings": settingsJSON])
    }

    public init(file: SafeTensors.File) throws {
        func bad(_ what: String) -> TextEncoderError {
            TextEncoderError("not a CreTok state: \(what)", fix: "pass a file written by CreTokState.file()")
        }
        guard file.metadata["format"] == Self.format else { throw bad("format is \(file.metadata["format"] ?? "missing"), not \(Self.format)") }
        func floats(_ name: String) throws -> [Float] {
            guard let e = file[name], e.dtype == .f32 else { throw bad("no F32 tensor \(name)") }
            return e.floats()
        }
        func number<T: LosslessStringConvertible>(_ key: String) throws -> T {
            guard let s = file.metadata[key], let x = T(s) else { throw bad("metadata \(key) is missing or malformed") }
            return x
        }
        guard let json = file.metadata["settings"], let s = try? JSONDecoder().decode(CreTokSettings.self, from: Data(json.utf8)) else {
            throw bad("metadata settings is missing or malformed")
        }
        settings = s
        vector = try floats("vector")
        m = try floats("adam.m")
        v = try floats("adam.v")
        losses = try floats("curve.loss")
        cosines = try floats("curve.cosine")
        capped = try floats("curve.capped")
        step = try number("step")
        random = RandomStream(seed: try number("random.seed"), stream: try number("random.stream"), position: try number("random.position"))
        guard m.count == vector.count, v.count == vector.count, losses.count == step, cosines.count == step, capped.count == step else {
            throw bad("sizes disagree (vector \(vector.count), m \(m.count), v \(v.count), \(losses.count) losses for step \(step))")
        }
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()
}

/// One step's numbers (the loss curve).
public struct CreTokStepRecord: Sendable, Codable, Equatable {
    /// 1 for the first step.
    public var step: Int
    public var loss: Double
    /// Mean cos(E(P_r), E(P_a)) over the step's prompts, before the update.
    public var meanCosine: Double
    /// Share of the step's prompts at or above θ (no gradient).
    public var cappedFraction: Double
    /// The learning rate the update used.
    public var learningRate: Double
    /// |d(loss)/d(vector)|.
    public var gradientNorm: Double
}

/// Trains the `<CreTok>` vector (methods.md §5.2). Each step samples `pairsPerStep` distinct
/// pairs with the seeded Philox stream (a partial Fisher–Yates shuffle, 2 words per draw),
/// computes the capped loss over both orders of each in one encoder call (the P_r embeddings
/// come from a cache made once for the whole list), and takes one Adam step on the vector
/// (β 0.9/0.999, ε 1e-8, no weight decay) at lr·½(1 + cos(π·k/steps)) for step k = 0, 1, ….
///
/// Runs are deterministic: the same settings, pairs and state give the same bits, and a run
/// restored from `state` continues exactly as if it had not stopped.
public struct CreTokTrainer: Sendable {
    public let objective: CreTokObjective
    public let pairs: [CreTokPair]
    public private(set) var state: CreTokState
    /// E(P_r) for every ordered training pair.
    let restrictive: [CreTokPair: [Float]]

    public var settings: CreTokSettings { objective.settings }
    public var vector: [Float] { state.vector }
    public var isFinished: Bool { state.step >= settings.steps }

    public init(model: MiniLM, settings: CreTokSettings = .init(), pairs: [CreTokPair] = CreTokPairs.training,
                resumingFrom state: CreTokState? = nil) throws {
        try self.init(objective: CreTokObjective(model: model, settings: settings), pairs: pairs, resumingFrom: state)
    }

    /// - Throws: `TextEncoderError` when the pairs are too few or repeat, a prompt loses the
    ///   token to truncation, or the state was made with other settings or another model size.
    public init(objective: CreTokObjective, pairs: [CreTokPair], resumingFrom state: CreTokState? = nil) throws {
        let s = objective.settings
        guard pairs.count >= s.pairsPerStep else {
            throw TextEncoderError("CreTok pairsPerStep \(s.pairsPerStep) is more than the \(pairs.count) training pairs",
                                   fix: "lower pairsPerStep or give more pairs")
        }
        let ordered = CreTokObjective.ordered(pairs)
        guard Set(ordered).count == ordered.count else {
            throw TextEncoderError("the CreTok training pairs repeat a pair (in some order)", fix: "remove the duplicates")
        }
        _ = try objective.adaptiveIDs(ordered)
        if let state {
            guard state.settings == s else {
                throw TextEncoderError("the CreTok state was made with other settings", fix: "resume with the settings it was saved with")
            }
            guard state.vector.count == objective.encoder.config.hidden else {
                throw TextEncoderError("the CreTok state's vector has \(state.vector.count) values, the encoder \(objective.encoder.config.hidden)",
                                       fix: "resume with the model it was trained with")
            }
        }
        self.objective = objective
        self.pairs = pairs
        self.state = state ?? CreTokState(settings: s, vector: objective.initialVector)
        restrictive = Dictionary(uniqueKeysWithValues: zip(ordered, try objective.restrictiveEmbeddings(pairs)))
    }

    /// The learning rate of step k (0-based): cosine decay from the peak to 0 over `steps`.
    public func learningRate(atStep k: Int) -> Double {
        settings.learningRate * 0.5 * (1 + cos(Double.pi * Double(min(k, settings.steps)) / Double(settings.steps)))
    }

    /// Draws the next step's pair indices (distinct) from `random`.
    static func sample(count n: Int, from total: Int, random: inout RandomStream) -> [Int] {
        var index = Array(0..<total)
        for i in 0..<n { index.swapAt(i, i + random.nextInt(below: total - i)) }
        return Array(index[..<n])
    }

    /// One step: sample, loss and gradient, Adam. Past `steps` the learning rate is 0, so the
    /// vector stays put (the curves still grow; `train` stops at `steps`).
    @discardableResult
    public mutating func step() throws -> CreTokStepRecord {
        let s = settings
        let chosen = Self.sample(count: s.pairsPerStep, from: pairs.count, random: &state.random).map { pairs[$0] }
        let targets = CreTokObjective.ordered(chosen).map { restrictive[$0]! }
        let result = try objective.loss(chosen, vector: state.vector, restrictive: targets)
        let g = result.gradient!
        let lr = learningRate(atStep: state.step)
        state.step += 1
        Self.adam(&state, gradient: g, lr: lr)
        let record = CreTokStepRecord(step: state.step, loss: result.loss, meanCosine: result.meanCosine,
                                      cappedFraction: Double(result.capped) / Double(result.cosines.count), learningRate: lr,
                                      gradientNorm: CreTokObjective.dot(g, g).squareRoot())
        state.losses.append(Float(record.loss))
        state.cosines.append(Float(record.meanCosine))
        state.capped.append(Float(record.cappedFraction))
        return record
    }

    /// Steps until `steps` in all (or `count` more), reporting each.
    public mutating func train(count: Int? = nil, progress: (CreTokStepRecord) throws -> Void = { _ in }) throws {
        let end = min(settings.steps, count.map { state.step + $0 } ?? settings.steps)
        while state.step < end { try progress(try step()) }
    }

    /// PyTorch's Adam (`torch.optim.Adam`, weight decay 0) on the vector, step `state.step`
    /// (already counted): m ← m + (1−β₁)(g − m), v ← β₂v + (1−β₂)g²,
    /// p ← p − (lr/(1−β₁ᵗ))·m/(√v/√(1−β₂ᵗ) + ε), bias corrections in Double.
    static func adam(_ state: inout CreTokState, gradient g: [Float], lr: Double) {
        let s = state.settings, t = Double(state.step)
        let stepSize = Float(lr / (1 - pow(s.beta1, t))), bc2Sqrt = Float((1 - pow(s.beta2, t)).squareRoot())
        let b1w = Float(1 - s.beta1), b2 = Float(s.beta2), b2w = Float(1 - s.beta2), eps = Float(s.eps)
        for i in g.indices {
            state.m[i] += b1w * (g[i] - state.m[i])
            state.v[i] = state.v[i] * b2 + b2w * g[i] * g[i]
            state.vector[i] -= stepSize * (state.m[i] / (state.v[i].squareRoot() / bc2Sqrt + eps))
        }
    }

    /// The learned token as a textual-inversion file: `{token: vector}` (shape [1, hidden], as
    /// diffusers' textual inversion saves it), with the row and initial word in the metadata.
    public func tokenFile() -> SafeTensors.File {
        CreTokTrainer.tokenFile(vector: state.vector, settings: settings)
    }

    /// Writes `tokenFile()` to `path` (atomically).
    public func writeTokenFile(to path: String) throws {
        try SafeTensors.write(tokenFile(), to: path)
    }

    public static func tokenFile(vector: [Float], settings: CreTokSettings) -> SafeTensors.File {
        SafeTensors.File(tensors: [settings.token: .f32(vector, shape: [1, vector.count])],
                         metadata: ["row": String(settings.row), "initial_word": settings.initialWord])
    }

    /// Reads the vector of `token` from a textual-inversion file (shape [hidden] or [1, hidden]).
    public static func readToken(_ file: SafeTensors.File, token: String = CreTokSettings.defaultToken) throws -> [Float] {
        guard let e = file[token], e.dtype == .f32, e.shape.count == 1 || (e.shape.count == 2 && e.shape[0] == 1) else {
            throw TextEncoderError("the token file has no F32 vector \(token) (it has \(file.tensors.keys.sorted()))",
                                   fix: "pass a file written by CreTokTrainer.tokenFile()")
        }
        return e.floats()
    }
}

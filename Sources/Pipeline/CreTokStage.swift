import Datasets
import DiT
import Formats
import Foundation
import Metrics
import Tensors
import TextEncoder

/// `stage: cretok` (methods.md §5.2): learns the `<CreTok>` token on the frozen
/// all-MiniLM-L6-v2 with `CreTokTrainer` (the shipped 200 training pairs, `cretok:` settings,
/// the job's seed), then measures it in embedding space on the training and the 30 held-out
/// pairs, next to the untrained initial word ("creative").
///
/// With `inputs.model` (a text-conditioned DiT: `model.conditioning: text`) and its
/// `inputs.dataset`, it also samples blends: for pairs of the model's classes (all, or
/// `cretok.class_pairs` seeded ones) it embeds P_a with the token and the plain P_r (class
/// names as t1/t2), samples `cretok.samples_per_pair` images of each with
/// `sample(textEmbeddings:)` — the same noise for both kinds — and scores them with
/// EfficientNet-Lite0: each sample's pooled features against the two classes' centroids (means
/// over the dataset's real images, `evaluation.reference_images`); a sample's blend is the
/// smaller of the two cosines (high only when it is near both classes).
///
/// Outputs: `cretok.safetensors` (`{"<CreTok>": [1, hidden]}`), `loss.png`, `metrics.json`,
/// `report.html`; with a model also `blends-token.png` and `blends-plain.png` (one row per pair).
///
/// Resumable bit for bit: the trainer's whole state (vector, Adam moments, step, the pair
/// sampler, the curves) is checkpointed every `checkpoint.every` steps and on stop; the
/// evaluation and the blends are deterministic and are recomputed after a restart.
public struct CreTokStage: Stage {
    public init() {}
    public var stageDescription: StageDescription { StageCatalog.cretok }
    public func run(_ ctx: JobContext) throws -> StageOutcome { try CreTokRun(ctx: ctx).run() }
}

struct CreTokRun {
    let ctx: JobContext

    /// The loop's part of a checkpoint (the trainer's state is the tensors file).
    struct LoopState: Codable, Sendable {
        var trainSeconds = 0.0
        /// Wall seconds of earlier processes, up to their last checkpoint.
        var wallSeconds = 0.0
    }

    func run() throws -> StageOutcome {
        let m = ctx.manifest
        let wallStart = Date()
        let settings = m.cretok.settings(seed: m.seed)
        let encoder = try TextConditioning.encoder(ctx, purpose: "stage cretok")
        let objective: CreTokObjective
        do { objective = try CreTokObjective(model: encoder, settings: settings) } catch let e as TextEncoderError {
            throw JobError(what: e.what, where: "manifest section cretok", fix: e.fix)
        }
        // The model first (fail before training when it is unusable).
        let blendModel = try ctx.inputs["model"].map { _ in try loadModel(encoderHidden: encoder.encoder.config.hidden) }

        // Training.
        var loop = LoopState()
        var wallBefore = 0.0
        var trainer: CreTokTrainer
        var warnings: [String] = []
        if let ckpt = try ctx.checkpoints.latest(LoopState.self, warnings: &warnings) {
            for w in warnings { ctx.log.event("warning", w, level: .warning) }
            do {
                trainer = try CreTokTrainer(objective: objective, pairs: CreTokPairs.training, resumingFrom: CreTokState(file: ckpt.tensors))
            } catch {
                throw JobError(what: "checkpoint \(ctx.layout.relative(ckpt.directory)) does not fit this job: \(error)",
                               where: ctx.layout.relative(ckpt.directory),
                               fix: "restore the manifest and text encoder the job started with, or delete \(ctx.layout.relative(ctx.checkpoints.directory)) to start over")
            }
            guard trainer.state.step == ckpt.step else {
                throw JobError(what: "checkpoint folder says step \(ckpt.step) but its state is at step \(trainer.state.step)",
                               where: ctx.layout.relative(ckpt.directory), fix: "delete that checkpoint folder; the previous one will be used")
            }
            loop = ckpt.state
            wallBefore = loop.wallSeconds
            ctx.log.event("resume", "resumed CreTok training at step \(trainer.state.step)", [("step", .int(trainer.state.step))])
        } else {
            ctx.progress.setPhase("embedding the \(CreTokPairs.training.count) training pairs' P_r")
            trainer = try CreTokTrainer(objective: objective, pairs: CreTokPairs.training)
        }
        func save() throws {
            loop.wallSeconds = wallBefore + Date().timeIntervalSince(wallStart)
            ctx.progress.heartbeat()
            try ctx.checkpoints.save(step: trainer.state.step, tensors: trainer.state.file(), state: loop)
            ctx.log.event("checkpoint", "checkpoint at step \(trainer.state.step)", level: .debug, [("step", .int(trainer.state.step))])
        }
        ctx.progress.setPhase("training \(settings.token)", step: trainer.state.step, total: settings.steps)
        var lastSaved = trainer.state.step
        if ctx.shouldStop() { return .stopped(step: lastSaved) }
        while !trainer.isFinished {
            let t0 = Date()
            let r = try trainer.step()
            loop.trainSeconds += Date().timeIntervalSince(t0)
            guard r.loss.isFinite else {
                throw JobError(what: "the CreTok loss became \(r.loss) at step \(r.step)", where: "training",
                               fix: "lower cretok.learning_rate (e.g. by 10×), then drop the manifest in again")
            }
            ctx.progress.trainingStep(r.step, of: settings.steps, loss: r.loss, images: 2 * settings.pairsPerStep,
                                      extra: [("cosine", .double(r.meanCosine)), ("capped", .double(r.cappedFraction)),
                                              ("lr", .double(r.learningRate))])
            if r.step % m.checkpoint.every == 0 {
                try save()
                lastSaved = r.step
            }
            if ctx.shouldStop() {
                if lastSaved != r.step { try save() }
                return .stopped(step: r.step)
            }
        }
        if lastSaved != trainer.state.step || ctx.checkpoints.completeSteps().last != trainer.state.step { try save() }
        if ctx.shouldStop() { return .stopped(step: trainer.state.step) }
        let trainedWall = wallBefore + Date().timeIntervalSince(wallStart)
        let vector = trainer.vector
        do { try trainer.writeTokenFile(to: ctx.outputDirectory + "/cretok.safetensors") } catch {
            throw JobError(what: "cannot write cretok.safetensors: \(error)", where: ctx.layout.relative(ctx.outputDirectory),
                           fix: "check free space and permissions in Outbox/")
        }

        // Embedding-space evaluation: token vs the untrained word, training and held-out pairs.
        let evalStart = Date()
        var lists: [(String, [CreTokPair], token: CreTokEvaluation, word: CreTokEvaluation)] = []
        for (name, pairs) in [("train", CreTokPairs.training), ("held_out", CreTokPairs.heldOut)] {
            if ctx.shouldStop() { return .stopped(step: trainer.state.step) }
            ctx.progress.setPhase("evaluating the token on the \(pairs.count) \(name.replacingOccurrences(of: "_", with: "-")) pairs")
            lists.append((name, pairs, try objective.evaluate(pairs, vector: vector), try objective.evaluate(pairs, vector: nil)))
        }
        let evalSeconds = Date().timeIntervalSince(evalStart)

        // Blends.
        let outputs = ModelOutputs(ctx: ctx)
        var blend: Blends?
        var blendSeconds = 0.0
        if let blendModel {
            let t0 = Date()
            guard let b = try blends(blendModel, objective: objective, vector: vector, outputs: outputs) else {
                return .stopped(step: trainer.state.step)
            }
            blend = b
            blendSeconds = Date().timeIntervalSince(t0)
        }

        // Loss curve: means per training.log_every steps.
        let w = m.training.logEvery, losses = trainer.state.losses.map { Double($0) }
        let curve = stride(from: 0, to: losses.count, by: w).map { s -> (step: Int, loss: Double) in
            let e = min(losses.count, s + w)
            return (e, losses[s..<e].reduce(0, +) / Double(e - s))
        }
        try outputs.writeLossCurve(curve, title: "CRETOK LOSS")

        let wall = trainedWall + Date().timeIntervalSince(evalStart)
        let r = PretrainStage.round
        func evaluationJSON(_ e: CreTokEvaluation) -> JSONValue {
            .object([("mean_cosine", .double(e.meanCosine)), ("mean_cosine_first", .double(e.meanCosineFirst)),
                     ("mean_cosine_second", .double(e.meanCosineSecond)), ("mean_weaker_concept", .double(e.meanWeakerConcept)),
                     ("mean_imbalance", .double(e.meanImbalance))])
        }
        func scoreJSON(_ s: CreTokPairScore) -> JSONValue {
            .object([("cosine", .double(s.cosine)), ("cosine_first", .double(s.cosineFirst)), ("cosine_second", .double(s.cosineSecond))])
        }
        var fields: [(String, JSONValue)] = [
            ("job", .string(ctx.job)), ("stage", .string("cretok")), ("config_hash", .string(m.configHash)),
            ("token", .string(settings.token)), ("row", .int(settings.row)), ("untrained_word", .string(settings.initialWord)),
            ("encoder", .string((encoder.folder as NSString).lastPathComponent)), ("hidden", .int(encoder.encoder.config.hidden)),
            ("steps", .int(trainer.state.step)), ("pairs_per_step", .int(settings.pairsPerStep)), ("threshold", .double(settings.threshold)),
            ("loss", .object([("first", losses.first.map { .double($0) } ?? .null), ("final", curve.last.map { .double($0.loss) } ?? .null),
                              ("min_window", curve.map(\.loss).min().map { .double($0) } ?? .null), ("window_steps", .int(w)),
                              ("curve", .array(curve.map { .array([.int($0.step), .double($0.loss)]) }))])),
            ("cosine", .object(lists.map { l -> (String, JSONValue) in
                (l.0, .object([("pairs", .int(l.1.count)), ("token", evaluationJSON(l.token)), ("untrained_word", evaluationJSON(l.word))]))
            })),
            ("pairs", .object(lists.map { l -> (String, JSONValue) in
                (l.0, .array(zip(l.token.scores, l.word.scores).map { t, u -> JSONValue in
                    .object([("pair", .array([.string(t.pair.first), .string(t.pair.second)])), ("token", scoreJSON(t)), ("untrained_word", scoreJSON(u))])
                }))
            })),
            ("blends", blend?.json ?? .null),
            ("train_seconds", .double(r(loop.trainSeconds))), ("evaluation_seconds", .double(r(evalSeconds))),
            ("blend_seconds", .double(r(blendSeconds))), ("wall_seconds", .double(r(wall))),
            ("peak_memory_bytes", .int(PretrainStage.peakMemoryBytes())), ("starts", .int(ctx.attempt)),
        ]
        if blend == nil { fields.append(("blends_note", .string("no inputs.model: token training only"))) }
        try FileOps.writeDurably(JSONValue.object(fields).pretty, to: ctx.outputDirectory + "/metrics.json")

        let held = lists[1], train = lists[0]
        func f(_ x: Double) -> String { String(format: "%.4f", x) }
        var facts: [(String, String)] = [
            ("held-out mean cos(E(P_r), E(P_a))", "token \(f(held.token.meanCosine)), \"\(settings.initialWord)\" \(f(held.word.meanCosine)) (\(held.1.count) pairs)"),
            ("training mean cos(E(P_r), E(P_a))", "token \(f(train.token.meanCosine)), \"\(settings.initialWord)\" \(f(train.word.meanCosine)) (\(train.1.count) pairs)"),
            ("held-out weaker single-concept cos", "token \(f(held.token.meanWeakerConcept)), \"\(settings.initialWord)\" \(f(held.word.meanWeakerConcept))"),
            ("steps", "\(trainer.state.step) × \(settings.pairsPerStep) pairs (both orders), θ \(settings.threshold), lr \(settings.learningRate) cosine-decayed"),
            ("final loss (window mean)", curve.last.map { f($0.loss) } ?? "?"),
            ("encoder", "\(encoder.folder) (\(encoder.encoder.config.hidden)-d)"), ("starts", "\(ctx.attempt)"),
        ]
        if let blend { facts += blend.facts } else { facts.append(("blends", "not sampled (no inputs.model)")) }
        let pictures = [
            Report.Picture(caption: "blends with the token prompt (one row per class pair)", path: "blends-token.png"),
            Report.Picture(caption: "the plain prompt P_r, same noise (one row per class pair)", path: "blends-plain.png"),
        ].filter { FileManager.default.fileExists(atPath: ctx.outputDirectory + "/" + $0.path) }
        try outputs.writeReport(manifest: m, metrics: nil, facts: facts,
                                timings: [("token training", loop.trainSeconds), ("embedding-space evaluation", evalSeconds),
                                          ("blends (sampling, features)", blendSeconds),
                                          ("other (encoder, checkpoints, earlier processes)", max(0, wall - loop.trainSeconds - evalSeconds - blendSeconds))],
                                pictures: pictures,
                                training: [TrainingRecords.Curves(name: "cretok", loss: curve.map { TrainingLoop.LossPoint(step: $0.step, loss: $0.loss) })],
                                finalStep: trainer.state.step)
        var summary = "trained \(settings.token) \(trainer.state.step) steps; held-out cos token \(f(held.token.meanCosine)) vs \"\(settings.initialWord)\" \(f(held.word.meanCosine))"
        if let s = blend?.scores { summary += "; blend token \(f(s.token)) vs plain \(f(s.plain))" }
        return .completed(StageResult(manifest: m, summary: summary))
    }

    // MARK: - Blends

    /// The text-conditioned model, with its caption table.
    func loadModel(encoderHidden: Int) throws -> ModelFile {
        let m = ctx.manifest
        let loaded = try ModelFile.load(ctx, role: "model", name: m.evaluation.modelFile, preferEMA: m.sampling.useEma, field: "evaluation.model_file")
        let c = loaded.model.config
        guard c.isTextConditioned, loaded.textTable != nil else {
            throw JobError(what: "\(loaded.source) is class-conditioned; blends are sampled from text prompts",
                           where: "inputs.model", fix: "name a job trained with `model: {conditioning: text}`")
        }
        guard c.textDim == encoderHidden else {
            throw JobError(what: "\(loaded.source) was trained on \(c.textDim)-d text embeddings, the installed encoder gives \(encoderHidden)-d",
                           where: "inputs.model", fix: "install the encoder the model was trained with (\(MiniLM.installCommand))")
        }
        loaded.model.inferenceOnly = true
        return loaded
    }

    struct Blends {
        var pairs: [(Int, Int)]
        var names: [String]
        var prompts: (token: [String], plain: [String])
        /// Per kind: per pair, per sample (cos to the first class's centroid, to the second's); nil without the network.
        var cosines: (token: [[(Double, Double)]], plain: [[(Double, Double)]])?
        var unavailable: String?
        var samplesPerPair: Int
        var source: String

        static func mean(_ x: [Double]) -> Double { x.isEmpty ? 0 : x.reduce(0, +) / Double(x.count) }
        static func blend(_ c: [[(Double, Double)]]) -> [Double] { c.map { mean($0.map { min($0.0, $0.1) }) } }
        var scores: (token: Double, plain: Double)? {
            cosines.map { (Self.mean(Self.blend($0.token)), Self.mean(Self.blend($0.plain))) }
        }

        var json: JSONValue {
            var out: [(String, JSONValue)] = [("model", .string(source)), ("samples_per_pair", .int(samplesPerPair)),
                                              ("score", .string("per sample: cosine of its EfficientNet-Lite0 pooled features to each class's centroid (mean features of the dataset's real images); blend = the smaller of the two"))]
            if let c = cosines, let s = scores {
                out.append(("mean_blend", .object([("token", .double(s.token)), ("plain", .double(s.plain))])))
                for (kind, cs) in [("token", c.token), ("plain", c.plain)] {
                    out.append(("mean_cosine_\(kind)", .object([("first", .double(Self.mean(cs.flatMap { $0.map(\.0) }))),
                                                                 ("second", .double(Self.mean(cs.flatMap { $0.map(\.1) })))])))
                }
            } else {
                out.append(("unavailable", .string(unavailable ?? "")))
            }
            let bt = cosines.map { Self.blend($0.token) }, bp = cosines.map { Self.blend($0.plain) }
            out.append(("pairs", .array(pairs.indices.map { k -> JSONValue in
                var p: [(String, JSONValue)] = [("classes", .array([.string(names[pairs[k].0]), .string(names[pairs[k].1])])),
                                                ("token_prompt", .string(prompts.token[k])), ("plain_prompt", .string(prompts.plain[k]))]
                if let c = cosines, let bt, let bp {
                    p.append(("blend", .object([("token", .double(bt[k])), ("plain", .double(bp[k]))])))
                    for (kind, cs) in [("token", c.token[k]), ("plain", c.plain[k])] {
                        p.append(("samples_\(kind)", .array(cs.map { .object([("first", .double($0.0)), ("second", .double($0.1)),
                                                                              ("blend", .double(min($0.0, $0.1)))]) })))
                    }
                }
                return .object(p)
            })))
            return .object(out)
        }

        var facts: [(String, String)] {
            var out = [("blends", "\(pairs.count) class pairs × \(samplesPerPair) samples per prompt kind, from \(source)")]
            if let s = scores {
                out.append(("blend score (min of the two class-centroid cosines)", String(format: "token prompt %.4f, plain prompt %.4f", s.token, s.plain)))
            } else {
                out.append(("blend score", "not computed: \(unavailable ?? "")"))
            }
            return out
        }
    }

    /// Samples and scores the blends; nil when a stop was requested.
    func blends(_ loaded: ModelFile, objective: CreTokObjective, vector: [Float], outputs: ModelOutputs) throws -> Blends? {
        let m = ctx.manifest, s = objective.settings, k = m.cretok.samplesPerPair
        let model = loaded.model, c = model.config, table = loaded.textTable!
        ctx.progress.setPhase("loading the dataset")
        let images = try PretrainStage().loadImages(ctx, role: "dataset", channels: c.inChannels, resolution: c.inputSize)
        let datasetIndex = Dictionary(images.classes.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        guard table.classes.count >= 2 else {
            throw JobError(what: "\(loaded.source) knows \(table.classes.count) class; blends need two", where: "inputs.model", fix: "use a model of several classes")
        }
        let missing = table.classes.filter { datasetIndex[$0] == nil }
        guard missing.isEmpty else {
            throw JobError(what: "the model's classes \(missing.prefix(5).joined(separator: ", ")) are not folders of the dataset \(PretrainStage.inputName(ctx, "dataset"))",
                           where: "inputs.dataset", fix: "give the dataset the model was trained on")
        }
        var all: [(Int, Int)] = []
        for i in table.classes.indices { for j in table.classes.indices where j > i { all.append((i, j)) } }
        var pairs = all
        let n = m.cretok.classPairs
        if n > 0 && n < all.count {
            var rng = RandomStream(seed: UInt64(m.seed), stream: 0x626C_656E)
            pairs = rng.permutation(all.count).prefix(n).sorted().map { all[$0] }
        }
        let names = table.classes.map(TextConditioning.readable)
        let tokenPrompts = pairs.map { s.adaptivePrompt(names[$0.0], names[$0.1]) }
        let plainPrompts = pairs.map { s.restrictivePrompt(names[$0.0], names[$0.1]) }
        ctx.progress.setPhase("embedding \(pairs.count) pair prompts")
        let tokenEmbeddings = try objective.embed(tokenPrompts, vector: vector)
        let plainEmbeddings = try objective.embed(plainPrompts)

        let sampling = SamplingSettings(steps: m.sampling.steps, sampler: m.sampling.sampler, eta: Float(m.sampling.eta),
                                        guidance: Float(m.sampling.cfgScale), guidanceMode: m.sampling.guidanceMode)
        let per = c.inChannels * c.inputSize * c.inputSize
        let token = Tensor(shape: [pairs.count * k, c.inChannels, c.inputSize, c.inputSize])
        let plain = Tensor(shape: token.shape)
        for p in pairs.indices {
            if ctx.shouldStop() { return nil }
            ctx.progress.setPhase("sampling blends: pair \(p + 1)/\(pairs.count) (\(names[pairs[p].0]) + \(names[pairs[p].1]))")
            // The same noise for both prompt kinds of a pair: the prompts are the only difference.
            let seed = UInt64(m.sampling.seed) &+ UInt64(p) &* 0x9E37_79B9
            for (embedding, into) in [(tokenEmbeddings[p], token), (plainEmbeddings[p], plain)] {
                let x = try model.sample(textEmbeddings: Array(repeating: embedding, count: k), settings: sampling, seed: seed)
                (into.data + p * k * per).update(from: x.data, count: k * per)
            }
        }
        let labels = pairs.indices.flatMap { Array(repeating: $0, count: k) }
        try outputs.writePNG(ModelOutputs.classGrid(token, labels: labels, numClasses: pairs.count, columns: k), "blends-token.png")
        try outputs.writePNG(ModelOutputs.classGrid(plain, labels: labels, numClasses: pairs.count, columns: k), "blends-plain.png")

        var result = Blends(pairs: pairs, names: names, prompts: (tokenPrompts, plainPrompts), cosines: nil, unavailable: nil,
                            samplesPerPair: k, source: loaded.source)
        let evaluation = JobEvaluation(ctx: ctx)
        let net: EfficientNetLite0
        switch evaluation.network() {
        case let .failure(e):
            ctx.log.event("blend-score-skipped", "blend score not computed: \(e.what)", level: .warning)
            result.unavailable = "EfficientNet-Lite0 weights: \(e.what) (\(e.fix))"
            return result
        case let .success(x): net = x
        }
        if ctx.shouldStop() { return nil }
        // Class centroids from the dataset's real images (the cached reference features).
        // Named as the model's pretrain job names its training data, so its cached features are reused.
        let referenceName = "\(PretrainStage.inputName(ctx, "dataset")) (the training data)"
        let reference = try evaluation.reference(images, name: referenceName, network: net)
        let subset = evaluation.referenceSubset(images)
        let D = reference.features.dimension
        var centroid = [[Double]](repeating: [Double](repeating: 0, count: D), count: images.classes.count)
        var counts = [Int](repeating: 0, count: images.classes.count)
        for (row, i) in subset.enumerated() {
            let label = images.labels[i]
            counts[label] += 1
            for d in 0..<D { centroid[label][d] += Double(reference.features.values[row * D + d]) }
        }
        for (ci, name) in table.classes.enumerated() where counts[datasetIndex[name]!] == 0 {
            throw JobError(what: "class \(name) (\(ci)) has no images among the reference images", where: "evaluation.reference_images",
                           fix: "use `reference_images: 0` (every image)")
        }
        if ctx.shouldStop() { return nil }
        ctx.progress.setPhase("blend score: features of \(2 * pairs.count * k) samples")
        func cosines(_ x: Tensor) -> [[(Double, Double)]] {
            let f = net.features(images: x).pooled
            func cos(_ row: Int, _ cls: String) -> Double {
                let cen = centroid[datasetIndex[cls]!]
                var ab = 0.0, aa = 0.0, bb = 0.0
                for d in 0..<D {
                    let a = Double(f.values[row * D + d]), b = cen[d]
                    ab += a * b; aa += a * a; bb += b * b
                }
                return aa > 0 && bb > 0 ? ab / (aa * bb).squareRoot() : 0
            }
            return pairs.indices.map { p in
                (0..<k).map { j in (cos(p * k + j, table.classes[pairs[p].0]), cos(p * k + j, table.classes[pairs[p].1])) }
            }
        }
        result.cosines = (cosines(token), cosines(plain))
        return result
    }
}

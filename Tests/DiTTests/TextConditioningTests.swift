import Foundation
import Testing
import Formats
import Tensors
@testable import DiT

/// Text-conditioned DiT (`DiTConfig.textDim > 0`): y_emb = W_text·e + b_text for label k's
/// text-table row e, a learned null row for label K.
@Suite struct TextConditioningTests {
    static let E = 6
    static let config = DiTConfig(inputSize: 8, patchSize: 2, inChannels: 1, hiddenSize: 16, depth: 2, numHeads: 2,
                                  numClasses: 3, textDim: E)
    static let settings = TrainerTests.settings

    /// K rows of textDim values (stand-ins for normalized caption embeddings).
    static func table(_ k: Int, seed: UInt64, E: Int = E) -> [[Float]] {
        let v = randomArray(k * E, seed: seed)
        return (0..<k).map { Array(v[($0 * E)..<(($0 + 1) * E)]) }
    }

    /// Copies every parameter the two layouts share by name (all but the label embedder's).
    static func copyShared(from a: DiTModel, to b: DiTModel) {
        for e in b.layout.entries {
            guard let s = a.layout[e.name], s.shape == e.shape else { continue }
            (b.params.data + e.offset).update(from: a.params.data + s.offset, count: e.count)
        }
    }

    static func array(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> [Float] { Array(UnsafeBufferPointer(start: p, count: n)) }

    // MARK: - Kernel

    @Test func textEmbedderKernelGradients() {
        let K = 3, E = 5, D = 4
        let table = randomArray(K * E, seed: 30)
        var w = randomArray(D * E, seed: 31, scale: 0.5), b = randomArray(D, seed: 32), null = randomArray(D, seed: 33)
        let labels = [0, 3, 2, 3, 1, 2]  // 3 = null
        let N = labels.count
        let dOut = randomArray(N * D, seed: 34)
        func run(_ w: [Float], _ b: [Float], _ null: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: N * D), inp = [Float](repeating: .nan, count: N * E)
            textEmbeddingForward(out: &out, inputs: &inp, table: table, nullRow: null, weight: w, bias: b,
                                 labels: labels, nullLabel: K, E: E, D: D)
            return out
        }
        // Forward against the definition.
        let out = run(w, b, null)
        for (n, y) in labels.enumerated() {
            for d in 0..<D {
                let ref: Float = y == K ? null[d] : (0..<E).reduce(b[d]) { $0 + w[d * E + $1] * table[y * E + $1] }
                #expect(abs(out[n * D + d] - ref) < 1e-5)
            }
        }
        var inp = [Float](repeating: 0, count: N * E), scratch = [Float](repeating: 0, count: N * D)
        textEmbeddingForward(out: &scratch, inputs: &inp, table: table, nullRow: null, weight: w, bias: b,
                             labels: labels, nullLabel: K, E: E, D: D)
        var dw = [Float](repeating: 0, count: D * E), db = [Float](repeating: 0, count: D), dn = [Float](repeating: 0, count: D)
        textEmbeddingBackward(dWeight: &dw, dBias: &db, dNullRow: &dn, dOut: dOut, inputs: inp, labels: labels,
                              nullLabel: K, E: E, D: D)
        let (w0, b0, n0) = (w, b, null)
        #expect(finiteDifferenceCheck("text_proj dWeight", values: &w, analytic: dw) { weightedSum(run($0, b0, n0), dOut) } <= 1)
        #expect(finiteDifferenceCheck("text_proj dBias", values: &b, analytic: db) { weightedSum(run(w0, $0, n0), dOut) } <= 1)
        #expect(finiteDifferenceCheck("text null row", values: &null, analytic: dn) { weightedSum(run(w0, b0, $0), dOut) } <= 1)
    }

    // MARK: - Config and layout

    /// The pre-text `DiTConfig` with its synthesized Codable, to check JSON compatibility.
    struct LegacyConfig: Codable {
        var inputSize, patchSize, inChannels, hiddenSize, depth, numHeads, numClasses, mlpRatio: Int
        var classDropoutProb: Float
        var frequencyEmbeddingSize: Int
    }

    @Test func configJSONIsBackwardCompatible() throws {
        let enc = JSONEncoder()
        enc.outputFormatting = .sortedKeys
        for c in [TrainerTests.config, DiTConfig.preset("tiny")!, DiTConfig.preset("DiT-XL/2")!] {
            let legacy = LegacyConfig(inputSize: c.inputSize, patchSize: c.patchSize, inChannels: c.inChannels, hiddenSize: c.hiddenSize,
                                      depth: c.depth, numHeads: c.numHeads, numClasses: c.numClasses, mlpRatio: c.mlpRatio,
                                      classDropoutProb: c.classDropoutProb, frequencyEmbeddingSize: c.frequencyEmbeddingSize)
            let old = try enc.encode(legacy)
            #expect(try enc.encode(c) == old)  // class-conditioned: the same bytes as before
            let back = try JSONDecoder().decode(DiTConfig.self, from: old)
            #expect(back == c && back.textDim == 0)
        }
        let text = Self.config
        let json = try enc.encode(text)
        #expect(String(decoding: json, as: UTF8.self).contains("\"textDim\":6"))
        #expect(try JSONDecoder().decode(DiTConfig.self, from: json) == text)
        #expect(text != TrainerTests.config)
        // The other keys stay required, as with the synthesized decoder.
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(DiTConfig.self, from: Data("{\"textDim\":3}".utf8)) }
        var bad = text
        bad.textDim = -1
        #expect(!bad.problems().isEmpty && text.problems().isEmpty)
    }

    @Test func layoutAndInitialization() throws {
        let t = try DiTTrainer(config: Self.config, settings: Self.settings, seed: 2)
        let m = t.model, D = Self.config.hiddenSize
        let names = m.layout.entries.map(\.name)
        #expect(Array(names[6..<9]) == ["y_embedder.embedding_table.weight", "y_embedder.text_proj.weight", "y_embedder.text_proj.bias"])
        #expect(m.layout["y_embedder.embedding_table.weight"]!.shape == [1, D])
        #expect(m.layout["y_embedder.text_proj.weight"]!.shape == [D, Self.E])
        // Same layout for any table size; no null row without label dropout.
        var wide = Self.config
        wide.numClasses = 1000
        #expect(ParameterLayout(config: wide).entries == m.layout.entries)
        var noDrop = Self.config
        noDrop.classDropoutProb = 0
        #expect(ParameterLayout(config: noDrop)["y_embedder.embedding_table.weight"] == nil)
        // Class-conditioned layouts are untouched.
        #expect(ParameterLayout(config: TrainerTests.config)["y_embedder.embedding_table.weight"]!.shape == [4, D])
        #expect(ParameterLayout(config: TrainerTests.config)["y_embedder.text_proj.weight"] == nil)
        // Init: null row N(0, 0.02), W_text Xavier uniform, bias 0.
        let null = Self.array(m.parameter("y_embedder.embedding_table.weight"), D)
        #expect(null.contains { $0 != 0 } && null.allSatisfy { abs($0) < 0.1 })
        let bound = Float((6.0 / Double(D + Self.E)).squareRoot())
        let w = Self.array(m.parameter("y_embedder.text_proj.weight"), D * Self.E)
        #expect(w.allSatisfy { abs($0) <= bound } && w.contains { abs($0) > bound * 0.8 })
        #expect(Self.array(m.parameter("y_embedder.text_proj.bias"), D).allSatisfy { $0 == 0 })
        // State dict: the new tensors are exported and load back.
        let file = m.stateDict()
        #expect(file.tensors["y_embedder.text_proj.weight"]?.shape == [D, Self.E])
        let back = DiTModel(config: Self.config)
        try back.load(SafeTensors.parse(SafeTensors.serialize(file), name: "text"))
        #expect(back.params.toArray() == m.params.toArray())
        #expect(throws: DiTModel.WeightsError.self) { try DiTModel(config: TrainerTests.config).load(file) }
    }

    @Test func activationAccounting() {
        let a = Activations(config: Self.config, N: 5)
        let counted = DiTModel.activationFloats(config: Self.config, batch: 5)
        #expect(a.textIn.count == 5 * Self.E)
        #expect(counted.saved == a.savedFloatCount && counted.scratch == a.scratchFloatCount)
    }

    @Test func textTableValidation() throws {
        let m = DiTModel(config: Self.config)
        #expect(m.textTable == nil)
        #expect(throws: DiTModel.TextTableError.self) { try m.setTextTable(Self.table(2, seed: 1)) }
        #expect(throws: DiTModel.TextTableError.self) { try m.setTextTable(Self.table(3, seed: 1, E: 5)) }
        var nan = Self.table(3, seed: 1)
        nan[1][2] = .nan
        #expect(throws: DiTModel.TextTableError.self) { try m.setTextTable(nan) }
        #expect(throws: DiTModel.TextTableError.self) { try DiTModel(config: TrainerTests.config).setTextTable(Self.table(3, seed: 1)) }
        try m.setTextTable(Self.table(3, seed: 1))
        #expect(m.textTable?.shape == [3, Self.E] && m.textTable?.toArray() == Self.table(3, seed: 1).flatMap { $0 })
        let other = DiTModel(config: Self.config)
        try other.setTextTable(m.textTable!)
        #expect(other.textTable?.toArray() == m.textTable?.toArray() && other.textTable !== m.textTable)
        #expect(throws: DiTModel.TextTableError.self) { try other.setTextTable(Tensor(shape: [2, Self.E])) }
        #expect(throws: DiTModel.TextTableError.self) { try other.setTextTable(Tensor(shape: [3 * Self.E + 1])) }
    }

    // MARK: - The model

    /// One-hot text rows with W_text = the class table's rows 0..<K transposed, b = 0 and the
    /// null row = class row K: the text model is the class model, output bit for bit.
    @Test func oneHotTableReproducesClassModel() throws {
        let K = 3
        let ct = try DiTTrainer(config: TrainerTests.config, settings: Self.settings, seed: 21)
        _ = TrainerTests.run(ct, steps: 0..<3)  // non-zero adaLN and final layer
        let cls = ct.inferenceModel(ema: false)
        cls.inferenceOnly = false
        var tc = TrainerTests.config
        tc.textDim = K
        let txt = DiTModel(config: tc)
        Self.copyShared(from: cls, to: txt)
        let D = tc.hiddenSize, table = cls.parameter("y_embedder.embedding_table.weight")
        let w = txt.parameter("y_embedder.text_proj.weight")
        for d in 0..<D { for k in 0..<K { w[d * K + k] = table[k * D + d] } }
        txt.parameter("y_embedder.embedding_table.weight").update(from: table + K * D, count: D)
        try txt.setTextTable((0..<K).map { k in (0..<K).map { $0 == k ? Float(1) : 0 } })

        let (x, _) = TrainerTests.batch(2)
        let y = [2, 3, 0, 1]  // 3 = null
        var oc = [Float](repeating: 0, count: 2 * x.count), ot = oc
        x.withUnsafeBufferPointer { xp in
            cls.forward(x: xp.baseAddress!, t: [5, 250, 999, 40], y: y, out: &oc)
            txt.forward(x: xp.baseAddress!, t: [5, 250, 999, 40], y: y, out: &ot)
        }
        #expect(oc == ot)
        #expect(oc.contains { $0 != 0 })
        // Gradients: every shared tensor bit-identical; W_text's = the class rows' transposed.
        let dOut = randomArray(oc.count, seed: 22)
        cls.zeroGrad(); txt.zeroGrad()
        dOut.withUnsafeBufferPointer { cls.backward(dOut: $0.baseAddress!); txt.backward(dOut: $0.baseAddress!) }
        for e in txt.layout.entries where !e.name.hasPrefix("y_embedder.") {
            #expect(Self.array(txt.grads.data + e.offset, e.count) == Self.array(cls.grads.data + cls.layout.offset(e.name), e.count), "\(e.name)")
        }
        let gTable = cls.gradient("y_embedder.embedding_table.weight"), gW = txt.gradient("y_embedder.text_proj.weight")
        var worst: Float = 0, scale: Float = 0
        for d in 0..<D {
            for k in 0..<K {
                worst = max(worst, abs(gW[d * K + k] - gTable[k * D + d]))
                scale = max(scale, abs(gTable[k * D + d]))
            }
        }
        print("one-hot text model: max |dW_text − dTableᵀ| = \(worst) (max |g| \(scale))")
        #expect(worst <= 1e-6 * scale && scale > 0)
        #expect(Self.array(txt.gradient("y_embedder.embedding_table.weight"), D) == Self.array(gTable + K * D, D))
        // b_text gets the sum over the non-null samples (the class model has no such tensor).
        let gb = Self.array(txt.gradient("y_embedder.text_proj.bias"), D)
        for d in 0..<D {
            let ref = (0..<K).reduce(Float(0)) { $0 + gTable[$1 * D + d] }
            #expect(abs(gb[d] - ref) <= 1e-6 * max(scale, 1e-6) * 4)
        }
    }

    /// A whole tiny text DiT with random parameters (adaLN included, so the conditioning
    /// matters): L = Σ w ⊙ out, finite differences w.r.t. W_text, b_text and the null row.
    @Test func fullModelFiniteDifferences() throws {
        let c = Self.config
        let m = DiTModel(config: c)
        var rng = RandomStream(seed: 40)
        rng.fillUniform(m.params.data, count: m.params.count, low: -0.25, high: 0.25)
        try m.setTextTable(Self.table(3, seed: 41))
        let N = 3, count = N * c.inChannels * c.inputSize * c.inputSize
        let x = randomArray(count, seed: 42), w = randomArray(2 * count, seed: 43)
        let t = [10, 500, 900], y = [2, 3, 0]  // 3 = null
        func loss() -> Double {
            var out = [Float](repeating: 0, count: 2 * count)
            x.withUnsafeBufferPointer { m.forward(x: $0.baseAddress!, t: t, y: y, out: &out) }
            return weightedSum(out, w)
        }
        _ = loss()
        m.zeroGrad()
        w.withUnsafeBufferPointer { m.backward(dOut: $0.baseAddress!) }
        for (name, stride) in [("y_embedder.text_proj.weight", 1), ("y_embedder.text_proj.bias", 1), ("y_embedder.embedding_table.weight", 1)] {
            let e = m.layout[name]!
            let analytic = Self.array(m.grads.data + e.offset, e.count)
            #expect(analytic.contains { abs($0) > 1e-2 }, "\(name): gradient too small to test")
            var values = Self.array(m.params.data + e.offset, e.count)
            let worst = finiteDifferenceCheck("DiT " + name, values: &values, analytic: analytic, stride: stride) { v in
                (m.params.data + e.offset).update(from: v, count: v.count)
                return loss()
            }
            (m.params.data + e.offset).update(from: values, count: values.count)
            #expect(worst <= 1, "\(name)")
        }
    }

    // MARK: - Training and sampling

    @Test func trainerResumeAndInferenceModel() throws {
        let rows = Self.table(3, seed: 50)
        let straight = try DiTTrainer(config: Self.config, settings: Self.settings, seed: 3)
        try straight.model.setTextTable(rows)
        let lossesStraight = TrainerTests.run(straight, steps: 0..<6)
        #expect(lossesStraight.allSatisfy { $0.isFinite })
        // The projection trains; so does the null row when labels are dropped (p = 0.9 here:
        // the 24 draws at p = 0.1 above happen to drop none).
        var dropping = Self.config
        dropping.classDropoutProb = 0.9
        let drop = try DiTTrainer(config: dropping, settings: Self.settings, seed: 3)
        try drop.model.setTextTable(rows)
        _ = TrainerTests.run(drop, steps: 0..<3)
        for (trained, name) in [(straight, "y_embedder.text_proj.weight"), (straight, "y_embedder.text_proj.bias"),
                                (drop, "y_embedder.embedding_table.weight")] {
            let fresh = try DiTTrainer(config: trained.config, settings: Self.settings, seed: 3)
            let n = trained.model.layout[name]!.count
            #expect(Self.array(trained.model.parameter(name), n) != Self.array(fresh.model.parameter(name), n), "\(name)")
        }

        let first = try DiTTrainer(config: Self.config, settings: Self.settings, seed: 3)
        try first.model.setTextTable(rows)
        let lossesA = TrainerTests.run(first, steps: 0..<3)
        let resumed = try DiTTrainer(config: Self.config, settings: Self.settings, seed: 999)
        try resumed.restore(from: SafeTensors.parse(SafeTensors.serialize(first.checkpoint()), name: "ckpt"))
        #expect(resumed.model.textTable == nil)  // not part of the checkpoint
        try resumed.model.setTextTable(rows)
        let lossesB = TrainerTests.run(resumed, steps: 3..<6)
        #expect(lossesA + lossesB == lossesStraight)
        #expect(resumed.model.params.toArray() == straight.model.params.toArray())
        #expect(resumed.ema.toArray() == straight.ema.toArray())
        // A class-conditioned checkpoint does not resume a text config (and vice versa).
        let cls = try DiTTrainer(config: TrainerTests.config, settings: Self.settings, seed: 3)
        #expect(throws: DiTTrainer.CheckpointError.self) { try cls.restore(from: first.checkpoint()) }
        #expect(throws: DiTTrainer.CheckpointError.self) { try first.restore(from: cls.checkpoint()) }

        // The inference model carries the table and gives the trainer model's outputs.
        let inf = straight.inferenceModel(ema: false)
        #expect(inf.textTable?.toArray() == straight.model.textTable?.toArray())
        let (x, _) = TrainerTests.batch(0)
        var oa = [Float](repeating: 0, count: 2 * x.count), ob = oa
        x.withUnsafeBufferPointer { xp in
            inf.forward(x: xp.baseAddress!, t: [3, 500, 999, 0], y: [0, 1, 3, 2], out: &oa)
            straight.model.forward(x: xp.baseAddress!, t: [3, 500, 999, 0], y: [0, 1, 3, 2], out: &ob)
        }
        #expect(oa == ob && oa.contains { $0 != 0 })
    }

    /// Sampling more prompts than table rows: the same bits as one model with a table holding
    /// every prompt (same parameters, numClasses = P) sampled in chunks of numClasses.
    @Test func sampleTextEmbeddingsInGroups() throws {
        let t = try DiTTrainer(config: Self.config, settings: TrainingSettings(emaDecay: 0.5), seed: 8)
        try t.model.setTextTable(Self.table(3, seed: 60))
        _ = TrainerTests.run(t, steps: 0..<3)
        let model = t.inferenceModel(ema: true)
        let prompts = Self.table(5, seed: 61)
        let settings = SamplingSettings(steps: 3, guidance: 2)
        let a = try model.sample(textEmbeddings: prompts, settings: settings, seed: 4)
        #expect(model.textTable?.toArray() == Self.table(3, seed: 60).flatMap { $0 })  // restored
        var wide = Self.config
        wide.numClasses = prompts.count
        let big = DiTModel(config: wide)
        big.params.copy(from: model.params)
        try big.setTextTable(prompts)
        let b = try big.sample(labels: Array(0..<5), settings: settings, seed: 4, batch: 3)
        #expect(a.shape == [5, 1, 8, 8])
        #expect(a.toArray() == b.toArray())
        #expect(a.toArray().allSatisfy { $0 >= -1 && $0 <= 1 })
        // Within one table: sample(labels:) uses the rows the caller set.
        try model.setTextTable(Array(prompts[0..<3]))
        let c = try model.sample(labels: [0, 1, 2], settings: settings, seed: 4)
        #expect(c.toArray() == Array(a.toArray()[0..<(3 * 64)]))
        #expect(throws: DiTModel.TextTableError.self) { try model.sample(textEmbeddings: [[1, 2]], settings: settings, seed: 1) }
    }
}

/// Cost of a text-conditioned train step against the class-conditioned one (opt-in:
/// LEARNGENE_TIMING=1; release build). Single-threaded thread CPU time, median of 20 steps.
@Suite struct TextConditioningTimingTests {
    static let enabled = ProcessInfo.processInfo.environment["LEARNGENE_TIMING"] == "1"

    static func cpuMilliseconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) * 1e3 + Double(ts.tv_nsec) / 1e6
    }

    @Test(.enabled(if: enabled), arguments: ["cpu-32-small", "tiny"])
    func textVersusClassStep(_ preset: String) throws {
        let c = DiTConfig.preset(preset)!
        var tc = c
        tc.textDim = 384
        let N = 16, m = c.inChannels * c.inputSize * c.inputSize
        let x = randomArray(N * m, seed: 1), y = (0..<N).map { $0 % c.numClasses }
        let settings = TrainingSettings(optimizer: AdamWSettings(learningRate: 1e-4), emaDecay: 0.999)
        try Parallel.withWorkers(1) {
            try Blas.withThreads(1) {
                // A second class trainer as control: its difference to the first is the noise.
                let cls = try DiTTrainer(config: c, settings: settings, seed: 1)
                let ctl = try DiTTrainer(config: c, settings: settings, seed: 1)
                let txt = try DiTTrainer(config: tc, settings: settings, seed: 1)
                try txt.model.setTextTable(TextConditioningTests.table(c.numClasses, seed: 2, E: 384))
                var times: [[Double]] = [[], [], []]
                for k in 0..<23 {
                    for (i, tr) in [cls, txt, ctl].enumerated() {
                        let t0 = Self.cpuMilliseconds()
                        x.withUnsafeBufferPointer { _ = tr.trainStep(images: $0.baseAddress!, labels: y) }
                        if k >= 3 { times[i].append(Self.cpuMilliseconds() - t0) }
                    }
                }
                let med = times.map { $0.sorted()[$0.count / 2] }
                func pct(_ a: Double) -> String { String(format: "%+.1f%%", 100 * (a / med[0] - 1)) }
                print("train step CPU ms, 1 thread, \(preset), batch \(N): class \(String(format: "%.2f", med[0])), "
                      + "text-384 \(String(format: "%.2f", med[1])) (\(pct(med[1]))), class control \(String(format: "%.2f", med[2])) (\(pct(med[2])))")
            }
        }
    }
}

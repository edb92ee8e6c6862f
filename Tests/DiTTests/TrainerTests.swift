import Foundation
import Testing
import Formats
import Tensors
@testable import DiT

/// Training-step determinism and bit-exact resume (style.md lesson 6).
@Suite struct TrainerTests {
    static let config = DiTConfig(inputSize: 8, patchSize: 2, inChannels: 1, hiddenSize: 16, depth: 2, numHeads: 2, numClasses: 3)
    static let settings = TrainingSettings(optimizer: AdamWSettings(learningRate: 1e-3), emaDecay: 0.9, gradClip: 1.0)

    /// A fixed batch of 4 images in [-1, 1] with labels.
    static func batch(_ k: Int) -> ([Float], [Int]) {
        let x = randomArray(4 * 64, seed: UInt64(100 + k))
        return (x, [0, 1, 2, k % 3])
    }

    static func run(_ trainer: DiTTrainer, steps: Range<Int>) -> [Float] {
        var losses: [Float] = []
        for k in steps {
            let (x, y) = batch(k)
            losses.append(x.withUnsafeBufferPointer { trainer.trainStep(images: $0.baseAddress!, labels: y).loss })
        }
        return losses
    }

    @Test func sameSeedSameBits() throws {
        let a = try DiTTrainer(config: Self.config, settings: Self.settings, seed: 7)
        let b = try DiTTrainer(config: Self.config, settings: Self.settings, seed: 7)
        #expect(Self.run(a, steps: 0..<4) == Self.run(b, steps: 0..<4))
        #expect(a.model.params.toArray() == b.model.params.toArray())
        #expect(a.ema.toArray() == b.ema.toArray())
        let c = try DiTTrainer(config: Self.config, settings: Self.settings, seed: 8)
        #expect(c.model.params.toArray() != a.model.params.toArray())
    }

    @Test func initializationFollowsDiT() throws {
        let t = try DiTTrainer(config: Self.config, settings: Self.settings, seed: 1)
        let m = t.model
        // adaLN-Zero: every modulation layer and the final linear start at zero.
        for e in m.layout.entries where e.name.contains("adaLN_modulation") || e.name.hasPrefix("final_layer.linear") || e.name.hasSuffix(".bias") {
            #expect(UnsafeBufferPointer(start: m.params.data + e.offset, count: e.count).allSatisfy { $0 == 0 }, "\(e.name)")
        }
        // Xavier-uniform bound for qkv (3D × D): √(6 / (D + 3D)).
        let qkv = m.layout["blocks.0.attn.qkv.weight"]!
        let bound = Float((6.0 / Double(16 + 48)).squareRoot())
        let w = UnsafeBufferPointer(start: m.params.data + qkv.offset, count: qkv.count)
        #expect(w.allSatisfy { abs($0) <= bound } && w.contains { abs($0) > bound * 0.9 })
    }

    /// Train 6 steps straight; separately train 3, checkpoint through a real file, restore
    /// into a new trainer, train 3 more: parameters, moments, EMA and RNG are bit-identical.
    @Test func resumeIsBitExact() throws {
        let straight = try DiTTrainer(config: Self.config, settings: Self.settings, seed: 3)
        let lossesStraight = Self.run(straight, steps: 0..<6)

        let first = try DiTTrainer(config: Self.config, settings: Self.settings, seed: 3)
        let lossesA = Self.run(first, steps: 0..<3)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafeTensors.write(first.checkpoint(), to: path)
        let resumed = try DiTTrainer(config: Self.config, settings: Self.settings, seed: 999)  // seed is overwritten
        try resumed.restore(from: SafeTensors.read(contentsOf: path))
        let lossesB = Self.run(resumed, steps: 3..<6)

        #expect(lossesA + lossesB == lossesStraight)
        #expect(resumed.step == 6)
        #expect(resumed.model.params.toArray() == straight.model.params.toArray())
        #expect(resumed.optimizer.m.toArray() == straight.optimizer.m.toArray())
        #expect(resumed.optimizer.v.toArray() == straight.optimizer.v.toArray())
        #expect(resumed.ema.toArray() == straight.ema.toArray())
        #expect(resumed.random == straight.random)
    }

    @Test func mismatchingCheckpointIsRefused() throws {
        let t = try DiTTrainer(config: Self.config, settings: Self.settings, seed: 3)
        var other = Self.config
        other.depth = 3
        let u = try DiTTrainer(config: other, settings: Self.settings, seed: 3)
        #expect(throws: DiTTrainer.CheckpointError.self) { try u.restore(from: t.checkpoint()) }
        let v = try DiTTrainer(config: Self.config, settings: TrainingSettings(), seed: 3)
        #expect(throws: DiTTrainer.CheckpointError.self) { try v.restore(from: t.checkpoint()) }
    }

    /// The exported state dict has exactly DiT's keys and loads back.
    @Test func stateDictRoundTrip() throws {
        let t = try DiTTrainer(config: Self.config, settings: Self.settings, seed: 5)
        _ = Self.run(t, steps: 0..<2)
        let file = t.modelFile(ema: false)
        #expect(file.tensors.keys.contains("pos_embed"))
        #expect(file.tensors.count == t.model.layout.entries.count + 1)
        let bytes = SafeTensors.serialize(file)
        let back = try SafeTensors.parse(bytes, name: "roundtrip")
        let m = DiTModel(config: Self.config)
        try m.load(back)
        #expect(m.params.toArray() == t.model.params.toArray())
        // A state dict with a wrong shape names the tensor.
        var bad = back
        bad.tensors["blocks.0.attn.qkv.weight"] = .f32([Float](repeating: 0, count: 4), shape: [2, 2])
        #expect(throws: DiTModel.WeightsError.self) { try m.load(bad) }
    }
}

@Suite struct MemoryAccountingTests {
    /// The analytic activation count equals what the model really allocates.
    @Test func analyticCountMatchesBuffers() {
        let c = DiTConfig(inputSize: 8, patchSize: 2, inChannels: 3, hiddenSize: 16, depth: 3, numHeads: 2, numClasses: 4)
        let a = Activations(config: c, N: 5)
        let counted = DiTModel.activationFloats(config: c, batch: 5)
        #expect(counted.saved == a.savedFloatCount)
        #expect(counted.scratch == a.scratchFloatCount)
    }
}

@Suite struct InferenceModeTests {
    /// Forward-only mode reuses one block's buffers; its output is bit-identical.
    @Test func inferenceForwardMatchesTrainingForward() throws {
        let c = DiTConfig(inputSize: 8, patchSize: 2, inChannels: 1, hiddenSize: 16, depth: 3, numHeads: 2, numClasses: 3)
        let t = try DiTTrainer(config: c, settings: TrainingSettings(emaDecay: 0.5), seed: 4)
        let (x, y) = TrainerTests.batch(0)
        for k in 0..<2 { _ = TrainerTests.run(t, steps: k..<(k + 1)) }  // non-zero adaLN and final layer
        let a = t.inferenceModel(ema: false)
        let b = t.inferenceModel(ema: false)
        b.inferenceOnly = false
        var oa = [Float](repeating: 0, count: 2 * x.count), ob = oa
        x.withUnsafeBufferPointer { xp in
            a.forward(x: xp.baseAddress!, t: [3, 500, 999, 0], y: y, out: &oa)
            b.forward(x: xp.baseAddress!, t: [3, 500, 999, 0], y: y, out: &ob)
        }
        #expect(oa == ob)
        #expect(oa.contains { $0 != 0 })
        // Sampling is deterministic in its seed and lands in [-1, 1].
        let s1 = try a.sample(labels: [0, 1, 3], settings: SamplingSettings(steps: 4), seed: 9)
        let s2 = try a.sample(labels: [0, 1, 3], settings: SamplingSettings(steps: 4), seed: 9)
        #expect(s1.toArray() == s2.toArray())
        #expect(s1.toArray().allSatisfy { $0 >= -1 && $0 <= 1 })
    }
}

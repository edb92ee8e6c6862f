import Foundation
import Testing
import DiT
import Formats
@testable import Learngene

/// The shared learngene trainer (here over FINE): determinism, bit-exact resume, what each
/// phase trains, and that condensing learns.
@Suite struct LearngeneTrainerTests {
    static func make(phase: LearngeneTrainer.Phase = .condense, seed: UInt64 = 7, teacher: DiTModel? = nil,
                     distill: Double = 0) throws -> LearngeneTrainer {
        let anc = try FK.ancestry()
        let source = try FineParameterization.fromAncestry(anc, settings: FineSettings(rank: 8))
        let host = try DescendantHost.build(target: FK.config, ancestry: anc, method: .fine)
        return try LearngeneTrainer(host: host, source: source, phase: phase, settings: FK.settings, seed: seed,
                                    teacher: teacher, distillWeight: distill)
    }

    static func state(_ t: LearngeneTrainer) -> [[Float]] {
        [t.host.params, t.source.params, t.hostEMA, t.sourceEMA, t.hostOptimizer.m, t.sourceOptimizer.v].map { $0.toArray() }
    }

    @Test func sameSeedSameBits() throws {
        let a = try Self.make(), b = try Self.make()
        #expect(FK.run(a, steps: 0..<4) == FK.run(b, steps: 0..<4))
        #expect(Self.state(a) == Self.state(b))
        let c = try Self.make(seed: 8)
        FK.run(c, steps: 0..<4)
        #expect(c.source.params.toArray() != a.source.params.toArray())
    }

    @Test func resumeIsBitExact() throws {
        let straight = try Self.make()
        let lossesStraight = FK.run(straight, steps: 0..<6)
        let first = try Self.make()
        let lossesA = FK.run(first, steps: 0..<3)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lg-ckpt-\(UUID()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafeTensors.write(first.checkpoint(), to: path)
        let resumed = try Self.make(seed: 999)
        try resumed.restore(from: SafeTensors.read(contentsOf: path))
        let lossesB = FK.run(resumed, steps: 3..<6)
        #expect(lossesA + lossesB == lossesStraight)
        #expect(resumed.step == 6 && resumed.random == straight.random)
        #expect(Self.state(resumed) == Self.state(straight))
    }

    @Test func mismatchingCheckpointIsRefused() throws {
        let t = try Self.make()
        FK.run(t, steps: 0..<1)
        let ckpt = t.checkpoint()
        let other = try Self.make(phase: .initialize)
        #expect(throws: LearngeneError.self) { try other.restore(from: ckpt) }
        do { try other.restore(from: ckpt) } catch { print("refused: \(error)"); #expect("\(error)".contains("phase")) }
        var c2 = ckpt
        c2.metadata["source.settings"] = "{\"rank\":4}"
        #expect(throws: LearngeneError.self) { try t.restore(from: c2) }
    }

    @Test func initializeTrainsOnlySizeSpecificParameters() throws {
        let t = try Self.make(phase: .initialize)
        let host0 = t.host.params.toArray(), src0 = t.source.params.toArray()
        FK.run(t, steps: 0..<3)
        #expect(t.host.params.toArray() == host0)
        #expect(t.hostEMA.toArray() == host0)
        let src1 = t.source.params.toArray(), ema1 = t.sourceEMA.toArray()
        for r in t.source.learngeneRanges { #expect(src1[r] == src0[r] && ema1[r] == src0[r]) }
        for r in t.source.sizeSpecificRanges { #expect(src1[r] != src0[r]) }
        #expect(t.trainableParameterCount == t.source.sizeSpecificCount)
        #expect(t.learngeneBytes == 4 * t.learngeneFloats)
    }

    @Test func condenseLossDecreasesOnAFixedBatch() throws {
        let t = try Self.make()
        let losses = FK.run(t, steps: 0..<30, fixed: true)
        let first = losses.prefix(5).reduce(0, +) / 5, last = losses.suffix(5).reduce(0, +) / 5
        print("condense losses first5 \(first) last5 \(last)")
        #expect(last < 0.8 * first)
        #expect(t.trainableParameterCount == t.source.params.count + LearngeneTrainer.nonBlockRanges(t.host.layout).reduce(0) { $0 + $1.count })
    }

    @Test func distillationIsReportedAndTrained() throws {
        let teacher = try FK.ancestry(seed: 6, steps: 5)
        let t = try Self.make(teacher: teacher, distill: 2)
        let (x, y) = FK.batch(0)
        let s = x.withUnsafeBufferPointer { t.trainStep(images: $0.baseAddress!, labels: y) }
        #expect(s.distill != nil && s.distill! > 0)
        #expect(abs(s.loss - (s.mse + s.vb + 2 * s.distill!)) < 1e-4 * s.loss)
        let plain = try Self.make()
        let p = x.withUnsafeBufferPointer { plain.trainStep(images: $0.baseAddress!, labels: y) }
        #expect(p.distill == nil && p.mse == s.mse)  // same streams, same student → same MSE
    }

    @Test func denseModelMatchesTheHostAfterTraining() throws {
        let t = try Self.make()
        FK.run(t, steps: 0..<3)
        let e = FK.relativeError(FK.output(t.host), FK.output(t.denseModel(ema: false)))
        #expect(e <= 1e-5)
        let emaDense = t.denseModel(ema: true)
        #expect(t.source.params.toArray() != t.sourceEMA.toArray())
        let saved = t.source.params.toArray()
        _ = t.denseModel(ema: true)
        #expect(t.source.params.toArray() == saved)
        let finite = FK.output(emaDense).allSatisfy { $0.isFinite }
        #expect(finite)
    }

    /// The FINE pipeline end to end: condense, save the learngene, load it, grow a depth-5
    /// descendant with trained σ (init: σ only), export it dense; the dense export equals the
    /// hosted model, and the hosted model samples with classifier-free guidance.
    @Test func fineCondenseThenInitializeADeeperDescendant() throws {
        let condense = try Self.make()
        FK.run(condense, steps: 0..<4)
        let file = (condense.source as! FineParameterization).file()
        let lg = try FineParameterization.load(from: file, config: FK.config)
        var c = FK.config
        c.depth = 5
        let d = FineParameterization.descendant(of: lg, depth: 5, sigmaInit: .trained, seed: 1)
        let host = try DescendantHost.build(target: c, ancestry: condense.host, method: .fine)
        let t = try LearngeneTrainer(host: host, source: d, phase: .initialize,
                                     settings: TrainingSettings(optimizer: AdamWSettings(learningRate: 5e-2), emaDecay: 0.9), seed: 2)
        let before = try FK.evaluationLoss(t.host)
        FK.run(t, steps: 0..<40, fixed: true)
        let after = try FK.evaluationLoss(t.host)
        print("FINE init (σ only) of a depth-5 descendant: evaluation loss \(before) → \(after)")
        #expect(after < 0.99 * before)
        #expect(t.trainableParameterCount == 5 * 5 * 8)
        let dense = t.denseModel(ema: false)
        #expect(FK.relativeError(FK.output(t.host), FK.output(dense)) <= 1e-5)
        let sampler = try DescendantHost.build(target: c, ancestry: condense.host, method: .fine)
        sampler.blockWeights = d
        sampler.inferenceOnly = true
        let a = try sampler.sample(labels: [0, 2], settings: SamplingSettings(steps: 4, guidance: 2), seed: 3)
        let b = try dense.sample(labels: [0, 2], settings: SamplingSettings(steps: 4, guidance: 2), seed: 3)
        #expect(a.toArray().allSatisfy { $0.isFinite })
        #expect(FK.relativeError(a.toArray(), b.toArray()) < 1e-3)
    }
}

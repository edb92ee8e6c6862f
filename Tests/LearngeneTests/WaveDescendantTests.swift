import Foundation
import Testing
import DiT
import Formats
import Tensors
@testable import Learngene

// WAVE descendants (other depths and widths) and WAVE inside `LearngeneTrainer`.

private func waveImages(_ c: DiTConfig, batch: Int, seed: UInt64) -> [Float] {
    var rng = RandomStream(seed: seed)
    var a = [Float](repeating: 0, count: batch * c.inChannels * c.inputSize * c.inputSize)
    a.withUnsafeMutableBufferPointer { rng.fillUniform($0.baseAddress!, count: $0.count, low: -1, high: 1) }
    return a
}

private func waveConfig(hidden: Int = 8, depth: Int) -> DiTConfig {
    DiTConfig(inputSize: 4, patchSize: 2, inChannels: 1, hiddenSize: hidden, depth: depth, numHeads: 2, numClasses: 3)
}

private func bits(_ t: Tensor, _ r: Range<Int>? = nil) -> [UInt32] {
    let r = r ?? 0..<t.count
    return r.map { t.data[$0].bitPattern }
}

/// A condensed WAVE learngene and its host: a trained-looking ancestry (random non-zero
/// weights), Van Loan init.
private func condensedAncestry(depth: Int = 3, settings: WaveSettings = WaveSettings(templateSize: 4, count: 2)) throws
    -> (ancestry: DiTModel, wave: WaveParameterization) {
    let c = waveConfig(depth: depth)
    let ancestry = DiTModel(config: c)
    ancestry.initializeWeights(seed: 1)
    var rng = RandomStream(seed: 2)
    rng.fillNormal(ancestry.params, std: 0.1)
    return (ancestry, try WaveParameterization.condense(from: ancestry, settings: settings))
}

@Suite struct WaveDescendantTests {
    @Test func deeperDescendantInterpolatesScalersInDepth() throws {
        let (_, w) = try condensedAncestry(depth: 3)
        let d = try w.descendant(for: waveConfig(depth: 5))
        #expect(bits(d.params, 0..<d.learngeneCount) == bits(w.params, 0..<w.learngeneCount))
        for m in BlockMatrix.allCases {
            let n = w.shapes[m.rawValue].count * w.shapes[m.rawValue].scalerSize
            func s(_ p: WaveParameterization, _ l: Int) -> [Float] { Array(UnsafeBufferPointer(start: p.scalers(m, layer: l), count: n)) }
            // Positions 0, 0.5, 1, 1.5, 2 in the ancestry.
            #expect(s(d, 0) == s(w, 0) && s(d, 2) == s(w, 1) && s(d, 4) == s(w, 2), "\(m.shortName)")
            let mid = zip(s(w, 0), s(w, 1)).map { Float(0.5 * Double($0) + 0.5 * Double($1)) }
            #expect(zip(s(d, 1), mid).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) }, "\(m.shortName)")
        }
        // Shallower: depth 2 takes the first and last layers.
        let e = try w.descendant(for: waveConfig(depth: 2))
        #expect(bits(e.params, e.scalerRange(.fc2, 1)) == bits(w.params, w.scalerRange(.fc2, 2)))
    }

    /// Double width: every ancestry scaler tile covers 2×2 descendant tiles, scaled by √½,
    /// so each descendant weight tile is √½ times the ancestry's tile it covers.
    @Test func widerDescendantResamplesTheScalerGrid() throws {
        let (_, w) = try condensedAncestry(depth: 2)
        let target = waveConfig(hidden: 16, depth: 2)
        let d = try w.descendant(for: target)
        #expect(d.tensors.first { $0.name == "scalers.qkv" }?.shape == [2, 2, 12, 4])  // 48×16 in 4×4 tiles
        for m in BlockMatrix.allCases {
            let (o, i) = m.shape(w.config), (o2, i2) = m.shape(target)
            var W = [Float](repeating: 0, count: o * i), W2 = [Float](repeating: 0, count: o2 * i2)
            for l in 0..<2 {
                w.denseWeight(m, layer: l, into: &W)
                d.denseWeight(m, layer: l, into: &W2)
                var worst: Float = 0
                for r in 0..<o2 {
                    for c in 0..<i2 {
                        let ra = (r / 4) / 2 * 4 + r % 4, ca = (c / 4) / 2 * 4 + c % 4  // the covered ancestry entry
                        worst = max(worst, abs(W2[r * i2 + c] - Float(0.5.squareRoot()) * W[ra * i + ca]))
                    }
                }
                #expect(worst < 1e-5, "\(m.shortName) layer \(l)")
            }
        }
        // Any width the templates tile is allowed (hidden 12: 36×12, 12×12, 48×12, 12×48, 72×12
        // in 4×4 tiles); one they do not tile is refused with the reason.
        #expect(throws: Never.self) { try w.descendant(for: waveConfig(hidden: 12, depth: 2)) }
        let (_, w8) = try condensedAncestry(depth: 1, settings: WaveSettings(templateSize: 8, count: 1))
        do {
            _ = try w8.descendant(for: waveConfig(hidden: 12, depth: 1))
            Issue.record("8×8 templates cannot tile hidden 12")
        } catch {
            #expect("\(error)".contains("does not divide the 12×12 matrix"), "\(error)")
        }
    }

    @Test func randomScalersKeepTemplatesAndZeroAdaLN() throws {
        let (_, w) = try condensedAncestry(depth: 2)
        let d = try w.descendant(for: waveConfig(hidden: 16, depth: 3), scalers: .random, seed: 4)
        #expect(bits(d.params, 0..<d.learngeneCount) == bits(w.params, 0..<w.learngeneCount))
        let ada = d.scalerRange(.adaLN, 0)
        #expect(d.params.toArray()[ada.lowerBound..<d.scalerRange(.adaLN, 2).upperBound].allSatisfy { $0 == 0 })
        #expect(d.params.toArray()[d.scalerRange(.qkv, 1)].contains { $0 != 0 })
    }
}

@Suite struct WaveTrainerTests {
    /// The condense stage: a WAVE auxiliary model trained against the ancestry's noise
    /// prediction (distillation) and the diffusion loss.
    @Test func condenseWithDistillationRuns() throws {
        let (ancestry, w) = try condensedAncestry(depth: 2)
        let c = ancestry.config
        let host = DiTModel(config: c)
        host.params.copy(from: ancestry.params)
        let teacher = DiTModel(config: c)
        teacher.params.copy(from: ancestry.params)
        let t = try LearngeneTrainer(host: host, source: w, phase: .condense, settings: TrainingSettings(emaDecay: 0.9), seed: 3,
                                     teacher: teacher, distillWeight: 1)
        let x = waveImages(c, batch: 4, seed: 5)
        let before = w.params.toArray()
        var stats: [LearngeneStepStats] = []
        for _ in 0..<3 { stats.append(t.trainStep(images: x, labels: [0, 1, 2, 1])) }
        #expect(stats.allSatisfy { $0.loss.isFinite && ($0.distill ?? -1) >= 0 })
        // The Van Loan init is close to the teacher, so the distillation term starts small.
        #expect(stats[0].distill! < 0.5)
        let after = w.params.toArray()
        #expect(after[0..<w.learngeneCount] != before[0..<w.learngeneCount])  // templates trained
        #expect(after[w.learngeneCount...] != before[w.learngeneCount...])    // scalers trained
    }

    @Test func initializeMovesOnlyScalersAndResumesBitExactly() throws {
        let (ancestry, w) = try condensedAncestry(depth: 2)
        let target = waveConfig(depth: 3)
        func make() throws -> LearngeneTrainer {
            let (host, d) = try w.descendantModel(target: target, ancestryHost: ancestry)
            return try LearngeneTrainer(host: host, source: d, phase: .initialize, settings: TrainingSettings(emaDecay: 0.9), seed: 7)
        }
        let a = try make()
        let hostBefore = bits(a.host.params), sourceBefore = bits(a.source.params)
        let x = waveImages(target, batch: 4, seed: 8), y = [2, 0, 1, 1]
        for _ in 0..<2 { a.trainStep(images: x, labels: y) }
        let L = a.source.learngeneCount
        #expect(bits(a.host.params) == hostBefore)
        #expect(bits(a.source.params, 0..<L) == Array(sourceBefore[0..<L]))  // templates frozen
        #expect(bits(a.source.params, L..<a.source.params.count) != Array(sourceBefore[L...]))  // scalers moved

        let bytes = SafeTensors.serialize(a.checkpoint())
        for _ in 0..<2 { a.trainStep(images: x, labels: y) }
        let b = try make()
        try b.restore(from: try SafeTensors.parse(bytes, name: "checkpoint"))
        for _ in 0..<2 { b.trainStep(images: x, labels: y) }
        #expect(bits(b.source.params) == bits(a.source.params))
        #expect(bits(b.sourceEMA) == bits(a.sourceEMA))
        #expect(bits(b.host.params) == bits(a.host.params))

        // The learngene file of the trained descendant reloads to the same bits.
        let re = try WaveParameterization.load(from: a.source.file(), config: target)
        #expect(bits(re.params) == bits(a.source.params))
    }

    /// Descendants of another depth and of double width run forward (and an `.initialize`
    /// step) inside their hosts.
    @Test(arguments: [(8, 4), (16, 2), (16, 5)])
    func descendantsRun(_ size: (Int, Int)) throws {
        let (ancestry, w) = try condensedAncestry(depth: 3)
        let target = waveConfig(hidden: size.0, depth: size.1)
        let (host, d) = try w.descendantModel(target: target, ancestryHost: ancestry, seed: 2)
        let t = try LearngeneTrainer(host: host, source: d, phase: .initialize, settings: TrainingSettings(emaDecay: 0.9), seed: 1)
        let x = waveImages(target, batch: 2, seed: 3)
        let s = t.trainStep(images: x, labels: [0, 1])
        #expect(s.loss.isFinite)
        let dense = t.denseModel(ema: false)
        var out = [Float](repeating: 0, count: 2 * x.count), outHost = out
        dense.forward(x: x, t: [10, 900], y: [0, 1], out: &out)
        host.forward(x: x, t: [10, 900], y: [0, 1], out: &outHost)
        #expect(out.allSatisfy { $0.isFinite })
        let scale = max(out.reduce(0) { max($0, abs($1)) }, 1e-3)
        #expect(zip(out, outHost).allSatisfy { abs($0 - $1) <= 1e-5 * scale })
    }

    /// A width descendant's host is a fresh DiT init (zero final layer): frozen, it passes no
    /// gradient to the scalers; trained along (`.condense`), the scalers learn from step 2.
    @Test func widthDescendantNeedsItsHostTrained() throws {
        let (ancestry, w) = try condensedAncestry(depth: 2)
        let target = waveConfig(hidden: 16, depth: 2)
        let x = waveImages(target, batch: 2, seed: 3)
        for phase in [LearngeneTrainer.Phase.initialize, .condense] {
            let (host, d) = try w.descendantModel(target: target, ancestryHost: ancestry, seed: 2)
            let t = try LearngeneTrainer(host: host, source: d, phase: phase, settings: TrainingSettings(emaDecay: 0.9), seed: 1)
            let L = d.learngeneCount, before = bits(d.params, L..<d.params.count)
            for _ in 0..<2 { t.trainStep(images: x, labels: [0, 1]) }
            #expect((bits(d.params, L..<d.params.count) == before) == (phase == .initialize), "\(phase)")
        }
    }

    /// Time of a training step, WAVE-served vs dense (hidden 64, depth 4, 16×16, batch 8).
    /// Opt-in: LEARNGENE_WAVE_BENCH=1.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["LEARNGENE_WAVE_BENCH"] == "1"))
    func stepTime() throws {
        let c = DiTConfig(inputSize: 16, patchSize: 2, inChannels: 1, hiddenSize: 64, depth: 4, numHeads: 4, numClasses: 10)
        let ancestry = try DiTTrainer(config: c, settings: TrainingSettings(emaDecay: 0.9), seed: 1)
        let x = waveImages(c, batch: 8, seed: 2), y = Array(0..<8)
        for _ in 0..<2 { ancestry.trainStep(images: x, labels: y) }
        var runs: [(String, () -> Void)] = [("dense", { ancestry.trainStep(images: x, labels: y) })]
        for (size, n) in [(32, 4), (64, 4), (16, 8)] {
            let w = try WaveParameterization.condense(from: ancestry.model, settings: WaveSettings(templateSize: size, count: n))
            let host = DiTModel(config: c)
            host.params.copy(from: ancestry.model.params)
            let t = try LearngeneTrainer(host: host, source: w, phase: .condense, settings: TrainingSettings(emaDecay: 0.9), seed: 1)
            runs.append((String(format: "WAVE %d×%d×%d (%d template + %d scaler floats)", size, size, n, w.learngeneCount, w.sizeSpecificCount),
                         { t.trainStep(images: x, labels: y) }))
        }
        // Interleaved (one step of each per round) so load changes hit every variant alike; medians.
        var times = runs.map { _ in [Double]() }
        for round in 0..<21 {
            for (k, run) in runs.enumerated() {
                let t0 = DispatchTime.now().uptimeNanoseconds
                run.1()
                if round > 0 { times[k].append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6) }
            }
        }
        let line = "step time (median of 20), hidden 64 depth 4 16×16 batch 8: "
            + zip(runs, times).map { "\($0.0.0) " + String(format: "%.2f ms", $0.1.sorted()[$0.1.count / 2]) }.joined(separator: "; ")
        print(line)
    }
}

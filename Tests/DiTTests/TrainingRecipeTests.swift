import Foundation
import Testing
import Formats
import Tensors
@testable import DiT

/// The step-dependent recipe: learning-rate schedules, EMA schedules, Min-SNR weighting.
@Suite struct TrainingRecipeTests {
    static func cpuLike(steps: Int = 20) -> TrainingSettings {
        var s = TrainingSettings(optimizer: AdamWSettings(learningRate: 2e-3), emaDecay: 0.999, gradClip: 1)
        s.lrSchedule = .cosine
        s.warmupSteps = 5
        s.totalSteps = steps
        s.minLearningRateFraction = 0.1
        s.emaSchedule = .warmup
        s.lossWeighting = .minSNR
        return s
    }

    @Test func ditDefaultsAreConstant() {
        let s = TrainingSettings()
        for step in [0, 1, 10, 100_000] {
            #expect(s.learningRate(afterSteps: step) == 1e-4)
            #expect(s.emaDecay(atStep: step + 1) == 0.9999)
        }
        #expect(s.mseWeights(t: [0, 500, 999], diffusion: try! GaussianDiffusion()) == nil)
        #expect(abs(s.emaAveragingSteps(atStep: 10) - 10_000) < 1e-6)
    }

    @Test func warmupThenCosineAndLinear() {
        var s = Self.cpuLike(steps: 105)
        #expect(abs(s.learningRate(afterSteps: 0) - 2e-3 / 5) < 1e-15)
        #expect(abs(s.learningRate(afterSteps: 4) - 2e-3) < 1e-15)
        #expect(abs(s.learningRate(afterSteps: 5) - 2e-3) < 1e-15)            // decay starts at the peak
        #expect(abs(s.learningRate(afterSteps: 104) - 2e-4) < 1e-15)          // the last step is at the floor
        let p = 50.0 / 99.0  // (s − warmup)/(total − warmup − 1)
        #expect(abs(s.learningRate(afterSteps: 55) - (2e-4 + 1.8e-3 * 0.5 * (1 + cos(Double.pi * p)))) < 1e-15)
        s.lrSchedule = .linear
        #expect(abs(s.learningRate(afterSteps: 55) - (2e-3 - 1.8e-3 * p)) < 1e-15)
        s.lrSchedule = .constant
        #expect(s.learningRate(afterSteps: 104) == 2e-3)
        // Monotone after warmup, for both decays.
        for schedule in [LearningRateSchedule.cosine, .linear] {
            s.lrSchedule = schedule
            let lrs = (5..<105).map { s.learningRate(afterSteps: $0) }
            #expect(zip(lrs, lrs.dropFirst()).allSatisfy { $0 >= $1 })
        }
    }

    @Test func emaSchedules() {
        var s = Self.cpuLike()
        #expect(s.emaDecay(atStep: 1) == 2.0 / 11.0)
        #expect(s.emaDecay(atStep: 10_000) == 0.999)
        s.emaSchedule = .power
        #expect(s.emaDecay(atStep: 1) == 0)                                  // the average starts as the weights
        #expect(abs(s.emaDecay(atStep: 100) - pow(0.99, 7.94)) < 1e-12)
        // Its averaging length grows with the run, about s/(γ+1).
        #expect(abs(s.emaAveragingSteps(atStep: 1000) - 1000 / 7.94) < 1)
    }

    @Test func minSNRWeights() throws {
        let d = try GaussianDiffusion()
        let w = try #require(Self.cpuLike().mseWeights(t: [0, 100, 500, 999], diffusion: d))
        for (i, t) in [0, 100, 500, 999].enumerated() {
            let snr = d.alphasCumprod[t] / (1 - d.alphasCumprod[t])
            #expect(w[i] == Float(min(snr, 5) / snr))
        }
        #expect(w[0] < 1e-3 && w[3] == 1)  // t = 0 is nearly clean (SNR ≈ 1e4); t = 999 is noise
    }

    /// The weighted loss: loss_n = w_n·mse_n + vb_n, the ε gradient scaled by w_n, the v gradient unchanged.
    @Test func weightedLossAndGradient() throws {
        let d = try GaussianDiffusion()
        let n = 3, m = 8
        let x0 = randomArray(n * m, seed: 1).map { max(-1, min(1, $0)) }, noise = randomArray(n * m, seed: 2)
        let out = randomArray(2 * n * m, seed: 3).map { $0 * 0.5 }
        let t = [0, 400, 999]
        let weights: [Float] = [0.25, 1, 0.5]
        let (plain, gPlain) = d.trainingLosses(xStart: x0, noise: noise, t: t, modelOutput: out)
        let (weighted, gWeighted) = d.trainingLosses(xStart: x0, noise: noise, t: t, modelOutput: out, mseWeights: weights)
        #expect(weighted.mse == plain.mse && weighted.vb == plain.vb)
        for s in 0..<n {
            #expect(weighted.loss[s] == weights[s] * plain.mse[s] + plain.vb[s])
            for j in 0..<m {
                #expect(gWeighted[s * 2 * m + j] == weights[s] * gPlain[s * 2 * m + j] || abs(gWeighted[s * 2 * m + j] - weights[s] * gPlain[s * 2 * m + j]) < 1e-9)
                #expect(gWeighted[s * 2 * m + m + j] == gPlain[s * 2 * m + m + j])
            }
        }
        // The ε gradient is d(Σ w_n mse_n / N)/dε: central differences of the quadratic term.
        let h: Float = 1e-2
        for probe in [0, 5, m + 3, 2 * m + 1] {
            var up = out, down = out
            let s = probe / m, j = probe % m, k = s * 2 * m + j
            up[k] += h; down[k] -= h
            func weightedMSE(_ o: [Float]) -> Double {
                var total = 0.0
                for q in 0..<n {
                    var acc = 0.0
                    for r in 0..<m { let e = Double(noise[q * m + r] - o[q * 2 * m + r]); acc += e * e }
                    total += Double(weights[q]) * acc / Double(m)
                }
                return total / Double(n)
            }
            let fd = (weightedMSE(up) - weightedMSE(down)) / Double(2 * h)
            #expect(abs(fd - Double(gWeighted[k])) < 1e-5, "ε gradient at \(k): \(gWeighted[k]) vs \(fd)")
        }
    }

    /// A run with every schedule on resumes bit-exactly from a checkpoint file.
    @Test func scheduledResumeIsBitExact() throws {
        let settings = Self.cpuLike(steps: 8)
        let config = TrainerTests.config
        let straight = try DiTTrainer(config: config, settings: settings, seed: 3)
        let lossesStraight = TrainerTests.run(straight, steps: 0..<8)
        let first = try DiTTrainer(config: config, settings: settings, seed: 3)
        let lossesA = TrainerTests.run(first, steps: 0..<4)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafeTensors.write(first.checkpoint(), to: path)
        let resumed = try DiTTrainer(config: config, settings: settings, seed: 999)
        try resumed.restore(from: SafeTensors.read(contentsOf: path))
        let lossesB = TrainerTests.run(resumed, steps: 4..<8)
        #expect(lossesA + lossesB == lossesStraight)
        #expect(resumed.model.params.toArray() == straight.model.params.toArray())
        #expect(resumed.ema.toArray() == straight.ema.toArray())
        // Another schedule is another run: the checkpoint is refused.
        var other = settings
        other.lrSchedule = .linear
        let wrong = try DiTTrainer(config: config, settings: other, seed: 3)
        #expect(throws: DiTTrainer.CheckpointError.self) { try wrong.restore(from: SafeTensors.read(contentsOf: path)) }
    }
}

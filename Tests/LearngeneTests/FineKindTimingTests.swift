import Foundation
import Testing
import DiT
@testable import Learngene

/// Step timing of the learngene trainer against the dense DiT trainer (opt-in:
/// LEARNGENE_TIMING=1; release build). Prints median milliseconds per step.
@Suite struct FineKindTimingTests {
    static let enabled = ProcessInfo.processInfo.environment["LEARNGENE_TIMING"] == "1"

    static func median(_ steps: Int, _ body: (Int) -> Void) -> Double {
        for k in 0..<3 { body(k) }
        var times: [Double] = []
        for k in 0..<steps {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body(k)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        return times.sorted()[steps / 2]
    }

    @Test(.enabled(if: enabled)) func condenseVersusDenseStep() throws {
        let c = DiTConfig(inputSize: 16, patchSize: 2, inChannels: 1, hiddenSize: 64, depth: 4, numHeads: 4, numClasses: 10)
        let N = 8, x = FK.random(N * 256, seed: 1), y = (0..<N).map { $0 % 10 }
        let settings = TrainingSettings(optimizer: AdamWSettings(learningRate: 1e-4), emaDecay: 0.999)
        let dense = try DiTTrainer(config: c, settings: settings, seed: 1)
        let tDense = Self.median(20) { _ in x.withUnsafeBufferPointer { _ = dense.trainStep(images: $0.baseAddress!, labels: y) } }
        var line = "step ms (hidden 64, depth 4, 16×16, batch 8): dense \(String(format: "%.2f", tDense))"
        let sources: [(String, any LearngeneParameterization)] = [
            ("FINE r=64", try FineParameterization.fromAncestry(dense.model)),
            ("FINE r=16", try FineParameterization.fromAncestry(dense.model, settings: FineSettings(rank: 16))),
            ("KIND r=64", try KindParameterization.fromAncestry(dense.model)),
            ("KIND r=16", try KindParameterization.fromAncestry(dense.model, settings: KindSettings(rank: 16, gate: .randomHalf))),
        ]
        for (name, source) in sources {
            for phase in LearngeneTrainer.Phase.allCases {
                let host = try DescendantHost.build(target: c, ancestry: dense.model, method: source.method)
                let t = try LearngeneTrainer(host: host, source: source, phase: phase, settings: settings, seed: 1)
                let ms = Self.median(20) { _ in x.withUnsafeBufferPointer { _ = t.trainStep(images: $0.baseAddress!, labels: y) } }
                line += ", \(name) \(phase.rawValue) \(String(format: "%.2f", ms))"
            }
        }
        print(line)
    }
}

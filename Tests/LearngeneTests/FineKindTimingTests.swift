import Foundation
import Testing
import DiT
import Tensors
@testable import Learngene

/// Step timing of the learngene trainer against the dense DiT trainer (opt-in:
/// LEARNGENE_TIMING=1; release build). Measured single-threaded (one worker, one OpenBLAS
/// thread) in thread CPU time, so that other processes on the machine do not blur the
/// comparison; prints the median milliseconds per step.
@Suite struct FineKindTimingTests {
    static let enabled = ProcessInfo.processInfo.environment["LEARNGENE_TIMING"] == "1"

    static func cpuMilliseconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) * 1e3 + Double(ts.tv_nsec) / 1e6
    }

    static func median(_ steps: Int, _ body: () -> Void) -> Double {
        for _ in 0..<3 { body() }
        var times: [Double] = []
        for _ in 0..<steps {
            let t0 = cpuMilliseconds()
            body()
            times.append(cpuMilliseconds() - t0)
        }
        return times.sorted()[steps / 2]
    }

    @Test(.enabled(if: enabled)) func condenseVersusDenseStep() throws {
        let c = DiTConfig(inputSize: 16, patchSize: 2, inChannels: 1, hiddenSize: 64, depth: 4, numHeads: 4, numClasses: 10)
        let N = 8, x = FK.random(N * 256, seed: 1), y = (0..<N).map { $0 % 10 }
        let settings = TrainingSettings(optimizer: AdamWSettings(learningRate: 1e-4), emaDecay: 0.999)
        try Parallel.withWorkers(1) {
            try Blas.withThreads(1) {
                let dense = try DiTTrainer(config: c, settings: settings, seed: 1)
                let tDense = Self.median(30) { x.withUnsafeBufferPointer { _ = dense.trainStep(images: $0.baseAddress!, labels: y) } }
                var line = "step CPU ms, 1 thread (hidden 64, depth 4, 16×16, batch 8): dense \(String(format: "%.1f", tDense))"
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
                        let ms = Self.median(30) { x.withUnsafeBufferPointer { _ = t.trainStep(images: $0.baseAddress!, labels: y) } }
                        line += ", \(name) \(phase.rawValue) \(String(format: "%.1f", ms))"
                    }
                }
                print(line)
            }
        }
    }
}

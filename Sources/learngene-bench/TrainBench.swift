import ArgumentParser
import DiT
import Foundation
import Tensors

/// `learngene-bench train --config tiny --batch 32`: images/s of the full training step
/// (sample t and noise, q_sample, forward, loss, backward, AdamW, EMA), the sampling speed,
/// peak memory beside the analytic need, and sgemm GFLOP/s measured in the same run; then,
/// when `python3` has torch, the PyTorch reference (../shared/bench/torch_dit_bench.py) on the
/// same config and the ratio ours/PyTorch. One JSON object per measurement on stdout.
struct TrainBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Benchmark the DiT training step and sampling against PyTorch.")

    @Option(help: "Config: tiny, mnist, s2 (perf.md) or any DiT preset name.") var config = "tiny"
    @Option(help: "Batch size.") var batch = 32
    @Option(help: "Timed steps (median reported).") var steps = 5
    @Option(help: "Untimed warm-up steps.") var warmup = 2
    @Option(help: "Model evaluations timed for sampling (16 images with CFG, i.e. batch 32).") var sampleSteps = 5
    @Option(help: "Path of torch_dit_bench.py.") var torchBench = "../shared/bench/torch_dit_bench.py"
    @Option(help: "Threads for PyTorch.") var threads = Parallel.workers
    @Flag(help: "Skip the PyTorch run.") var noTorch = false

    func run() throws {
        guard let cfg = DiTConfig.preset(config) else { throw ValidationError("unknown config \(config); try tiny, mnist, s2 or DiT-S/2") }
        // PyTorch first: a child started later would inherit this process's ru_maxrss.
        let torch = noTorch ? nil : runTorch(cfg: config)
        let trainer = try DiTTrainer(config: cfg, settings: TrainingSettings(), seed: 0)
        let m = cfg.inChannels * cfg.inputSize * cfg.inputSize
        var rng = RandomStream(seed: 1)
        let images = Tensor(shape: [batch, m])
        rng.fillUniform(images.data, count: images.count, low: -1, high: 1)
        let labels = (0..<batch).map { _ in rng.nextInt(below: cfg.numClasses) }

        for _ in 0..<warmup { trainer.trainStep(images: images.data, labels: labels) }
        var times: [Double] = []
        for _ in 0..<steps {
            let t0 = now()
            trainer.trainStep(images: images.data, labels: labels)
            times.append(now() - t0)
        }
        let trainMs = median(times) * 1000
        // Peak memory of training alone (ru_maxrss only grows; sampling below allocates more).
        let trainPeakMB = peakRSSMegabytes()
        let gflopFwd = forwardGFLOP(cfg)
        let ips = Double(batch) / (trainMs / 1000)

        // Sampling: K model evaluations at batch 32 (16 images, conditional + null rows).
        let sampler = trainer.inferenceModel(ema: true)
        let xs = Tensor(shape: [32, m]), outS = Tensor(shape: [32, 2 * m])
        rng.fillNormal(xs.data, count: xs.count)
        let ys = (0..<32).map { $0 < 16 ? $0 % cfg.numClasses : cfg.numClasses }
        sampler.forward(x: xs.data, t: [Int](repeating: 500, count: 32), y: ys, out: outS.data)
        let s0 = now()
        for k in 0..<sampleSteps { sampler.forward(x: xs.data, t: [Int](repeating: 999 - k, count: 32), y: ys, out: outS.data) }
        let evalsPerS = Double(sampleSteps) / (now() - s0)
        sampler.releaseActivations()

        let peakMB = trainPeakMB
        let samplingPeakMB = peakRSSMegabytes()
        let P = trainer.model.layout.count
        let act = DiTModel.activationFloats(config: cfg, batch: batch)
        let analyticMB = Double(5 * P + act.saved) * 4 / 1_048_576
        let sgemm = sgemmGFLOPs(1024)

        var ours: [String: Any] = [
            "impl": "learngene", "config": config, "batch": batch, "threads": Parallel.workers, "blas_core": Blas.coreName,
            "train_ms": round3(trainMs), "train_images_per_s": round3(ips), "gflop_per_image_fwd": round3(gflopFwd),
            "train_gflops": round3(3 * gflopFwd * ips), "matmul_peak_gflops": round3(sgemm),
            "fraction_of_sgemm_peak": round3(3 * gflopFwd * ips / sgemm),
            "sample_steps": sampleSteps, "sample_evals_per_s": round3(evalsPerS),
            "peak_rss_mb": round3(peakMB), "peak_rss_after_sampling_mb": round3(samplingPeakMB), "analytic_mb": round3(analyticMB),
            "analytic_breakdown_mb": ["params_grads_adam_ema": round3(Double(5 * P) * 4 / 1_048_576),
                                      "saved_activations": round3(Double(act.saved) * 4 / 1_048_576),
                                      "backward_scratch": round3(Double(act.scratch) * 4 / 1_048_576)],
            "peak_over_analytic": round3(peakMB / analyticMB), "params": P,
        ]
        printJSON(ours)

        guard !noTorch else { return }
        guard let torch else {
            printJSON(["impl": "pytorch", "skipped": "python3 with torch not available or \(torchBench) not found"])
            return
        }
        printJSON(torch)
        if let tips = torch["train_images_per_s"] as? Double {
            ours = ["ratio": "learngene/pytorch", "config": config, "batch": batch,
                    "train_images_per_s_ratio": round3(ips / tips)]
            if let te = torch["sample_evals_per_s"] as? Double { ours["sample_evals_per_s_ratio"] = round3(evalsPerS / te) }
            printJSON(ours)
        }
    }

    /// Runs the PyTorch reference on the same config and batch; nil when torch is missing.
    func runTorch(cfg: String) -> [String: Any]? {
        guard FileManager.default.fileExists(atPath: torchBench) else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", torchBench, "--config", cfg, "--batch", String(batch), "--threads", String(threads),
                       "--steps", String(steps), "--warmup", String(warmup), "--sample-steps", String(sampleSteps), "--json"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0,
              let line = String(data: data, encoding: .utf8)?.split(separator: "\n").last,
              var obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
        obj["impl"] = "pytorch"
        return obj
    }
}

/// Analytic forward GFLOP per image (2 per multiply-add; matmul, conv and attention products
/// only), the convention of torch_dit_bench.py.
fileprivate func forwardGFLOP(_ c: DiTConfig) -> Double {
    let D = Double(c.hiddenSize), T = Double(c.tokens), L = Double(c.depth)
    let perBlock = 2 * T * D * 3 * D + 2 * T * T * D * 2 + 2 * T * D * D + 2 * T * D * 4 * D * 2 + 2 * D * 6 * D
    let embed = 2 * T * Double(c.patchDim) * D + 2 * 256 * D + 2 * D * D
    let final = 2 * D * 2 * D + 2 * T * D * Double(c.patchSize * c.patchSize * c.outChannels)
    return (L * perBlock + embed + final) / 1e9
}

fileprivate func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

fileprivate func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.isEmpty ? 0 : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
}

fileprivate func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }

/// Peak resident memory of this process (getrusage's ru_maxrss, in MiB).
fileprivate func peakRSSMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

/// Median GFLOP/s of an n³ sgemm over a few repetitions, in this process.
fileprivate func sgemmGFLOPs(_ n: Int) -> Double {
    let a = Tensor(shape: [n, n]), b = Tensor(shape: [n, n]), c = Tensor(shape: [n, n])
    var rng = RandomStream(seed: 2)
    rng.fillUniform(a.data, count: a.count)
    rng.fillUniform(b.data, count: b.count)
    Blas.nn(m: n, n: n, k: n, a: a.data, b: b.data, c: c.data)
    var rates: [Double] = []
    for _ in 0..<5 {
        let t0 = now()
        Blas.nn(m: n, n: n, k: n, a: a.data, b: b.data, c: c.data)
        rates.append(2 * Double(n * n * n) / (now() - t0) / 1e9)
    }
    return median(rates)
}

fileprivate func printJSON(_ obj: [String: Any]) {
    if let d = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), let s = String(data: d, encoding: .utf8) {
        print(s)
        fflush(nil)
    }
}

import ArgumentParser
import DiT
import Foundation
import Tensors

/// `learngene-bench train --config tiny --batch 32`: images/s of the full training step
/// (sample t and noise, q_sample, forward, loss, backward, AdamW, EMA) and model evaluations/s
/// of guided sampling, against PyTorch on the same config in the same run.
///
/// Fairness, because the machine is shared and drifts:
/// - the two sides run in interleaved rounds (ours, theirs, theirs, ours, …); each round times
///   `steps` training steps (median), `sample-steps` guided evaluations and an sgemm, so every
///   ratio and every fraction of the sgemm peak compares figures taken seconds apart;
/// - `--threads` sets both sides: our workers and OpenBLAS's threads, and torch's;
/// - peak memory (ru_maxrss) is read at the same two points on both sides: after the warm-up
///   training steps, and after the last round (training and sampling);
/// - the summary gives min and median over rounds, and the ratio's median and min.
/// PyTorch is `benchmarks/speed/torch_reference.py` (the reference script plus the cpu-*
/// configs and a `--serve` mode), kept alive between rounds in a child process.
struct TrainBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Benchmark the DiT training step and sampling against PyTorch.")

    @Option(help: "Config: tiny, mnist, s2, cpu-28-small, … (DiTConfig.preset names).") var config = "tiny"
    @Option(help: "Batch size.") var batch = 32
    @Option(help: "Interleaved rounds (each side runs one per round).") var rounds = 5
    @Option(help: "Timed training steps per round (the round's median is kept).") var steps = 3
    @Option(help: "Untimed warm-up steps before the first round.") var warmup = 2
    @Option(help: "Model evaluations timed per round for sampling (16 images with CFG, i.e. batch 32).") var sampleSteps = 5
    @Option(help: "Path of the PyTorch reference script.") var torchScript = "benchmarks/speed/torch_reference.py"
    @Option(help: "Threads for both sides (our workers and OpenBLAS, and torch).") var threads = Parallel.defaultWorkers
    @Flag(help: "Skip the PyTorch side.") var noTorch = false

    func run() throws {
        guard let cfg = DiTConfig.preset(config) else { throw ValidationError("unknown config \(config); try tiny, mnist, s2, cpu-28-small or DiT-S/2") }
        guard rounds >= 1, steps >= 1, sampleSteps >= 1 else { throw ValidationError("--rounds, --steps and --sample-steps must be at least 1") }
        // The child first: one started later would inherit this process's ru_maxrss.
        var torch: TorchChild? = nil
        var torchSkipped: String? = nil
        if !noTorch {
            do { torch = try TorchChild(script: torchScript, config: config, batch: batch, threads: threads,
                                        steps: steps, warmup: warmup, sampleSteps: sampleSteps) }
            catch let e as TorchChild.Unavailable { torchSkipped = e.reason }
        }
        try Parallel.withWorkers(threads) {
            try Blas.withThreads(threads) { try measure(cfg: cfg, torch: torch, torchSkipped: torchSkipped) }
        }
    }

    func measure(cfg: DiTConfig, torch: TorchChild?, torchSkipped: String?) throws {
        let side = try OurSide(cfg: cfg, batch: batch)
        for _ in 0..<warmup { side.trainStep() }
        let ourTrainPeak = peakRSSMegabytes()
        let torchTrainPeak = try torch?.request("peak")["peak_rss_mb"] as? Double

        var ours: [[String: Double]] = [], theirs: [[String: Double]] = []
        for r in 0..<rounds {
            // ABBA order: neither side always runs right after the other's cache-cold start.
            let oursFirst = r % 2 == 0
            if !oursFirst, let torch { theirs.append(try torch.round()) }
            ours.append(side.round(steps: steps, sampleSteps: sampleSteps))
            if oursFirst, let torch { theirs.append(try torch.round()) }
            var line: [String: Any] = ["round": r + 1, "learngene": ours[r]]
            if let t = theirs.last, theirs.count == r + 1 { line["pytorch"] = t }
            printJSON(line)
        }
        let gflopFwd = forwardGFLOP(cfg)
        for i in ours.indices { ours[i]["fraction_of_sgemm_peak"] = 3 * gflopFwd * ours[i]["train_images_per_s"]! / ours[i]["matmul_peak_gflops"]! }
        for i in theirs.indices { theirs[i]["fraction_of_sgemm_peak"] = 3 * gflopFwd * theirs[i]["train_images_per_s"]! / theirs[i]["matmul_peak_gflops"]! }

        let P = side.trainer.model.layout.count
        let act = DiTModel.activationFloats(config: cfg, batch: batch)
        let analyticMB = Double(5 * P + act.saved) * 4 / 1_048_576
        var summary: [String: Any] = [
            "impl": "learngene", "config": config, "batch": batch, "threads": threads, "blas_core": Blas.coreName,
            "rounds": rounds, "steps_per_round": steps, "sample_steps": sampleSteps,
            "gflop_per_image_fwd": round3(gflopFwd), "params": P,
            "peak_rss_after_warmup_mb": round3(ourTrainPeak), "peak_rss_end_mb": round3(peakRSSMegabytes()),
            "analytic_mb": round3(analyticMB),
        ]
        summary.merge(stats(ours)) { a, _ in a }
        printJSON(summary)

        guard let torch else {
            if !noTorch { printJSON(["impl": "pytorch", "config": config, "skipped": torchSkipped ?? "not run"]) }
            return
        }
        var theirSummary: [String: Any] = ["impl": "pytorch", "config": config, "batch": batch, "threads": threads,
                                           "torch_version": torch.ready["torch_version"] ?? "?",
                                           "peak_rss_after_warmup_mb": torchTrainPeak ?? -1,
                                           "peak_rss_end_mb": (try torch.request("peak")["peak_rss_mb"] as? Double) ?? -1]
        theirSummary.merge(stats(theirs)) { a, _ in a }
        printJSON(theirSummary)
        torch.quit()

        // Per-round ratios: each compares two figures taken in the same round.
        var ratio: [String: Any] = ["ratio": "learngene/pytorch", "config": config, "batch": batch, "threads": threads]
        for key in ["train_images_per_s", "sample_evals_per_s"] {
            let rs = zip(ours, theirs).map { $0[key]! / $1[key]! }
            ratio[key + "_ratio_median"] = round3(median(rs))
            ratio[key + "_ratio_min"] = round3(rs.min()!)
        }
        printJSON(ratio)
    }

    /// min and median over rounds of every figure.
    func stats(_ rows: [[String: Double]]) -> [String: Any] {
        var out: [String: Any] = [:]
        for key in rows[0].keys.sorted() {
            let xs = rows.map { $0[key]! }
            out[key] = ["min": round3(xs.min()!), "median": round3(median(xs))]
        }
        return out
    }
}

/// Our side: a trainer on fixed synthetic data, and its EMA model for guided sampling.
final class OurSide {
    let cfg: DiTConfig, batch: Int
    let trainer: DiTTrainer
    let images: Tensor, labels: [Int]
    let sampler: DiTModel
    let xs: Tensor, outS: Tensor, guided: Tensor, ys: [Int]

    init(cfg: DiTConfig, batch: Int) throws {
        self.cfg = cfg
        self.batch = batch
        trainer = try DiTTrainer(config: cfg, settings: TrainingSettings(), seed: 0)
        let m = cfg.inChannels * cfg.inputSize * cfg.inputSize
        var rng = RandomStream(seed: 1)
        images = Tensor(shape: [batch, m])
        rng.fillUniform(images.data, count: images.count, low: -1, high: 1)
        labels = (0..<batch).map { _ in rng.nextInt(below: cfg.numClasses) }
        sampler = trainer.inferenceModel(ema: true)
        xs = Tensor(shape: [32, m]); outS = Tensor(shape: [32, 2 * m]); guided = Tensor(shape: [16, m])
        rng.fillNormal(xs.data, count: xs.count)
        ys = (0..<32).map { $0 < 16 ? $0 % cfg.numClasses : cfg.numClasses }
    }

    func trainStep() { trainer.trainStep(images: images.data, labels: labels) }

    /// One round: the median of `steps` training steps, `sampleSteps` guided evaluations
    /// (batch 32: 16 conditional rows and their null rows, combined with scale 4 as the
    /// reference does), and a 1024³ sgemm.
    func round(steps: Int, sampleSteps: Int) -> [String: Double] {
        var times: [Double] = []
        for _ in 0..<steps {
            let t0 = now()
            trainStep()
            times.append(now() - t0)
        }
        let trainMs = median(times) * 1000
        let C = cfg.inChannels, S = cfg.inputSize * cfg.inputSize
        func evaluate(_ t: Int) {
            sampler.forward(x: xs.data, t: [Int](repeating: t, count: 32), y: ys, out: outS.data)
            for n in 0..<16 {
                let cond = outS.data + n * 2 * C * S, uncond = outS.data + (n + 16) * 2 * C * S, g = guided.data + n * C * S
                for i in 0..<(C * S) { g[i] = uncond[i] + 4 * (cond[i] - uncond[i]) }
            }
        }
        evaluate(999)  // warm-up, as the reference
        let s0 = now()
        for k in 0..<sampleSteps { evaluate(999 - k * 999 / max(1, sampleSteps - 1)) }
        let evalsPerS = Double(sampleSteps) / (now() - s0)
        return ["train_ms": round3(trainMs), "train_images_per_s": round3(Double(batch) / (trainMs / 1000)),
                "sample_evals_per_s": round3(evalsPerS), "matmul_peak_gflops": round3(sgemmGFLOPs(1024))]
    }
}

/// The PyTorch reference in `--serve` mode: one JSON line per request.
final class TorchChild {
    struct Unavailable: Error { let reason: String }
    let process = Process()
    let input = Pipe(), output = Pipe()
    var buffer = Data()
    var ready: [String: Any] = [:]

    init(script: String, config: String, batch: Int, threads: Int, steps: Int, warmup: Int, sampleSteps: Int) throws {
        guard FileManager.default.fileExists(atPath: script) else {
            throw Unavailable(reason: "\(script) not found (run from the repository root, or give --torch-script)")
        }
        guard let list = Self.configs(script: script) else {
            throw Unavailable(reason: "python3 with torch and numpy not available (pip install torch numpy)")
        }
        guard list.contains(config) else {
            throw Unavailable(reason: "config \(config) is not in the reference's CONFIGS (\(list.joined(separator: ", ")))")
        }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, "--config", config, "--batch", String(batch), "--threads", String(threads),
                             "--steps", String(steps), "--warmup", String(warmup), "--sample-steps", String(sampleSteps), "--serve"]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        try process.run()
        ready = try readLine()
    }

    static func configs(script: String) -> [String]? {
        let p = Process(), pipe = Pipe()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script, "--list-configs"]
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        return try? JSONSerialization.jsonObject(with: data) as? [String]
    }

    func request(_ command: String) throws -> [String: Any] {
        input.fileHandleForWriting.write(Data((command + "\n").utf8))
        return try readLine()
    }

    func round() throws -> [String: Double] {
        try request("round").compactMapValues { ($0 as? NSNumber)?.doubleValue }
    }

    func quit() {
        input.fileHandleForWriting.write(Data("quit\n".utf8))
        process.waitUntilExit()
    }

    private func readLine() throws -> [String: Any] {
        while true {
            if let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = buffer[buffer.startIndex..<nl]
                buffer = Data(buffer[(nl + 1)...])
                guard let obj = try? JSONSerialization.jsonObject(with: line) as? [String: Any] else {
                    throw ValidationError("the PyTorch reference printed a line that is not JSON: \(String(decoding: line, as: UTF8.self))")
                }
                return obj
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { throw ValidationError("the PyTorch reference exited early (its stderr is above)") }
            buffer.append(chunk)
        }
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

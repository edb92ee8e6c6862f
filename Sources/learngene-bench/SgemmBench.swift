import ArgumentParser
import Dispatch
import Foundation
import Tensors

/// `learngene-bench sgemm`: OpenBLAS sgemm GFLOP/s with the kernel OpenBLAS picks by itself
/// and with forced ones, on a square 1024³ product and the DiT-S/2 linear-layer shapes.
///
/// OpenBLAS chooses its kernel once, when the library loads, from OPENBLAS_CORETYPE; so each
/// kernel is measured in a child process (this same binary, `--child`) started with the
/// variable unset ("default") or set. Children also get LEARNGENE_NO_BLAS_REEXEC=1, so that
/// the start-up re-exec (BlasKernel) cannot turn "default" into something else.
///
/// Output: one JSON object per measurement on stdout, then one `sgemm-ratio` object per shape
/// and forced kernel (its speed over the default kernel's, measured in the same run, which is
/// the only comparison that means something on a shared, noisy machine).
struct SgemmBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sgemm",
        abstract: "sgemm GFLOP/s: OpenBLAS's default kernel vs forced ones (one child process per kernel).")

    @Option(name: .customLong("kernel"),
            help: ArgumentHelp("A kernel to measure (repeatable): 'default' (OPENBLAS_CORETYPE unset) or an OPENBLAS_CORETYPE value. "
                + "Default: default, the fastest the CPU supports (SkylakeX with AVX-512F, else Haswell with AVX2+FMA), Prescott."))
    var kernels: [String] = []

    @Option(name: .customLong("shape"),
            help: ArgumentHelp("A product OP:MxKxN (repeatable), OP one of NN, NT, TN, TT; C is MxN, the inner dimension K. "
                + "Default: NN:1024x1024x1024, NN:8192x384x1152 (qkv), NT:8192x1152x384 (dX), TN:384x8192x1152 (dW)."))
    var shapes: [String] = []

    @Option(help: "Seconds of timed calls per measurement (at least 3 calls).")
    var seconds: Double = 0.4

    @Option(help: "OpenBLAS threads (default: the library's own count).")
    var threads: Int?

    @Flag(help: .hidden) var child = false
    @Option(help: .hidden) var label = "default"

    static let defaultShapes = ["NN:1024x1024x1024", "NN:8192x384x1152", "NT:8192x1152x384", "TN:384x8192x1152"]

    struct Shape {
        var op: String, m: Int, k: Int, n: Int
        var transA: Bool { op.first == "T" }
        var transB: Bool { op.last == "T" }
        var name: String { "\(m)x\(k)x\(n)" }
    }

    /// One measurement (also the format children print and the parent reads back).
    struct Measurement: Codable {
        var bench = "sgemm"
        var kernel_requested: String
        var kernel: String
        var op: String
        var m: Int, k: Int, n: Int
        var threads: Int
        var calls: Int
        var best_ms: Double
        var median_ms: Double
        var gflops: Double         // from the best call
        var gflops_median: Double
    }

    struct Ratio: Codable {
        var bench = "sgemm-ratio"
        var op: String, shape: String
        var kernel: String, kernel_gflops: Double
        var baseline: String, baseline_gflops: Double
        var speedup: Double
    }

    func validate() throws {
        for s in shapes where Self.parse(s) == nil { throw ValidationError("bad --shape '\(s)': expected OP:MxKxN, e.g. NT:8192x1152x384") }
        if seconds <= 0 { throw ValidationError("--seconds must be positive") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
    }

    static func parse(_ s: String) -> Shape? {
        let parts = s.uppercased().split(separator: ":")
        guard parts.count == 2, ["NN", "NT", "TN", "TT"].contains(String(parts[0])) else { return nil }
        let dims = parts[1].split(separator: "X").compactMap { Int($0) }
        guard dims.count == 3, dims.allSatisfy({ $0 > 0 }) else { return nil }
        return Shape(op: String(parts[0]), m: dims[0], k: dims[1], n: dims[2])
    }

    func run() throws {
        let shapeList = (shapes.isEmpty ? Self.defaultShapes : shapes).compactMap(Self.parse)
        if child {
            if let t = threads { Blas.setThreads(t) }
            for s in shapeList { try emit(measure(s)) }
            return
        }
        var results: [Measurement] = []
        for kernel in kernels.isEmpty ? Self.defaultKernels() : kernels {
            results += try runChild(kernel: kernel)
        }
        // Speed-ups over the default kernel, same run.
        for s in shapeList {
            guard let base = results.first(where: { $0.kernel_requested == "default" && $0.op == s.op && $0.m == s.m && $0.k == s.k && $0.n == s.n })
            else { continue }
            for r in results where r.kernel_requested != "default" && r.op == s.op && r.m == s.m && r.k == s.k && r.n == s.n {
                try emit(Ratio(op: s.op, shape: s.name, kernel: r.kernel, kernel_gflops: r.gflops,
                               baseline: "default (\(base.kernel))", baseline_gflops: base.gflops,
                               speedup: (r.gflops / base.gflops * 100).rounded() / 100))
            }
        }
    }

    /// default, the best forced kernel this CPU can run, and the slow SSE3 one.
    static func defaultKernels() -> [String] {
        let flags = BlasKernel.cpuFlags()
        var list = ["default"]
        if flags.contains("avx512f") { list.append("SkylakeX") }
        else if flags.contains("avx2") && flags.contains("fma") { list.append("Haswell") }
        list.append("Prescott")
        return list
    }

    /// Runs this binary as `sgemm --child` with OPENBLAS_CORETYPE unset or set to `kernel`,
    /// passes its JSON lines through, and returns them parsed.
    func runChild(kernel: String) throws -> [Measurement] {
        var env = ProcessInfo.processInfo.environment
        env[BlasKernel.coreTypeVariable] = nil
        env[BlasKernel.markerVariable] = nil
        env[BlasKernel.optOutVariable] = "1"
        if kernel != "default" { env[BlasKernel.coreTypeVariable] = kernel }
        var args = ["sgemm", "--child", "--label", kernel, "--seconds", String(seconds)]
        for s in shapes { args += ["--shape", s] }
        if let t = threads { args += ["--threads", String(t)] }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        process.arguments = args
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ValidationError("child for kernel \(kernel) exited with status \(process.terminationStatus)")
        }
        var out: [Measurement] = []
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            print(line)
            if let m = try? JSONDecoder().decode(Measurement.self, from: Data(line.utf8)) { out.append(m) }
        }
        fflush(nil)
        return out
    }

    /// Times repeated calls of one product: one warm-up call (page faults, OpenBLAS buffers),
    /// then calls until `seconds` have passed, at least 3.
    func measure(_ s: Shape) -> Measurement {
        let a = Tensor(shape: [s.m * s.k]), b = Tensor(shape: [s.k * s.n]), c = Tensor(shape: [s.m * s.n])
        var rng = RandomStream(seed: 1)
        rng.fillUniform(a, low: -1, high: 1)
        rng.fillUniform(b, low: -1, high: 1)
        let call = {
            Blas.sgemm(transA: s.transA, transB: s.transB, m: s.m, n: s.n, k: s.k,
                       a: a.data, b: b.data, c: c.data)
        }
        call()
        var times: [Double] = []
        let start = DispatchTime.now().uptimeNanoseconds
        while times.count < 3 || Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 < seconds {
            let t0 = DispatchTime.now().uptimeNanoseconds
            call()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        withExtendedLifetime((a, b, c)) {}
        times.sort()
        let flop = 2.0 * Double(s.m) * Double(s.n) * Double(s.k)
        let best = times[0], median = times[times.count / 2]
        func round(_ x: Double, _ digits: Double) -> Double { (x * digits).rounded() / digits }
        return Measurement(kernel_requested: label, kernel: Blas.coreName, op: s.op, m: s.m, k: s.k, n: s.n,
                           threads: Blas.threads, calls: times.count,
                           best_ms: round(best * 1e3, 100), median_ms: round(median * 1e3, 100),
                           gflops: round(flop / best * 1e-9, 10), gflops_median: round(flop / median * 1e-9, 10))
    }

    func emit<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
        fflush(nil)
    }
}

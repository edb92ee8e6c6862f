import RealWeights
import Foundation
import Testing
import Formats
import Tensors
@testable import Metrics

/// The measurement the issue asks for, not a check: every metric for Fashion-MNIST train vs
/// test (the first 2000 images of each) with the real weights, and the time per 1000 images.
/// Off unless LEARNGENE_MEASURE_FASHION_MNIST is set (it takes minutes of both cores; run it
/// in release: `LEARNGENE_MEASURE_FASHION_MNIST=2000 swift test -c release --filter FashionMNISTMeasurement`).
/// Needs `apt-get install dataset-fashion-mnist` and the weights. Prints; asserts only that
/// the numbers are finite.
@Suite struct FashionMNISTMeasurement {
    static let count = Int(ProcessInfo.processInfo.environment["LEARNGENE_MEASURE_FASHION_MNIST"] ?? "") ?? 0
    static let inputSize = Int(ProcessInfo.processInfo.environment["LEARNGENE_MEASURE_INPUT_SIZE"] ?? "") ?? EfficientNetLite0.defaultInputSize

    static func images(_ split: String, count: Int) throws -> Tensor {
        let idx = try IDX.read(contentsOf: "/usr/share/datasets/fashion-mnist/\(split)-images-idx3-ubyte.gz")
        let t = Tensor(shape: [count, 1, 28, 28])
        for i in 0..<(count * 784) { t.data[i] = Float(idx.data[i]) / 127.5 - 1 }
        return t
    }

    @Test(.enabled(if: count > 0, "set LEARNGENE_MEASURE_FASHION_MNIST=2000 to measure"))
    func trainVersusTest() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let path = try RealWeights.require("the EfficientNet-Lite0 weights", ifMissing: EfficientNetLite0.missingWeightsMessage(root: root)) {
            EfficientNetLite0.locateWeights(root: root)
        }
        let net = try EfficientNetLite0(weights: try SafeTensors.read(contentsOf: path), inputSize: Self.inputSize)
        let train = try Self.images("train", count: Self.count), test = try Self.images("t10k", count: Self.count)
        let t0 = Date()
        let ref = try ReferenceStatistics.compute(images: test, network: net, key: "fashion-mnist test")
        let referenceSeconds = Date().timeIntervalSince(t0)
        let report = Evaluation.evaluate(samples: train, reference: ref, referenceName: "fashion-mnist test[:\(Self.count)]",
                                         network: net, sampling: nil)
        print(String(decoding: report.jsonData(), as: UTF8.self))
        let features = report.seconds["features"] ?? 0
        print("FashionMNISTMeasurement: input \(Self.inputSize)px, \(Self.count) vs \(Self.count) images; reference statistics \(String(format: "%.1f", referenceSeconds)) s; sample features \(String(format: "%.1f", features)) s = \(String(format: "%.1f", features / Double(Self.count) * 1000)) s per 1000 images; statistics \(String(format: "%.1f", report.seconds["statistics"] ?? 0)) s; OpenBLAS \(Blas.coreName)")
        #expect(report.metrics.values.allSatisfy { $0.value.isFinite })
    }
}

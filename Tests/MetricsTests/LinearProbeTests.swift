import Foundation
import Testing
import Tensors
@testable import Metrics

/// The recognizability probe against scikit-learn's RidgeClassifier (Tools/make_probe_fixtures.py),
/// and `ClassAccuracy` on data whose answer is known.
@Suite struct LinearProbeTests {
    struct Fixture {
        var classes: Int, dimension: Int
        var train: Features, trainLabels: [Int], test: Features, testLabels: [Int]
        var cases: [(lambda: Double, predictions: [Int])]
    }

    static func fixture() throws -> Fixture {
        let url = try #require(Bundle.module.url(forResource: "probe", withExtension: "json", subdirectory: "Fixtures"))
        let o = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let d = o["dimension"] as! Int
        func feats(_ k: String) -> Features {
            let v = (o[k] as! [Double]).map(Float.init)
            return Features(count: v.count / d, dimension: d, values: v)
        }
        let cases = (o["cases"] as! [[String: Any]]).map { (lambda: $0["lambda"] as! Double, predictions: $0["predictions"] as! [Int]) }
        return Fixture(classes: o["classes"] as! Int, dimension: d, train: feats("train"), trainLabels: o["train_labels"] as! [Int],
                       test: feats("test"), testLabels: o["test_labels"] as! [Int], cases: cases)
    }

    @Test func predictsAsScikitLearnsRidgeClassifier() throws {
        let f = try Self.fixture()
        for c in f.cases {
            let probe = try LinearProbe(features: f.train, labels: f.trainLabels, classes: f.classes, lambdas: [c.lambda])
            #expect(probe.predict(f.test) == c.predictions, "λ = \(c.lambda)")
            #expect(probe.lambda == c.lambda)
        }
    }

    /// With the default grid, the λ chosen by leave-one-out accuracy generalizes.
    @Test func leaveOneOutPicksAUsefulLambdaAndSeparatesClasses() throws {
        let f = try Self.fixture()
        let probe = try LinearProbe(features: f.train, labels: f.trainLabels, classes: f.classes)
        #expect(probe.leaveOneOutAccuracy > 0.6)
        let acc = zip(probe.predict(f.test), f.testLabels).filter { $0 == $1 }.count
        #expect(Double(acc) / Double(f.testLabels.count) >= 0.75)
    }

    /// Samples drawn like the real images score like them; samples with shuffled labels score
    /// at chance; the per-class numbers add up to the overall one.
    @Test func classAccuracyTellsRecognizableFromNot() throws {
        var rng = RandomStream(seed: 11)
        let k = 5, d = 20
        let centers = (0..<(k * d)).map { _ in rng.nextNormal() * 3 }
        func draw(_ n: Int) -> (Features, [Int]) {
            var v: [Float] = [], y: [Int] = []
            for i in 0..<n {
                let c = i % k
                y.append(c)
                for j in 0..<d { v.append(centers[c * d + j] + rng.nextNormal()) }
            }
            return (Features(count: n, dimension: d, values: v), y)
        }
        let (ref, refLabels) = draw(400)
        let (good, goodLabels) = draw(200)
        let a = try ClassAccuracy.measure(reference: ref, referenceLabels: refLabels, samples: good, sampleLabels: goodLabels, classes: k)
        #expect(a.real > 0.95 && a.samples > 0.95 && abs(a.ratio - a.samples / a.real) < 1e-12)
        #expect(a.realHeldOut == 80 && a.fitCount == 320)
        let mean = a.samplesPerClass.reduce(0, +) / Double(k)
        #expect(abs(mean - a.samples) < 1e-12)  // balanced classes
        let shuffled = goodLabels.map { ($0 + 1) % k }
        let b = try ClassAccuracy.measure(reference: ref, referenceLabels: refLabels, samples: good, sampleLabels: shuffled, classes: k)
        #expect(b.samples < 0.05 && b.real == a.real)
        #expect(throws: MetricsError.self) {
            try ClassAccuracy.measure(reference: ref, referenceLabels: refLabels, samples: good, sampleLabels: goodLabels.map { $0 + k }, classes: k)
        }
    }
}

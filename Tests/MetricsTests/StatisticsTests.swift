import Foundation
import Testing
import Formats
@testable import Metrics

/// The statistics against numpy/scipy on committed features (Tools/make_metric_fixtures.py).
@Suite struct StatisticsTests {
    static let reference: SafeTensors.File = {
        let url = Bundle.module.url(forResource: "metric-reference", withExtension: "safetensors", subdirectory: "Fixtures")!
        return try! SafeTensors.read(contentsOf: url.path)
    }()

    static func features(_ name: String) -> Features {
        let e = reference[name]!
        return Features(count: e.shape[0], dimension: e.shape[1], values: e.floats())
    }
    static func scalar(_ name: String) -> Double { reference[name]!.doubles()[0] }

    @Test func meanAndCovarianceMatchNumpy() throws {
        let s = try FrechetStatistics(features: Self.features("a"))
        let mean = Self.reference["mean_a"]!.doubles(), cov = Self.reference["cov_a"]!.doubles()
        #expect(zip(s.mean, mean).allSatisfy { abs($0 - $1) <= 1e-12 }, "mean differs from np.mean")
        let worst = zip(s.covariance, cov).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-12, "covariance differs from np.cov(rowvar=False) by up to \(worst)")
    }

    @Test func frechetDistanceMatchesScipySqrtm() throws {
        let a = try FrechetStatistics(features: Self.features("a"))
        let b = try FrechetStatistics(features: Self.features("b"))
        let fd = try frechetDistance(a, b)
        let ref = Self.scalar("fd_sqrtm")
        #expect(abs(fd - ref) <= 1e-9 * max(1, ref), "FD \(fd) vs scipy \(ref)")
        // Symmetric in its arguments, and 0 against itself.
        #expect(abs(try frechetDistance(b, a) - fd) <= 1e-9 * fd)
        #expect(abs(try frechetDistance(a, a)) <= 1e-9)
    }

    /// With fewer samples than dimensions the covariances are singular; the symmetric form
    /// still gives a finite, non-negative distance (scipy's sqrtm goes complex here).
    @Test func frechetDistanceOfSingularCovariancesIsFinite() throws {
        let a = Self.features("a").rows(0..<10), b = Self.features("b").rows(0..<12)
        let fd = try frechetDistance(try FrechetStatistics(features: a), try FrechetStatistics(features: b))
        #expect(fd.isFinite && fd > 0)
    }

    @Test func frechetStatisticsRoundTripThroughCodable() throws {
        let s = try FrechetStatistics(features: Self.features("a"))
        let back = try JSONDecoder().decode(FrechetStatistics.self, from: JSONEncoder().encode(s))
        #expect(back == s)
    }

    @Test func precisionRecallMatchADMEvaluatorLogic() throws {
        let pr = try precisionRecall(real: Self.features("a"), fake: Self.features("b"), k: 3)
        #expect(pr.precision == Self.scalar("precision"))
        #expect(pr.recall == Self.scalar("recall"))
        // A set against itself is inside its own manifold everywhere.
        let same = try precisionRecall(real: Self.features("a"), fake: Self.features("a"), k: 3)
        #expect(same.precision == 1 && same.recall == 1)
    }

    @Test(arguments: [120, 50])
    func inceptionStyleScoreMatchesADMEvaluator(splitSize: Int) throws {
        let s = try inceptionStyleScore(logits: Self.features("logits"), splitSize: splitSize)
        let ref = Self.scalar("is_score_\(splitSize)")
        #expect(abs(s.score - ref) <= 1e-9 * ref, "IS \(s.score) vs numpy \(ref)")
        #expect(s.splitScores.count == (120 + splitSize - 1) / splitSize)
    }

    @Test func refusesMismatchedOrTooFewFeatures() {
        let a = Self.features("a")
        #expect(throws: MetricsError.self) { try FrechetStatistics(features: a.rows(0..<1)) }
        #expect(throws: MetricsError.self) { try precisionRecall(real: a.rows(0..<3), fake: a, k: 3) }
        let narrow = Features(count: 4, dimension: 2, values: [Float](repeating: 0, count: 8))
        #expect(throws: MetricsError.self) { try frechetDistance(try FrechetStatistics(features: a), try FrechetStatistics(features: narrow)) }
    }
}

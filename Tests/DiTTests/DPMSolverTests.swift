import Foundation
import Tensors
import XCTest
@testable import DiT

/// DPM-Solver++(2M) against diffusers' `DPMSolverMultistepScheduler` on the same model outputs
/// (fixture made by `Tools/make_dpm_solver_fixtures.py`), and its behaviour inside `sample`.
final class DPMSolverTests: XCTestCase {
    struct Case {
        var steps: Int
        var timesteps: [Int]
        var noise: [Float]
        var shape: [Int]
        var sample: [Float]
    }

    func cases() throws -> [Case] {
        let path = try XCTUnwrap(Bundle.module.path(forResource: "dpm_solver", ofType: "json", inDirectory: "Fixtures"))
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        let list = try XCTUnwrap(root["cases"] as? [[String: Any]])
        return try list.map { c in
            Case(steps: try XCTUnwrap(c["steps"] as? Int), timesteps: try XCTUnwrap(c["timesteps"] as? [Int]),
                 noise: try XCTUnwrap(c["noise"] as? [Double]).map(Float.init), shape: try XCTUnwrap(c["shape"] as? [Int]),
                 sample: try XCTUnwrap(c["sample"] as? [Double]).map(Float.init))
        }
    }

    /// The fixture's analytic model: ε(x, t) = tanh(0.5x + 0.3 sin i)(0.5 + t/2000) + 0.1 cos(x t/500).
    static func analyticModel(perSample m: Int) -> DenoiserFn {
        return { x, t, _, out in
            for s in 0..<t.count {
                let tf = Float(t[s])
                for i in 0..<m {
                    let v = x[s * m + i]
                    out[s * 2 * m + i] = Foundation.tanh(0.5 * v + 0.3 * Foundation.sin(Float(i))) * (0.5 + tf / 2000)
                        + 0.1 * Foundation.cos(v * (tf / 500))
                    out[s * 2 * m + m + i] = 0
                }
            }
        }
    }

    func testMatchesDiffusersOnDiTsRespacedTimesteps() throws {
        let base = GaussianDiffusion.linearBetas(steps: 1000)
        for c in try cases() {
            // The fixture's timesteps are DiT's space_timesteps: `respaced("N")` must give the same.
            let process = try GaussianDiffusion(diffusionSteps: 1000, respacing: "\(c.steps)")
            XCTAssertEqual(process.timestepMap.reversed(), c.timesteps, "respaced \(c.steps) steps")
            XCTAssertEqual(GaussianDiffusion(baseBetas: base, useTimesteps: c.timesteps).timestepMap, process.timestepMap)
            let x = Tensor(shape: c.shape)
            c.noise.withUnsafeBufferPointer { x.data.update(from: $0.baseAddress!, count: c.noise.count) }
            var rng = RandomStream(seed: 1)
            let m = c.shape[1] * c.shape[2] * c.shape[3]
            try process.denoise(x, model: Self.analyticModel(perSample: m), labels: Array(repeating: 0, count: c.shape[0]),
                                sampler: .dpmSolverPP2M, guidance: 1, nullClass: 1, clipDenoised: false, rng: &rng)
            var worst: Float = 0
            for i in 0..<c.sample.count { worst = max(worst, abs(x.data[i] - c.sample[i])) }
            // diffusers computes ᾱ by a float32 cumprod, learngene in float64 (as DiT): a few 1e-6.
            XCTAssertLessThan(worst, 2e-4, "\(c.steps) steps: largest difference \(worst)")
            print("DPM-Solver++(2M) vs diffusers, \(c.steps) steps: largest difference \(worst)")
        }
    }

    /// With a model whose ε is exact for a point mass at x₀ (ε = (x − √ᾱ x₀)/√(1−ᾱ)), every
    /// data prediction is x₀ and the last step returns it: the model must be called at the
    /// original-scale timesteps, with ᾱ of those timesteps.
    func testPointMassIsReachedExactly() throws {
        let process = try GaussianDiffusion(diffusionSteps: 1000, respacing: "10")
        let base = try GaussianDiffusion(diffusionSteps: 1000)
        let target: Float = 0.37
        let model: DenoiserFn = { x, t, _, out in
            for s in 0..<t.count {
                let ab = Float(base.alphasCumprod[t[s]])
                out[s * 2] = (x[s] - ab.squareRoot() * target) / (1 - ab).squareRoot()
                out[s * 2 + 1] = 0
            }
        }
        let x = Tensor(shape: [3, 1, 1, 1])
        x.data[0] = 1.5; x.data[1] = -0.2; x.data[2] = 0.9
        var rng = RandomStream(seed: 1)
        try process.denoise(x, model: model, labels: [0, 0, 0], sampler: .dpmSolverPP2M, nullClass: 1, clipDenoised: true, rng: &rng)
        for i in 0..<3 { XCTAssertEqual(x.data[i], target, accuracy: 1e-4) }
    }

    /// Deterministic and seeded like DDIM: the same seed gives the same bits, chunking aside.
    func testSamplingIsDeterministicAndUsesNoStepNoise() throws {
        let d = try GaussianDiffusion(diffusionSteps: 1000)
        let model = Self.analyticModel(perSample: 4)
        var a = RandomStream(seed: 7), b = RandomStream(seed: 7)
        let x1 = try d.sample(model: model, shape: [2, 1, 2, 2], labels: [0, 1], steps: 8, sampler: .dpmSolverPP2M, guidance: 2,
                              nullClass: 2, rng: &a)
        let x2 = try d.sample(model: model, shape: [2, 1, 2, 2], labels: [0, 1], steps: 8, sampler: .dpmSolverPP2M, guidance: 2,
                              nullClass: 2, rng: &b)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: x1.data, count: 8)), Array(UnsafeBufferPointer(start: x2.data, count: 8)))
        // Only the initial noise was drawn: both streams moved by exactly one draw of 8 normals.
        var c = RandomStream(seed: 7)
        let z = Tensor(shape: [8])
        c.fillNormal(z.data, count: 8)
        XCTAssertEqual(a.nextUniform(), c.nextUniform())
        XCTAssertTrue((0..<8).allSatisfy { x1.data[$0] >= -1 && x1.data[$0] <= 1 }, "clipped x̂0 keeps samples in [−1, 1]")
    }
}

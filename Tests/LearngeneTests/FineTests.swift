import Foundation
import Testing
import DiT
import Formats
@testable import Learngene

/// FINE: the factored model reproduces dense weights it was built from; the ancestry init
/// recovers shared factors; files round-trip and wrong files are refused.
@Suite struct FineTests {
    /// A host running a FINE source gives the same output as the dense DiT with the
    /// materialized matrices.
    static func hostedVersusDense(_ source: any LearngeneParameterization, ancestry: DiTModel, labels: [Int] = [0, 1, 2, 3]) throws -> Double {
        let host = try DescendantHost.build(target: source.config, ancestry: ancestry, method: source.method)
        host.blockWeights = source
        let dense = LearngeneTrainer.materialize(host: host, source: source)
        return FK.relativeError(FK.output(host, labels: labels), FK.output(dense, labels: labels))
    }

    @Test func randomFactorsMatchTheirDenseWeights() throws {
        let anc = try FK.ancestry()
        let f = FineParameterization.random(config: FK.config, settings: FineSettings(rank: 8, initialization: .random), seed: 3)
        // adaLN σ start at zero (adaLN-Zero); give them values so the test covers them.
        for l in 0..<FK.config.depth { for k in 0..<8 { f.sigma(.adaLN, layer: l)[k] = 0.1 * Float(k - 3) } }
        let e = try Self.hostedVersusDense(f, ancestry: anc)
        print("FINE random r=8: hosted vs dense rel err \(e)")
        #expect(e <= 1e-5)
    }

    /// Per-layer W_l = U diag(σ_l) Vᵀ with shared orthonormal U, V of full rank: the ancestry
    /// init recovers them, and the factored model equals the dense ancestry.
    @Test func ancestryInitRecoversSharedFactors() throws {
        let c = FK.config
        let anc = try FK.ancestry()
        for (j, m) in BlockMatrix.allCases.enumerated() {
            let (o, i) = m.shape(c), r = min(o, i)
            let u = FK.orthonormalRows(r, o, seed: UInt64(100 * j + 1)), v = FK.orthonormalRows(r, i, seed: UInt64(100 * j + 50))
            for l in 0..<c.depth {
                let s = FK.random(r, seed: UInt64(1000 + 10 * j + l))
                let w = anc.parameter("blocks.\(l).\(m.weightName)")
                for a in 0..<o {
                    for b in 0..<i {
                        var acc: Float = 0
                        for k in 0..<r { acc += u[k * o + a] * s[k] * v[k * i + b] }
                        w[a * i + b] = acc
                    }
                }
            }
        }
        let f = try FineParameterization.fromAncestry(anc)
        #expect(f.ranks.values.allSatisfy { $0 == c.hiddenSize })
        var worst: Float = 0
        for l in 0..<c.depth {
            for m in BlockMatrix.allCases {
                let (o, i) = m.shape(c)
                var w = [Float](repeating: 0, count: o * i)
                f.denseWeight(m, layer: l, into: &w)
                let ref = anc.parameter("blocks.\(l).\(m.weightName)")
                for k in 0..<(o * i) { worst = max(worst, abs(w[k] - ref[k])) }
            }
        }
        let host = try DescendantHost.build(target: c, ancestry: anc, method: .fine)
        host.blockWeights = f
        let e = FK.relativeError(FK.output(host), FK.output(anc))
        print("FINE full rank from ancestry: max |W − W_anc| \(worst), output rel err \(e)")
        #expect(worst < 1e-5)
        #expect(e <= 1e-5)
    }

    @Test func truncatedAncestryInitIsTheLeastSquaresDiagonal() throws {
        let anc = try FK.ancestry()
        let f = try FineParameterization.fromAncestry(anc, settings: FineSettings(rank: 4))
        #expect(f.ranks[.qkv] == 4 && f.learngeneCount == 4 * (48 + 16 + 16 + 16 + 64 + 16 + 16 + 64 + 96 + 16))
        #expect(f.sizeSpecificCount == 3 * 5 * 4)
        // U rows orthonormal.
        let u = f.u(.fc1)
        for a in 0..<4 {
            for b in 0..<4 {
                var d: Float = 0
                for k in 0..<64 { d += u[a * 64 + k] * u[b * 64 + k] }
                #expect(abs(d - (a == b ? 1 : 0)) < 1e-5)
            }
        }
        // Perturbing σ away from the fitted value never lowers the Frobenius error.
        let (o, i) = BlockMatrix.fc1.shape(FK.config)
        let ref = anc.parameter("blocks.1.mlp.fc1.weight")
        func err() -> Double {
            var w = [Float](repeating: 0, count: o * i)
            f.denseWeight(.fc1, layer: 1, into: &w)
            return (0..<(o * i)).reduce(0.0) { $0 + Double((w[$1] - ref[$1]) * (w[$1] - ref[$1])) }
        }
        let base = err()
        for k in 0..<4 {
            for delta: Float in [-0.01, 0.01] {
                f.sigma(.fc1, layer: 1)[k] += delta
                #expect(err() > base)
                f.sigma(.fc1, layer: 1)[k] -= delta
            }
        }
    }

    @Test func fileRoundTripAndRefusals() throws {
        let f = FineParameterization.random(config: FK.config, settings: FineSettings(rank: 6, initialization: .random), seed: 4)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fine-\(UUID()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafeTensors.write(f.file(), to: path)
        let file = try SafeTensors.read(contentsOf: path)
        let g = try FineParameterization.load(from: file, config: FK.config)
        #expect(g.params.toArray() == f.params.toArray() && g.settings == f.settings && g.config == f.config)

        var other = FK.config
        other.depth = 5
        do { _ = try FineParameterization.load(from: file, config: other); Issue.record("depth mismatch accepted") } catch let e as LearngeneError {
            print("refused: \(e)")
            #expect(e.description.contains("depth 3 vs 5"))
        }
        var wrongMethod = file
        wrongMethod.metadata["learngene.method"] = "kind"
        do { _ = try FineParameterization.load(from: wrongMethod); Issue.record("KIND file accepted as FINE") } catch let e as LearngeneError {
            #expect(e.description.contains("KIND") && e.description.contains("load it as KIND"))
        }
        var truncated = file
        truncated.tensors["fc1.U"] = .f32([Float](repeating: 0, count: 6 * 32), shape: [6, 32])
        do { _ = try FineParameterization.load(from: truncated); Issue.record("misshapen tensor accepted") } catch let e as LearngeneError {
            #expect(e.description.contains("fc1.U") && e.description.contains("[6, 32]"))
        }
    }

    @Test func widthChangeIsRefused() throws {
        let anc = try FK.ancestry()
        var wide = FK.config
        wide.hiddenSize = 32
        do { _ = try DescendantHost.build(target: wide, ancestry: anc, method: .fine); Issue.record("width change accepted") } catch let e as LearngeneError {
            print("refused: \(e)")
            #expect(e.description.contains("hidden_size 16") && e.description.contains("32"))
        }
    }

    /// Descendants of depths 1, 3, 5 from a depth-3 learngene saved to a file and loaded:
    /// each runs, and its dense export gives the factored model's output.
    @Test(arguments: FineParameterization.SigmaInit.allCases)
    func descendants(_ sigmaInit: FineParameterization.SigmaInit) throws {
        let anc = try FK.ancestry()
        let lg = try FineParameterization.fromAncestry(anc, settings: FineSettings(rank: 8))
        let loaded = try FineParameterization.load(from: lg.file())
        for depth in [1, 3, 5] {
            let d = FineParameterization.descendant(of: loaded, depth: depth, sigmaInit: sigmaInit, seed: 2)
            #expect(d.config.depth == depth && d.learngeneCount == lg.learngeneCount)
            #expect(d.params.toArray()[d.learngeneRanges[0]] == lg.params.toArray()[lg.learngeneRanges[0]])
            let e = try Self.hostedVersusDense(d, ancestry: anc)
            #expect(e <= 1e-5, "depth \(depth): \(e)")
            let h = try DescendantHost.build(target: d.config, ancestry: anc, method: .fine)
            h.blockWeights = d
            let finite = FK.output(h).allSatisfy { $0.isFinite }
            #expect(finite)
        }
        // Same depth: identical/linear σ reproduce the learngene's (linear exactly, identical as the mean).
        if sigmaInit == .linear {
            let d = FineParameterization.descendant(of: lg, depth: 3, sigmaInit: .linear)
            #expect(d.params.toArray() == lg.params.toArray())
        }
    }

    @Test func layerMapping() {
        #expect((0..<5).map { LayerMapping.ancestryLayer($0, depth: 5, ancestryDepth: 3) } == [0, 1, 1, 2, 2])
        #expect((0..<3).map { LayerMapping.ancestryLayer($0, depth: 3, ancestryDepth: 5) } == [0, 2, 4])
        #expect(LayerMapping.ancestryLayer(0, depth: 1, ancestryDepth: 3) == 1)
        #expect(LayerMapping.ancestryLayer(0, depth: 1, ancestryDepth: 4) == 2)
    }
}

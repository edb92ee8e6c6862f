import Foundation
import Testing
import DiT
import Formats
@testable import Learngene

/// KIND: the class-gated linear's gradients with mixed labels (null class included), gates,
/// SVD init reproducing the dense ancestry, descendants, files.
@Suite struct KindTests {
    @Test(arguments: KindSettings.Gate.allCases)
    func gatedLinearGradients(_ gate: KindSettings.Gate) throws {
        let c = FK.config
        let k = try KindParameterization.random(config: c, settings: KindSettings(rank: 6, learngeneFraction: 0.5, gate: gate, initialization: .random), seed: 4)
        let m = BlockMatrix.proj, l = 1, rps = 2, labels = [0, 3, 2, 1, 0]  // 3 = the null class
        let (OC, IC) = m.shape(c), r = 6, M = labels.count * rps
        let x = FK.random(M * IC, seed: 11), w = FK.random(M * OC, seed: 12)
        var out = [Float](repeating: 0, count: M * OC), dx = [Float](repeating: 0, count: M * IC)
        k.forward(m, layer: l, out: &out, inp: x, rows: M, rowsPerSample: rps, labels: labels)
        k.zeroGrad()
        k.backward(m, layer: l, dInp: &dx, dOut: w, inp: x, rows: M, rowsPerSample: rps, labels: labels, overwriteInput: true)
        let arr = { (p: UnsafeMutablePointer<Float>, n: Int) in Array(UnsafeBufferPointer(start: p, count: n)) }
        let u = arr(k.u(m, layer: l), r * OC), v = arr(k.v(m, layer: l), r * IC), s = arr(k.sigma(m, layer: l), r)
        let gOff = { (p: UnsafeMutablePointer<Float>) in p - k.params.data }
        let du = arr(k.grads.data + gOff(k.u(m, layer: l)), r * OC), dv = arr(k.grads.data + gOff(k.v(m, layer: l)), r * IC)
        let ds = arr(k.grads.data + gOff(k.sigma(m, layer: l)), r)
        let masks = labels.map { k.mask(m, label: $0).map(Double.init) }
        #expect(masks[1] == [1, 1, 1, 0, 0, 0])  // null class: learngenes only
        func loss(_ x: [Double], _ u: [Double], _ v: [Double], _ s: [Double]) -> Double {
            let scales = masks.flatMap { mk in (0..<r).map { s[$0] * mk[$0] } }
            return FactoredLinearTests.referenceLoss(x: x, u: u, v: v, s: scales, w: w, rowsPerScale: rps, M: M, IC: IC, OC: OC, r: r)
        }
        let d = { (a: [Float]) in a.map(Double.init) }
        let fwd = abs((0..<(M * OC)).reduce(0.0) { $0 + Double(out[$1]) * Double(w[$1]) } - loss(d(x), d(u), d(v), d(s)))
        let errors = FK.factorGradientErrors(x: x, u: u, v: v, s: s, analytic: (dx, du, dv, ds), loss: loss)
        print("KIND gated linear (\(gate.rawValue)): forward Σw·y \(fwd), \(errors)")
        #expect(fwd < 1e-4)
        for (name, e) in errors { #expect(e < 1e-5, "\(name) \(e)") }
        // A tailor no label in the batch opens gets no gradient.
        let opened = (3..<6).filter { t in masks.contains { $0[t] == 1 } }
        for t in 3..<6 where !opened.contains(t) { #expect(ds[t] == 0 && du[(t * OC)..<((t + 1) * OC)].allSatisfy { $0 == 0 }) }
    }

    @Test func gates() throws {
        var c = FK.config
        c.numClasses = 4
        let part = try KindParameterization(config: c, settings: KindSettings(learngeneFraction: 0.25, gate: .partition))
        let (r, g) = part.components[.qkv]!  // 16, 4 → 12 tailors, 3 per class
        #expect(r == 16 && g == 4)
        var seen = [Int](repeating: 0, count: r)
        for cls in 0..<4 {
            let mk = part.mask(.qkv, label: cls)
            #expect(mk.prefix(g).allSatisfy { $0 == 1 } && mk.reduce(0, +) == Float(g + 3))
            for k in g..<r where mk[k] == 1 { seen[k] += 1 }
        }
        #expect(seen[g...].allSatisfy { $0 == 1 })  // disjoint and covering
        #expect(part.mask(.qkv, label: 4).reduce(0, +) == Float(g))
        let half = try KindParameterization(config: c, settings: KindSettings(learngeneFraction: 0.25, gate: .randomHalf, gateSeed: 3))
        let half2 = try KindParameterization(config: c, settings: KindSettings(learngeneFraction: 0.25, gate: .randomHalf, gateSeed: 3))
        for cls in 0..<4 {
            #expect(half.mask(.fc2, label: cls).reduce(0, +) == Float(g + 6))
            #expect(half.mask(.fc2, label: cls) == half2.mask(.fc2, label: cls))
        }
        #expect(half.mask(.fc2, label: 0) != half.mask(.fc2, label: 1))
        #expect(throws: LearngeneError.self) { try KindParameterization(config: c, settings: KindSettings(rank: 4, learngeneFraction: 0.5)) }
    }

    /// Full rank, every component a learngene: the SVD factors reproduce the dense ancestry.
    /// With tailors, a batch of one class equals the dense model of that class's matrices.
    @Test func svdInitReproducesTheDenseModel() throws {
        let anc = try FK.ancestry()
        let k = try KindParameterization.fromAncestry(anc, settings: KindSettings(learngeneFraction: 1))
        let host = try DescendantHost.build(target: FK.config, ancestry: anc, method: .kind)
        host.blockWeights = k
        let e = FK.relativeError(FK.output(host, labels: [0, 1, 2, 3]), FK.output(anc, labels: [0, 1, 2, 3]))
        print("KIND full-rank SVD vs dense ancestry: rel err \(e)")
        #expect(e <= 1e-5)

        let gated = try KindParameterization.fromAncestry(anc, settings: KindSettings(learngeneFraction: 0.5))
        host.blockWeights = gated
        for cls in 0...3 {
            let dense = DiTModel(config: FK.config)
            dense.params.copy(from: host.params)
            for l in 0..<3 { for m in BlockMatrix.allCases { gated.denseWeight(m, layer: l, label: cls, into: dense.parameter("blocks.\(l).\(m.weightName)")) } }
            let ec = FK.relativeError(FK.output(host, labels: [cls, cls]), FK.output(dense, labels: [cls, cls]))
            #expect(ec <= 1e-5, "class \(cls): \(ec)")
        }
        // Gating matters: class 0 sees a different model than class 1.
        #expect(FK.output(host, labels: [0, 0]) != FK.output(host, labels: [1, 1]))
    }

    /// Descendants of depths 1, 3, 5 and a new class count from a depth-3 learngene file.
    @Test func descendants() throws {
        let anc = try FK.ancestry()
        let lg = try KindParameterization.fromAncestry(anc, settings: KindSettings(rank: 8, gate: .randomHalf, gateSeed: 1))
        let loaded = try KindParameterization.load(from: lg.file(), config: FK.config)
        #expect(loaded.params.toArray() == lg.params.toArray())
        for depth in [1, 3, 5] {
            var c = FK.config
            c.depth = depth
            c.numClasses = 5
            let d = try KindParameterization.descendant(of: loaded, config: c, seed: 3)
            let host = try DescendantHost.build(target: c, ancestry: anc, method: .kind, seed: 3)
            host.blockWeights = d
            let dense = LearngeneTrainer.materialize(host: host, source: d)
            let labels = [0, 4, 5, 2]  // 5 = the new null class
            let e = FK.relativeError(FK.output(host, labels: labels), FK.output(dense, labels: labels))
            #expect(e <= 1e-5, "depth \(depth): \(e)")
            for l in 0..<depth {
                let src = LayerMapping.ancestryLayer(l, depth: depth, ancestryDepth: 3)
                let (_, g) = d.components[.fc1]!
                #expect(Array(UnsafeBufferPointer(start: d.u(.fc1, layer: l), count: g * 64)) == Array(UnsafeBufferPointer(start: lg.u(.fc1, layer: src), count: g * 64)))
                #expect(UnsafeBufferPointer(start: d.sigma(.fc1, layer: l) + g, count: 8 - g).allSatisfy { $0 == 0 })
            }
            // init trains only the tailors.
            let t = try LearngeneTrainer(host: host, source: d, phase: .initialize, settings: FK.settings, seed: 1)
            let before = d.params.toArray()
            FK.run(t, steps: 0..<2)
            let after = d.params.toArray()
            for r in d.learngeneRanges { #expect(after[r] == before[r]) }
            #expect(d.sizeSpecificRanges.contains { after[$0] != before[$0] })
        }
    }

    @Test func wrongFilesAreRefused() throws {
        let fine = FineParameterization.random(config: FK.config, seed: 1)
        do { _ = try KindParameterization.load(from: fine.file()); Issue.record("FINE file accepted as KIND") } catch let e as LearngeneError {
            print("refused: \(e)")
            #expect(e.description.contains("FINE learngene, not a KIND"))
        }
        let k = try KindParameterization.random(config: FK.config, seed: 2)
        var c = FK.config
        c.numClasses = 7
        do { _ = try KindParameterization.load(from: k.file(), config: c); Issue.record("class mismatch accepted") } catch let e as LearngeneError {
            #expect(e.description.contains("num_classes 3 vs 7"))
        }
        var c2 = FK.config
        c2.hiddenSize = 32
        #expect(throws: LearngeneError.self) { try KindParameterization.descendant(of: k, config: c2) }
    }
}

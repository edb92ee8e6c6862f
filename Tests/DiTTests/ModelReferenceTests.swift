import Foundation
import Testing
import Formats
import Tensors
@testable import DiT

/// The model against tensors produced by running DiT's own PyTorch code (fixtures a and b).
@Suite struct ModelReferenceTests {
    @Test(arguments: ["dit-ref-a", "dit-ref-b"])
    func forwardAndIntermediates(fixture: String) throws {
        let f = try loadFixture(fixture)
        let config = try fixtureConfig(f)
        let model = DiTModel(config: config)
        try model.load(f, prefix: "param/")
        // pos_embed is recomputed, not loaded: it must equal DiT's table.
        let pe = difference("param/pos_embed", UnsafeBufferPointer(model.posEmbed.buffer), f["param/pos_embed"]!.floats())
        print(pe)
        #expect(pe.maxAbs <= 1e-7)

        let x = f["input/x"]!.floats(), t = f["input/t"]!.ints(), y = f["input/y"]!.ints()
        var out = [Float](repeating: 0, count: f["output/forward"]!.count)
        out.withUnsafeMutableBufferPointer { o in
            x.withUnsafeBufferPointer { model.forward(x: $0.baseAddress!, t: t, y: y, out: o.baseAddress!) }
        }
        let a = model.acts!
        let checks: [(String, UnsafeBufferPointer<Float>)] = [
            ("inter/t_freq", UnsafeBufferPointer(a.tFreq.buffer)),
            ("inter/t_emb", UnsafeBufferPointer(a.tEmb.buffer)),
            ("inter/y_emb", UnsafeBufferPointer(a.yEmb.buffer)),
            ("inter/c", UnsafeBufferPointer(a.c.buffer)),
            ("inter/x_embed", UnsafeBufferPointer(a.resid[0].buffer)),
            ("inter/block0_out", UnsafeBufferPointer(a.resid[1].buffer)),
            ("inter/final_out", UnsafeBufferPointer(a.outTok.buffer)),
        ]
        for (name, ours) in checks {
            let d = difference(name, ours, f[name]!.floats())
            print(fixture, d)
            #expect(d.maxAbs <= 1e-5 + 1e-4 * d.refScale, "\(d)")
        }
        let d = difference("output/forward", out, f["output/forward"]!.floats())
        print(fixture, d)
        #expect(d.maxAbs <= 1e-5 + 1e-4 * d.refScale, "\(d)")
    }
}

/// Loss, every parameter gradient and one AdamW step against DiT's own PyTorch run.
@Suite struct TrainingReferenceTests {
    /// Runs the fixture's training-loss computation through our model; returns the model (with
    /// gradients accumulated) and the loss terms.
    static func lossAndGradients(_ f: SafeTensors.File) throws -> (DiTModel, DiffusionLossTerms, [Float]) {
        let config = try fixtureConfig(f)
        let model = DiTModel(config: config)
        try model.load(f, prefix: "param/")
        let diffusion = try GaussianDiffusion(diffusionSteps: 1000)
        let x = f["input/x"]!.floats(), noise = f["input/noise"]!.floats()
        let t = f["input/t"]!.ints(), y = f["input/y"]!.ints()
        let xT = diffusion.qSample(xStart: x, noise: noise, t: t)
        var out = [Float](repeating: 0, count: 2 * x.count)
        out.withUnsafeMutableBufferPointer { o in
            xT.withUnsafeBufferPointer { model.forward(x: $0.baseAddress!, t: t, y: y, out: o.baseAddress!) }
        }
        let (terms, dOut) = diffusion.trainingLosses(xStart: x, noise: noise, t: t, modelOutput: out)
        model.zeroGrad()
        dOut.withUnsafeBufferPointer { model.backward(dOut: $0.baseAddress!) }
        return (model, terms, xT)
    }

    @Test(arguments: ["dit-ref-a", "dit-ref-b"])
    func lossAndEveryGradient(fixture: String) throws {
        let f = try loadFixture(fixture)
        let (model, terms, xT) = try Self.lossAndGradients(f)
        let dxt = difference("inter/loss_x_t", xT, f["inter/loss_x_t"]!.floats())
        print(fixture, dxt)
        #expect(dxt.maxAbs <= 1e-6)
        for (name, ours) in [("output/loss_mse", terms.mse), ("output/loss_vb", terms.vb), ("output/loss", terms.loss),
                             ("output/loss_mean", [terms.lossMean])] {
            let d = difference(name, ours, f[name]!.floats())
            print(fixture, d)
            #expect(d.maxAbs <= 1e-5 + 1e-4 * d.refScale, "\(d)")
        }
        var worst = 0.0
        for e in model.layout.entries {
            let ref = f["grad/" + e.name]!.floats()
            let d = difference("grad/" + e.name, UnsafeBufferPointer(start: model.grads.data + e.offset, count: e.count), ref)
            print(fixture, d)
            // README bar: |Δ| ≤ 1e-4·max|g| + 1e-4·|g| per tensor.
            var ok = true
            for i in 0..<e.count {
                let g = Double(ref[i]), o = Double(model.grads.data[e.offset + i])
                if abs(o - g) > 1e-4 * d.refScale + 1e-4 * abs(g) { ok = false }
            }
            #expect(ok, "\(d)")
            worst = max(worst, d.maxAbs / max(d.refScale, 1e-12))
        }
        print("\(fixture): \(model.layout.entries.count) gradient tensors, worst max|Δ|/max|g| = \(String(format: "%.2e", worst))")
    }

    /// AdamW (lr 1e-3, wd 0, default betas) from zero state applied to the stored gradients
    /// reproduces `after_adamw/` tightly; applied to our own gradients, within the README's
    /// end-to-end tolerance (float32 noise in near-zero gradients dominates there).
    @Test(arguments: ["dit-ref-a", "dit-ref-b"])
    func oneAdamWStep(fixture: String) throws {
        let f = try loadFixture(fixture)
        let config = try fixtureConfig(f)
        let model = DiTModel(config: config)
        try model.load(f, prefix: "param/")
        let grads = Tensor(shape: [model.layout.count])
        for e in model.layout.entries {
            let g = f["grad/" + e.name]!.floats()
            g.withUnsafeBufferPointer { (grads.data + e.offset).update(from: $0.baseAddress!, count: e.count) }
        }
        let opt = AdamW(count: model.layout.count, settings: AdamWSettings(learningRate: 1e-3))
        opt.update(params: model.params, grads: grads)
        var worst = 0.0
        for e in model.layout.entries {
            let d = difference("after_adamw/" + e.name, UnsafeBufferPointer(start: model.params.data + e.offset, count: e.count),
                               f["after_adamw/" + e.name]!.floats())
            worst = max(worst, d.maxAbs)
        }
        print("\(fixture): AdamW on stored grads, max|Δ| over all tensors = \(String(format: "%.3e", worst))")
        #expect(worst <= 6e-8)  // ≤ 2 ulp of |p| ≈ 0.3

        let (m2, _, _) = try Self.lossAndGradients(f)
        let opt2 = AdamW(count: m2.layout.count, settings: AdamWSettings(learningRate: 1e-3))
        opt2.update(params: m2.params, grads: m2.grads)
        var worst2 = 0.0
        for e in m2.layout.entries {
            let d = difference("after_adamw/" + e.name, UnsafeBufferPointer(start: m2.params.data + e.offset, count: e.count),
                               f["after_adamw/" + e.name]!.floats())
            worst2 = max(worst2, d.maxAbs)
        }
        print("\(fixture): AdamW end to end (our grads), max|Δ| = \(String(format: "%.3e", worst2))")
        #expect(worst2 <= 1e-4)
    }
}

/// The same checks `learngene check-reference` runs, on both shared fixtures.
@Suite struct ReferenceCheckTests {
    @Test(arguments: ["dit-ref-a", "dit-ref-b"])
    func everyGroupPasses(fixture: String) throws {
        let items = try ReferenceCheck.run(try loadFixture(fixture))
        for line in ReferenceCheck.summary(items) { print(fixture, line) }
        #expect(items.count > 100)
        #expect(items.filter { !$0.passed }.map(\.name) == [])
        let groups = Set(items.map(\.group))
        #expect(groups.isSuperset(of: ["forward", "loss", "grad", "sample", "sample10", "schedule", "adamw(stored grads)", "adamw(end to end)"]))
    }
}

import Foundation
import Testing
import Formats
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

import Foundation
import Formats
import Tensors

/// Checks this implementation against a reference fixture made by running DiT's own PyTorch
/// code (../shared/fixtures/dit-reference: `make_dit_fixtures.py`, any config): forward and
/// intermediates, loss terms, every parameter gradient, one AdamW step, `p_mean_variance`
/// (full and respaced) and the schedules. Used by the tests and by `learngene check-reference`.
public enum ReferenceCheck {
    /// One compared tensor.
    public struct Item: Sendable {
        public var group: String
        public var name: String
        public var maxAbs: Double
        public var maxRel: Double
        public var refMax: Double
        public var passed: Bool
    }

    /// Why a fixture could not be checked at all.
    public struct FixtureError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Runs every computation the fixture records and compares with README tolerances:
    /// forward/intermediates/losses atol 1e-5 + rtol 1e-4 (t_freq gets 1e-4: ulp differences of
    /// exp are amplified by t = 999), sampling atol 1e-4 + rtol 1e-4, gradients
    /// |Δ| ≤ 1e-4·max|g| + 1e-4·|g|, AdamW on the stored gradients 6e-8 (2 ulp) and end to end
    /// 1e-4, schedules 1e-12 relative.
    public static func run(_ f: SafeTensors.File) throws -> [Item] {
        func tensor(_ name: String) throws -> SafeTensors.Entry {
            guard let e = f[name] else { throw FixtureError(description: "fixture has no tensor \(name): not a DiT reference fixture (see make_dit_fixtures.py)") }
            return e
        }
        let config = try config(of: f)
        if !config.problems().isEmpty { throw FixtureError(description: "fixture config is unusable: \(config.problems().joined(separator: "; "))") }
        var items: [Item] = []
        func compare(_ group: String, _ name: String, _ ours: UnsafeBufferPointer<Float>, _ ref: [Float],
                     atol: Double, rtol: Double, scaleTol: Double = 0) {
            var maxAbs = 0.0, maxRel = 0.0, refMax = 0.0, ok = ours.count == ref.count
            for r in ref { refMax = max(refMax, abs(Double(r))) }
            if ok {
                for i in 0..<ref.count {
                    let d = abs(Double(ours[i]) - Double(ref[i]))
                    maxAbs = max(maxAbs, d)
                    maxRel = max(maxRel, d / max(abs(Double(ref[i])), 1e-6))
                    if !(d <= atol + rtol * abs(Double(ref[i])) + scaleTol * refMax) { ok = false }
                }
            }
            items.append(Item(group: group, name: name, maxAbs: maxAbs, maxRel: maxRel, refMax: refMax, passed: ok))
        }
        func compare(_ group: String, _ name: String, _ ours: [Float], _ ref: [Float], atol: Double, rtol: Double, scaleTol: Double = 0) {
            ours.withUnsafeBufferPointer { compare(group, name, $0, ref, atol: atol, rtol: rtol, scaleTol: scaleTol) }
        }

        let model = DiTModel(config: config)
        try model.load(f, prefix: "param/")
        compare("params", "param/pos_embed", UnsafeBufferPointer(model.posEmbed.buffer), try tensor("param/pos_embed").floats(), atol: 1e-7, rtol: 0)

        // Forward and intermediates.
        let x = try tensor("input/x").floats(), t = try tensor("input/t").ints(), y = try tensor("input/y").ints()
        var out = [Float](repeating: 0, count: 2 * x.count)
        out.withUnsafeMutableBufferPointer { o in x.withUnsafeBufferPointer { model.forward(x: $0.baseAddress!, t: t, y: y, out: o.baseAddress!) } }
        let a = model.acts!
        for (name, buf) in [("inter/t_freq", a.tFreq), ("inter/t_emb", a.tEmb), ("inter/y_emb", a.yEmb), ("inter/c", a.c),
                            ("inter/x_embed", a.resid[0]), ("inter/block0_out", a.resid[1]), ("inter/final_out", a.outTok)] {
            compare("forward", name, UnsafeBufferPointer(buf.buffer), try tensor(name).floats(), atol: name == "inter/t_freq" ? 1e-4 : 1e-5, rtol: 1e-4)
        }
        compare("forward", "output/forward", out, try tensor("output/forward").floats(), atol: 1e-5, rtol: 1e-4)

        // Schedules (float64).
        let diffusion = try GaussianDiffusion(diffusionSteps: 1000)
        let diffusion10 = try diffusion.respaced("10")
        for (prefix, d) in [("schedule", diffusion), ("schedule10", diffusion10)] {
            for (name, ours) in [("betas", d.betas), ("alphas_cumprod", d.alphasCumprod), ("posterior_variance", d.posteriorVariance),
                                 ("posterior_log_variance_clipped", d.posteriorLogVarianceClipped)] {
                guard let ref = f["\(prefix)/\(name)"]?.doubles() else { continue }
                var maxAbs = 0.0, maxRel = 0.0, refMax = 0.0, ok = ref.count == ours.count
                if ok {
                    for i in 0..<ref.count {
                        let dd = abs(ours[i] - ref[i])
                        maxAbs = max(maxAbs, dd); maxRel = max(maxRel, dd / max(abs(ref[i]), 1e-300)); refMax = max(refMax, abs(ref[i]))
                        if dd > 1e-12 * abs(ref[i]) + 1e-15 { ok = false }
                    }
                }
                items.append(Item(group: "schedule", name: "\(prefix)/\(name)", maxAbs: maxAbs, maxRel: maxRel, refMax: refMax, passed: ok))
            }
        }
        if let map = f["sample10/timestep_map"]?.ints() {
            let ok = map == diffusion10.timestepMap
            items.append(Item(group: "schedule", name: "sample10/timestep_map", maxAbs: ok ? 0 : 1, maxRel: ok ? 0 : 1, refMax: 999, passed: ok))
        }

        // p_mean_variance, full (T = 1000) and respaced (10 steps, index 5 → timestep 555).
        let xs = try tensor("sample/x_t").floats()
        for (prefix, d) in [("sample", diffusion), ("sample10", diffusion10)] {
            guard f["\(prefix)/mean"] != nil else { continue }
            let ts = try tensor("\(prefix)/t").ints()
            var mo = [Float](repeating: 0, count: 2 * xs.count)
            mo.withUnsafeMutableBufferPointer { o in
                xs.withUnsafeBufferPointer { model.forward(x: $0.baseAddress!, t: d.modelTimesteps(ts), y: y, out: o.baseAddress!) }
            }
            let pmv = d.pMeanVariance(modelOutput: mo, xT: xs, t: ts)
            for (name, ours) in [("mean", pmv.mean), ("variance", pmv.variance), ("log_variance", pmv.logVariance), ("pred_xstart", pmv.predXstart)] {
                compare(prefix, "\(prefix)/\(name)", ours, try tensor("\(prefix)/\(name)").floats(), atol: 1e-4, rtol: 1e-4)
            }
        }

        // Training loss and every gradient.
        let noise = try tensor("input/noise").floats()
        let xT = diffusion.qSample(xStart: x, noise: noise, t: t)
        compare("loss", "inter/loss_x_t", xT, try tensor("inter/loss_x_t").floats(), atol: 1e-6, rtol: 1e-6)
        out.withUnsafeMutableBufferPointer { o in xT.withUnsafeBufferPointer { model.forward(x: $0.baseAddress!, t: t, y: y, out: o.baseAddress!) } }
        compare("loss", "inter/loss_model_output", out, try tensor("inter/loss_model_output").floats(), atol: 1e-5, rtol: 1e-4)
        let (terms, dOut) = diffusion.trainingLosses(xStart: x, noise: noise, t: t, modelOutput: out)
        for (name, ours) in [("output/loss_mse", terms.mse), ("output/loss_vb", terms.vb), ("output/loss", terms.loss), ("output/loss_mean", [terms.lossMean])] {
            compare("loss", name, ours, try tensor(name).floats(), atol: 1e-5, rtol: 1e-4)
        }
        model.zeroGrad()
        dOut.withUnsafeBufferPointer { model.backward(dOut: $0.baseAddress!) }
        for e in model.layout.entries {
            compare("grad", "grad/" + e.name, UnsafeBufferPointer(start: model.grads.data + e.offset, count: e.count),
                    try tensor("grad/" + e.name).floats(), atol: 0, rtol: 1e-4, scaleTol: 1e-4)
        }

        // One AdamW step (lr 1e-3, wd 0): on the stored gradients, and end to end on ours.
        let params0 = Tensor(shape: [model.layout.count])
        try model.load(f, prefix: "param/", into: params0)
        let stored = Tensor(shape: [model.layout.count])
        for e in model.layout.entries {
            let g = try tensor("grad/" + e.name).floats()
            g.withUnsafeBufferPointer { (stored.data + e.offset).update(from: $0.baseAddress!, count: e.count) }
        }
        for (label, grads, atol) in [("adamw(stored grads)", stored, 6e-8), ("adamw(end to end)", model.grads, 1e-4)] {
            let p = params0.clone()
            AdamW(count: p.count, settings: AdamWSettings(learningRate: 1e-3)).update(params: p, grads: grads)
            for e in model.layout.entries {
                compare(label, "after_adamw/" + e.name, UnsafeBufferPointer(start: p.data + e.offset, count: e.count),
                        try tensor("after_adamw/" + e.name).floats(), atol: atol, rtol: 0)
            }
        }
        return items
    }

    /// The DiT config recorded in a fixture's `config` metadata (make_dit_fixtures.py's keys).
    public static func config(of f: SafeTensors.File) throws -> DiTConfig {
        guard let json = f.metadata["config"], let obj = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw FixtureError(description: "fixture metadata has no JSON `config`: not a DiT reference fixture")
        }
        func int(_ k: String) throws -> Int {
            guard let v = obj[k] as? NSNumber else { throw FixtureError(description: "fixture config lacks \(k)") }
            return v.intValue
        }
        if let lsig = obj["learn_sigma"] as? Bool, !lsig { throw FixtureError(description: "fixture has learn_sigma=false; learngene implements DiT with learn_sigma=true") }
        let drop = (obj["class_dropout_prob"] as? NSNumber)?.floatValue ?? 0.1
        let ratio = (obj["mlp_ratio"] as? NSNumber)?.doubleValue ?? 4
        guard ratio == ratio.rounded() else { throw FixtureError(description: "fixture mlp_ratio \(ratio) is not an integer") }
        return DiTConfig(inputSize: try int("input_size"), patchSize: try int("patch_size"), inChannels: try int("in_channels"),
                         hiddenSize: try int("hidden_size"), depth: try int("depth"), numHeads: try int("num_heads"),
                         numClasses: try int("num_classes"), mlpRatio: Int(ratio), classDropoutProb: drop)
    }

    /// Per-group summary lines: group, tensor count, worst max|Δ| and max rel, pass/fail.
    public static func summary(_ items: [Item]) -> [String] {
        var groups: [String] = []
        for i in items where !groups.contains(i.group) { groups.append(i.group) }
        return groups.map { g in
            let gi = items.filter { $0.group == g }
            let worstAbs = gi.map(\.maxAbs).max() ?? 0, worstRel = gi.map(\.maxRel).max() ?? 0
            let failed = gi.filter { !$0.passed }
            let status = failed.isEmpty ? "ok  " : "FAIL"
            var line = "\(status) \(g.padding(toLength: 22, withPad: " ", startingAt: 0)) \(String(format: "%3d", gi.count)) tensors  max|Δ| \(String(format: "%.3e", worstAbs))  max rel \(String(format: "%.3e", worstRel))"
            if !failed.isEmpty { line += "  failing: " + failed.prefix(4).map(\.name).joined(separator: ", ") }
            return line
        }
    }
}

import DiT
import Tensors
import Testing
@testable import Learngene

private func loraRandom(_ n: Int, seed: UInt64) -> [Float] {
    var rng = RandomStream(seed: seed)
    var a = [Float](repeating: 0, count: n)
    a.withUnsafeMutableBufferPointer { rng.fillUniform($0.baseAddress!, count: n, low: -1, high: 1) }
    return a
}

private func loraFD(_ values: inout [Float], _ analytic: [Float], indices: [Int], h: Float = 1e-2, loss: ([Float]) -> Double) -> Double {
    var worst = 0.0
    for i in indices {
        let orig = values[i]
        values[i] = orig + h; let lp = loss(values)
        values[i] = orig - h; let lm = loss(values)
        values[i] = orig
        let fd = (lp - lm) / (2 * Double(h))
        worst = max(worst, abs(fd - Double(analytic[i])) / (2e-3 + 1e-2 * abs(fd)))
    }
    return worst
}

@Suite struct LoRATests {
    let config = DiTConfig(inputSize: 4, patchSize: 2, inChannels: 1, hiddenSize: 8, depth: 2, numHeads: 2, numClasses: 3)

    func adapter(rank: Int = 2) -> LoRAAdapter {
        let model = DiTModel(config: config)
        model.initializeWeights(seed: 3)
        // DiT zeroes adaLN; give every block matrix values so W₀ matters in the checks.
        var rng = RandomStream(seed: 4)
        rng.fillUniform(model.params.data, count: model.params.count, low: -0.5, high: 0.5)
        let lora = LoRAAdapter(ancestry: model, rank: rank, seed: 5)
        // B starts at zero (the adapted model is the ancestry); give it values for the checks.
        for t in lora.tensors where t.name.hasSuffix(".B") { rng.fillUniform(lora.params.data + t.offset, count: t.count, low: -0.5, high: 0.5) }
        return lora
    }

    @Test func startsAsTheAncestry() {
        let model = DiTModel(config: config)
        model.initializeWeights(seed: 3)
        let lora = LoRAAdapter(ancestry: model, rank: 2, seed: 5)
        let (oc, ic) = BlockMatrix.fc1.shape(config)
        var w = [Float](repeating: 0, count: oc * ic)
        lora.denseWeight(.fc1, layer: 1, into: &w)
        #expect(w == Array(UnsafeBufferPointer(start: model.parameter("blocks.1.mlp.fc1.weight"), count: oc * ic)))
    }

    @Test func forwardIsTheMaterializedWeight() {
        let lora = adapter()
        for m in BlockMatrix.allCases {
            let (OC, IC) = m.shape(config), M = 5
            let x = loraRandom(M * IC, seed: 6)
            var out = [Float](repeating: 0, count: M * OC), ref = out
            lora.forward(m, layer: 1, out: &out, inp: x, rows: M, rowsPerSample: 1, labels: [0, 0, 0, 0, 0])
            var w = [Float](repeating: 0, count: OC * IC)
            lora.denseWeight(m, layer: 1, into: &w)
            linearForward(out: &ref, inp: x, weight: w, bias: nil, M: M, IC: IC, OC: OC)
            #expect(zip(out, ref).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) }, "\(m)")
        }
    }

    @Test func gradientsMatchFiniteDifferences() {
        let lora = adapter()
        let m = BlockMatrix.fc1, layer = 1
        let (OC, IC) = m.shape(config), M = 5
        var x = loraRandom(M * IC, seed: 8)
        let dy = loraRandom(M * OC, seed: 9)
        let labels = [Int](repeating: 0, count: M)
        func loss(_ x: [Float]) -> Double {
            var out = [Float](repeating: 0, count: M * OC)
            lora.forward(m, layer: layer, out: &out, inp: x, rows: M, rowsPerSample: 1, labels: labels)
            return zip(out, dy).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        _ = loss(x)
        lora.zeroGrad()
        var dx = [Float](repeating: 0, count: M * IC)
        lora.backward(m, layer: layer, dInp: &dx, dOut: dy, inp: x, rows: M, rowsPerSample: 1, labels: labels, overwriteInput: true)
        let x0 = x
        #expect(loraFD(&x, dx, indices: Array(0..<x.count), loss: loss) <= 1, "dInp")
        var p = lora.params.toArray()
        let g = lora.grads.toArray()
        let lossP: ([Float]) -> Double = { v in
            v.withUnsafeBufferPointer { lora.params.data.update(from: $0.baseAddress!, count: v.count) }
            return loss(x0)
        }
        let a = lora.tensors.first { $0.name == "lora.1.fc1.A" }!, b = lora.tensors.first { $0.name == "lora.1.fc1.B" }!
        #expect(loraFD(&p, g, indices: Array(a.offset..<(a.offset + a.count)), loss: lossP) <= 1, "dA")
        #expect(loraFD(&p, g, indices: Array(b.offset..<(b.offset + b.count)), loss: lossP) <= 1, "dB")
        let other = lora.tensors.first { $0.name == "lora.0.fc1.A" }!
        #expect(g[other.offset..<(other.offset + other.count)].allSatisfy { $0 == 0 })
    }

    @Test func rankMatchesATrainableCount() {
        let matrices: [BlockMatrix] = [.qkv, .proj, .fc1, .fc2]
        let per = LoRAAdapter.parameterCount(config: config, rank: 1, matrices: matrices)
        #expect(per == 2 * ((8 + 24) + (8 + 8) + (8 + 32) + (32 + 8)))
        #expect(LoRAAdapter.rank(matching: 3 * per + 1, config: config, matrices: matrices) == 3)
        #expect(LoRAAdapter.rank(matching: 1, config: config, matrices: matrices) == 1)
    }
}

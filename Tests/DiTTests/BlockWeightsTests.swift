import Testing
import Tensors
@testable import DiT

/// The `BlockWeights` hook: a source that serves the dense weights from its own buffer gives
/// the same outputs and the same gradients as the dense model itself.
@Suite struct BlockWeightsTests {
    /// Serves copies of a model's block weights; gradients go into its own buffer.
    final class CopiedWeights: BlockWeights {
        let config: DiTConfig
        var weights: [[Float]] = [], grads: [[Float]] = []
        init(_ model: DiTModel) {
            config = model.config
            for l in 0..<config.depth {
                for m in BlockMatrix.allCases {
                    let (o, i) = m.shape(config)
                    weights.append(Array(UnsafeBufferPointer(start: model.parameter("blocks.\(l).\(m.weightName)"), count: o * i)))
                    grads.append([Float](repeating: 0, count: o * i))
                }
            }
        }
        func index(_ m: BlockMatrix, _ l: Int) -> Int { l * BlockMatrix.allCases.count + m.rawValue }
        func forward(_ matrix: BlockMatrix, layer: Int, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                     rows M: Int, rowsPerSample: Int, labels: [Int]) {
            let (OC, IC) = matrix.shape(config)
            #expect(M % rowsPerSample == 0 && M / rowsPerSample == labels.count)
            weights[index(matrix, layer)].withUnsafeBufferPointer {
                linearForward(out: out, inp: inp, weight: $0.baseAddress!, bias: nil, M: M, IC: IC, OC: OC)
            }
        }
        func backward(_ matrix: BlockMatrix, layer: Int, dInp: UnsafeMutablePointer<Float>?, dOut: UnsafePointer<Float>,
                      inp: UnsafePointer<Float>, rows M: Int, rowsPerSample: Int, labels: [Int], overwriteInput: Bool) {
            let (OC, IC) = matrix.shape(config)
            let k = index(matrix, layer)
            weights[k].withUnsafeBufferPointer { w in
                grads[k].withUnsafeMutableBufferPointer { g in
                    linearBackward(dInp: dInp, dWeight: g.baseAddress!, dBias: nil, dOut: dOut, inp: inp, weight: w.baseAddress!,
                                   M: M, IC: IC, OC: OC, overwriteInput: overwriteInput)
                }
            }
        }
    }

    @Test func copiedWeightsReproduceTheDenseModel() throws {
        let c = DiTConfig(inputSize: 8, patchSize: 2, inChannels: 1, hiddenSize: 16, depth: 2, numHeads: 2, numClasses: 3)
        let t = try DiTTrainer(config: c, settings: TrainingSettings(emaDecay: 0.5), seed: 11)
        for k in 0..<2 { _ = TrainerTests.run(t, steps: k..<(k + 1)) }  // non-zero adaLN and final layer
        let dense = t.inferenceModel(ema: false)
        dense.inferenceOnly = false
        let hooked = t.inferenceModel(ema: false)
        hooked.inferenceOnly = false
        let source = CopiedWeights(hooked)
        hooked.blockWeights = source
        // Poison the unused dense slots: the hooked model must never read them.
        for l in 0..<c.depth {
            for m in BlockMatrix.allCases {
                let (o, i) = m.shape(c)
                hooked.parameter("blocks.\(l).\(m.weightName)").update(repeating: .nan, count: o * i)
            }
        }
        let (x, y) = TrainerTests.batch(1)
        var od = [Float](repeating: 0, count: 2 * x.count), oh = od
        let dOut = randomArray(od.count, seed: 5)
        x.withUnsafeBufferPointer { xp in
            dense.forward(x: xp.baseAddress!, t: [3, 500, 999, 0], y: y, out: &od)
            hooked.forward(x: xp.baseAddress!, t: [3, 500, 999, 0], y: y, out: &oh)
        }
        #expect(od == oh)
        dense.zeroGrad(); hooked.zeroGrad()
        dOut.withUnsafeBufferPointer { dense.backward(dOut: $0.baseAddress!); hooked.backward(dOut: $0.baseAddress!) }
        for e in dense.layout.entries {
            let a = Array(UnsafeBufferPointer(start: dense.grads.data + e.offset, count: e.count))
            if let m = BlockMatrix.allCases.first(where: { e.name.hasSuffix($0.weightName) && e.name.hasPrefix("blocks.") }) {
                let l = Int(e.name.split(separator: ".")[1])!
                #expect(a == source.grads[source.index(m, l)], "\(e.name)")
            } else {
                let b = Array(UnsafeBufferPointer(start: hooked.grads.data + e.offset, count: e.count))
                #expect(a == b, "\(e.name)")
            }
        }
    }
}

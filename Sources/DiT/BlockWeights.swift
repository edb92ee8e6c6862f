import Tensors

/// The five weight matrices of a DiT block, named as in DiT's `state_dict`.
public enum BlockMatrix: Int, CaseIterable, Sendable, Codable {
    case qkv, proj, fc1, fc2, adaLN

    /// The `state_dict` key suffix of the weight inside `blocks.<l>.`.
    public var weightName: String {
        switch self {
        case .qkv: "attn.qkv.weight"
        case .proj: "attn.proj.weight"
        case .fc1: "mlp.fc1.weight"
        case .fc2: "mlp.fc2.weight"
        case .adaLN: "adaLN_modulation.1.weight"
        }
    }

    /// The bias's key suffix.
    public var biasName: String { String(weightName.dropLast("weight".count)) + "bias" }

    /// A short name for settings, files and logs: qkv, proj, fc1, fc2, adaln.
    public var shortName: String { self == .adaLN ? "adaln" : "\(self)" }

    /// (out, in) in PyTorch's layout for a model of this config.
    public func shape(_ c: DiTConfig) -> (out: Int, in: Int) {
        let D = c.hiddenSize
        switch self {
        case .qkv: return (3 * D, D)
        case .proj: return (D, D)
        case .fc1: return (c.mlpHidden, D)
        case .fc2: return (D, c.mlpHidden)
        case .adaLN: return (6 * D, D)
        }
    }

    /// Rows of the input that belong to one sample: every token for the token-wise matrices,
    /// one row (the conditioning vector) for adaLN.
    public func rowsPerSample(_ c: DiTConfig) -> Int { self == .adaLN ? 1 : c.tokens }
}

/// Where a DiT's block weight matrices come from when they are not its dense parameters: a
/// learngene parameterization (FINE's shared factors, KIND's gated components, WAVE's
/// templates). The host `DiTModel` keeps every bias and everything outside the blocks; the
/// source computes the bias-free products and owns the gradients of its own parameters.
public protocol BlockWeights: AnyObject {
    /// out (M, OC) = inp (M, IC) · W(matrix, layer)ᵀ, written (not accumulated).
    /// `labels[row / rowsPerSample]` is the class of each row (for a class gate).
    func forward(_ matrix: BlockMatrix, layer: Int, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                 rows M: Int, rowsPerSample: Int, labels: [Int])

    /// dInp (M, IC) = or += dOut · W (as `overwriteInput` says; nil when not needed), and
    /// accumulates d(loss)/d(own parameters) from dOut and inp.
    func backward(_ matrix: BlockMatrix, layer: Int, dInp: UnsafeMutablePointer<Float>?, dOut: UnsafePointer<Float>,
                  inp: UnsafePointer<Float>, rows M: Int, rowsPerSample: Int, labels: [Int], overwriteInput: Bool)
}

extension DiTModel {
    /// out = inp · Wᵀ + b for one block matrix: from the dense parameters, or from
    /// `blockWeights` when set (the bias still comes from the dense parameters); then
    /// `epilogue` on the output rows.
    func blockLinearForward(_ m: BlockMatrix, layer l: Int, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                            weight: Int, bias: Int, M: Int, labels: [Int], epilogue: RowEpilogue = .none) {
        let (OC, IC) = m.shape(config)
        let P = params.data
        guard let source = blockWeights else {
            linearForward(out: out, inp: inp, weight: P + weight, bias: P + bias, M: M, IC: IC, OC: OC, epilogue: epilogue)
            return
        }
        source.forward(m, layer: l, out: out, inp: inp, rows: M, rowsPerSample: m.rowsPerSample(config), labels: labels)
        let b = P + bias
        Parallel.forRanges(M, costPerItem: OC) { r in
            for row in r {
                let o = out + row * OC
                for i in 0..<OC { o[i] += b[i] }
            }
            epilogue.apply(out, rows: r, width: OC)
        }
    }

    /// The backward of `blockLinearForward`: dense gradients into `grads`, or the source's own.
    func blockLinearBackward(_ m: BlockMatrix, layer l: Int, dInp: UnsafeMutablePointer<Float>?, dOut: UnsafePointer<Float>,
                             inp: UnsafePointer<Float>, weight: Int, bias: Int, M: Int, labels: [Int], overwriteInput: Bool,
                             inputEpilogue: RowEpilogue = .none) {
        let (OC, IC) = m.shape(config)
        let P = params.data, G = grads.data
        guard let source = blockWeights else {
            linearBackward(dInp: dInp, dWeight: G + weight, dBias: G + bias, dOut: dOut, inp: inp, weight: P + weight,
                           M: M, IC: IC, OC: OC, overwriteInput: overwriteInput, inputEpilogue: inputEpilogue)
            return
        }
        source.backward(m, layer: l, dInp: dInp, dOut: dOut, inp: inp, rows: M, rowsPerSample: m.rowsPerSample(config),
                        labels: labels, overwriteInput: overwriteInput)
        if let dInp, case .geluBackward = inputEpilogue {
            Parallel.forRanges(M, costPerItem: 25 * IC) { r in inputEpilogue.apply(dInp, rows: r, width: IC) }
        }
        columnSumAccumulate(G + bias, dOut, rows: M, cols: OC)
    }
}

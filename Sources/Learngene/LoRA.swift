import DiT
import Formats
import Tensors

/// LoRA (Hu et al. 2021), the parameter-efficient baseline against KIND: every adapted block
/// matrix is W = W₀ + (α/r)·B·A with W₀ the frozen dense weight of the ancestry, A (r, IC) and
/// B (OC, r) trained. B starts at zero, so the adapted model starts as the ancestry; A starts
/// from N(0, 1/IC) (the paper's Gaussian; peft uses Kaiming-uniform, the same scale up to a
/// constant). Matrices not listed in `matrices` stay W₀ (dense, frozen).
///
/// Choice: α = r by default (scale 1), so the learning rate does not have to change with the
/// rank when the rank is set to match another method's trainable-parameter count.
///
/// Serves the host `DiTModel` through `BlockWeights` (biases and everything outside the
/// blocks stay the host's); its own parameters (all A and B) are one flat buffer.
public final class LoRAAdapter: BlockWeights {
    public let config: DiTConfig
    public let rank: Int
    public let matrices: [BlockMatrix]
    /// α/r.
    public let scale: Float
    /// The frozen dense weights W₀, copied from the ancestry: (matrix, layer) → (OC, IC).
    let base: [Int: Tensor]
    /// A and B of every adapted (matrix, layer), laid out by `tensors`.
    public let params: Tensor
    public let grads: Tensor
    public let tensors: [FactorTensor]
    private let offsets: [Int: (a: Int, b: Int)]
    private let scratch = FactoredScratch()

    /// Trainable floats: Σ over adapted matrices and layers of r·(IC + OC).
    public static func parameterCount(config: DiTConfig, rank: Int, matrices: [BlockMatrix]) -> Int {
        config.depth * matrices.reduce(0) { n, m in let (oc, ic) = m.shape(config); return n + rank * (ic + oc) }
    }

    /// The rank whose trainable count is closest to `target` (at least 1).
    public static func rank(matching target: Int, config: DiTConfig, matrices: [BlockMatrix]) -> Int {
        let perRank = parameterCount(config: config, rank: 1, matrices: matrices)
        return max(1, Int((Double(target) / Double(perRank)).rounded()))
    }

    public init(ancestry: DiTModel, rank: Int, matrices: [BlockMatrix] = [.qkv, .proj, .fc1, .fc2],
                alpha: Double? = nil, seed: UInt64) {
        precondition(rank >= 1, "LoRA rank must be at least 1")
        config = ancestry.config
        self.rank = rank
        self.matrices = matrices
        scale = Float((alpha ?? Double(rank)) / Double(rank))
        var base: [Int: Tensor] = [:]
        for l in 0..<config.depth {
            for m in BlockMatrix.allCases {
                let (oc, ic) = m.shape(config)
                let t = Tensor(shape: [oc, ic])
                t.data.update(from: ancestry.parameter("blocks.\(l).\(m.weightName)"), count: oc * ic)
                base[Self.key(m, l)] = t
            }
        }
        self.base = base
        var tensors: [FactorTensor] = [], offsets: [Int: (a: Int, b: Int)] = [:], n = 0
        for l in 0..<config.depth {
            for m in matrices {
                let (oc, ic) = m.shape(config)
                tensors.append(FactorTensor(name: "lora.\(l).\(m.shortName).A", offset: n, shape: [rank, ic]))
                tensors.append(FactorTensor(name: "lora.\(l).\(m.shortName).B", offset: n + rank * ic, shape: [oc, rank]))
                offsets[Self.key(m, l)] = (n, n + rank * ic)
                n += rank * (ic + oc)
            }
        }
        self.tensors = tensors
        self.offsets = offsets
        params = Tensor(shape: [n])
        grads = Tensor(shape: [n])
        var rng = RandomStream(seed: seed)
        for l in 0..<config.depth {
            for m in matrices {
                let (_, ic) = m.shape(config)
                let o = offsets[Self.key(m, l)]!
                rng.fillNormal(params.data + o.a, count: rank * ic, std: Float(1 / Double(ic).squareRoot()))
                // B stays zero: W = W₀ at the start.
            }
        }
    }

    static func key(_ m: BlockMatrix, _ l: Int) -> Int { l * BlockMatrix.allCases.count + m.rawValue }

    public func zeroGrad() { grads.zero() }

    /// out = inp·W₀ᵀ + (α/r)·(inp·Aᵀ)·Bᵀ.
    public func forward(_ matrix: BlockMatrix, layer: Int, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                        rows M: Int, rowsPerSample: Int, labels: [Int]) {
        let (OC, IC) = matrix.shape(config)
        let k = Self.key(matrix, layer)
        linearForward(out: out, inp: inp, weight: base[k]!.data, bias: nil, M: M, IC: IC, OC: OC)
        guard let o = offsets[k] else { return }
        let r = rank, A = params.data + o.a, B = params.data + o.b
        let xa = scratch.xv(k, rows: M, rank: r)
        linearForward(out: xa, inp: inp, weight: A, bias: nil, M: M, IC: IC, OC: r)
        let s = scale
        splitRows(M, flops: 2 * M * r * OC) { rows in
            Blas.sgemm(transA: false, transB: true, m: rows.count, n: OC, k: r, alpha: s, a: xa + rows.lowerBound * r, lda: r,
                       b: B, ldb: r, beta: 1, c: out + rows.lowerBound * OC, ldc: OC)
        }
    }

    /// dInp = or += dOut·W₀ + (α/r)·(dOut·B)·A;  dB += (α/r)·dOutᵀ·(inp·Aᵀ);  dA += (α/r)·(dOut·B)ᵀ·inp.
    public func backward(_ matrix: BlockMatrix, layer: Int, dInp: UnsafeMutablePointer<Float>?, dOut: UnsafePointer<Float>,
                         inp: UnsafePointer<Float>, rows M: Int, rowsPerSample: Int, labels: [Int], overwriteInput: Bool) {
        let (OC, IC) = matrix.shape(config)
        let k = Self.key(matrix, layer)
        if let dInp {
            splitRows(M, flops: 2 * M * IC * OC) { rows in
                Blas.nn(m: rows.count, n: IC, k: OC, a: dOut + rows.lowerBound * OC, b: base[k]!.data, c: dInp + rows.lowerBound * IC,
                        beta: overwriteInput ? 0 : 1)
            }
        }
        guard let o = offsets[k] else { return }
        let r = rank, A = params.data + o.a, B = params.data + o.b
        let dA = grads.data + o.a, dB = grads.data + o.b
        let xa = scratch.xv(k, rows: M, rank: r)
        let dxa = scratch.scratch(0, rows: M, rank: r)
        let s = scale
        // dxa = s·dOut·B (M, r).
        splitRows(M, flops: 2 * M * r * OC) { rows in
            Blas.sgemm(transA: false, transB: false, m: rows.count, n: r, k: OC, alpha: s, a: dOut + rows.lowerBound * OC, lda: OC,
                       b: B, ldb: r, beta: 0, c: dxa + rows.lowerBound * r, ldc: r)
        }
        // dB (OC, r) += s·dOutᵀ·xa, split over B's rows.
        splitRows(OC, flops: 2 * M * r * OC) { rows in
            Blas.sgemm(transA: true, transB: false, m: rows.count, n: r, k: M, alpha: s, a: dOut + rows.lowerBound, lda: OC,
                       b: xa, ldb: r, beta: 1, c: dB + rows.lowerBound * r, ldc: r)
        }
        // dA (r, IC) += dxaᵀ·inp, and dInp += dxa·A: the linear backward of xa = inp·Aᵀ.
        linearBackward(dInp: dInp, dWeight: dA, dBias: nil, dOut: dxa, inp: inp, weight: A, M: M, IC: IC, OC: r,
                       overwriteInput: false)
    }

    /// W₀ + (α/r)·B·A, materialized (export as a plain DiT, and tests).
    public func denseWeight(_ matrix: BlockMatrix, layer: Int, into out: UnsafeMutablePointer<Float>) {
        let (OC, IC) = matrix.shape(config)
        let k = Self.key(matrix, layer)
        out.update(from: base[k]!.data, count: OC * IC)
        guard let o = offsets[k] else { return }
        Blas.sgemm(transA: false, transB: false, m: OC, n: IC, k: rank, alpha: scale, a: params.data + o.b, lda: rank,
                   b: params.data + o.a, ldb: IC, beta: 1, c: out, ldc: IC)
    }

    /// The adapters as safetensors (A and B of every adapted matrix; W₀ is the ancestry's).
    public func file(extra: [String: String] = [:]) -> SafeTensors.File {
        var file = SafeTensors.File(metadata: ["learngene.lora.rank": String(rank), "learngene.lora.scale": String(scale),
                                               "learngene.lora.matrices": matrices.map(\.shortName).joined(separator: ",")]
            .merging(extra) { _, new in new })
        for t in tensors {
            file.tensors[t.name] = .f32(UnsafeBufferPointer(start: params.data + t.offset, count: t.count), shape: t.shape)
        }
        return file
    }
}

import Testing
@testable import Tensors

/// The textbook triple loop in Double, on the same row-major, leading-dimension layout as
/// `Blas.sgemm`. Also returns Σ|alpha·a·b| + |beta·c| per element, the scale a float32 result
/// can be off by a few ulps of.
func naiveGemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
               a: [Float], lda: Int, b: [Float], ldb: Int, beta: Float, c: [Float], ldc: Int)
    -> (c: [Double], scale: [Double]) {
    var out = c.map(Double.init), scale = [Double](repeating: 0, count: c.count)
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0, mag = 0.0
            for p in 0..<k {
                let av = Double(transA ? a[p * lda + i] : a[i * lda + p])
                let bv = Double(transB ? b[j * ldb + p] : b[p * ldb + j])
                s += av * bv
                mag += abs(av * bv)
            }
            let old = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])  // beta = 0: C is not read
            out[i * ldc + j] = Double(alpha) * s + old
            scale[i * ldc + j] = abs(Double(alpha)) * mag + abs(old)
        }
    }
    return (out, scale)
}

struct GemmCase: CustomTestStringConvertible, Sendable {
    var transA: Bool, transB: Bool, m: Int, n: Int, k: Int
    var alpha: Float = 1, beta: Float = 0
    var pad = 0  // extra elements per row: leading dimensions larger than the dense ones
    var testDescription: String {
        "\(transA ? "T" : "N")\(transB ? "T" : "N") \(m)x\(n)x\(k) alpha=\(alpha) beta=\(beta) pad=\(pad)"
    }
}

@Suite struct BlasTests {
    static let cases: [GemmCase] = {
        var cs: [GemmCase] = []
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            cs.append(GemmCase(transA: ta, transB: tb, m: 7, n: 5, k: 3))
            cs.append(GemmCase(transA: ta, transB: tb, m: 1, n: 9, k: 17, alpha: -0.5, beta: 2, pad: 3))
            cs.append(GemmCase(transA: ta, transB: tb, m: 13, n: 11, k: 1, alpha: 2, beta: 1, pad: 1))
            // Big enough (m·n·k > 2.6e5) for OpenBLAS to use its threads.
            cs.append(GemmCase(transA: ta, transB: tb, m: 70, n: 50, k: 90, alpha: 0.75, beta: -1.5, pad: 5))
        }
        return cs
    }()

    @Test(arguments: cases)
    func sgemmMatchesTripleLoop(_ t: GemmCase) {
        // Stored shapes: A is m×k (k×m when transposed), B is k×n (n×k when transposed).
        let (rowsA, colsA) = t.transA ? (t.k, t.m) : (t.m, t.k)
        let (rowsB, colsB) = t.transB ? (t.n, t.k) : (t.k, t.n)
        let lda = colsA + t.pad, ldb = colsB + t.pad, ldc = t.n + t.pad
        // Padding holds NaN: any read of it would poison the result.
        func padded(_ rows: Int, _ cols: Int, _ ld: Int, seed: UInt64) -> [Float] {
            let v = randomArray(rows * ld, seed: seed)
            return (0..<rows * ld).map { $0 % ld < cols ? v[$0] : .nan }
        }
        let a = padded(rowsA, colsA, lda, seed: 1), b = padded(rowsB, colsB, ldb, seed: 2)
        var c = padded(t.m, t.n, ldc, seed: 3)
        let ref = naiveGemm(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, alpha: t.alpha,
                            a: a, lda: lda, b: b, ldb: ldb, beta: t.beta, c: c, ldc: ldc)
        Blas.sgemm(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, alpha: t.alpha,
                   a: a, lda: t.pad == 0 ? nil : lda, b: b, ldb: t.pad == 0 ? nil : ldb,
                   beta: t.beta, c: &c, ldc: t.pad == 0 ? nil : ldc)
        for i in 0..<t.m {
            for j in 0..<ldc {
                let x = c[i * ldc + j]
                if j >= t.n { #expect(x.isNaN, "padding of C was written at (\(i), \(j))"); continue }
                let err = abs(Double(x) - ref.c[i * ldc + j])
                #expect(err <= 1e-6 * ref.scale[i * ldc + j] + 1e-30, "(\(i), \(j)): \(x) vs \(ref.c[i * ldc + j])")
            }
        }
    }

    /// The named wrappers are the general product with the obvious flags.
    @Test func wrappersMatchSgemm() {
        let m = 6, n = 4, k = 5
        let a = randomArray(m * k, seed: 4), b = randomArray(k * n, seed: 5)
        let bt = randomArray(n * k, seed: 6), at = randomArray(k * m, seed: 7)
        let c0 = randomArray(m * n, seed: 8)
        func general(_ ta: Bool, _ tb: Bool, _ a: [Float], _ b: [Float]) -> [Float] {
            var c = c0
            Blas.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a, b: b, beta: 0.25, c: &c)
            return c
        }
        var c = c0
        Blas.nn(m: m, n: n, k: k, a: a, b: b, c: &c, alpha: 0.5, beta: 0.25)
        #expect(bits(c) == bits(general(false, false, a, b)))
        c = c0
        Blas.nt(m: m, n: n, k: k, a: a, b: bt, c: &c, alpha: 0.5, beta: 0.25)
        #expect(bits(c) == bits(general(false, true, a, bt)))
        c = c0
        Blas.tn(m: m, n: n, k: k, a: at, b: b, c: &c, alpha: 0.5, beta: 0.25)
        #expect(bits(c) == bits(general(true, false, at, b)))
    }

    /// beta = 0 overwrites C without reading it, so NaN in a fresh buffer does not leak in.
    @Test func betaZeroIgnoresGarbageInC() {
        let a = randomArray(3 * 4, seed: 9), b = randomArray(4 * 2, seed: 10)
        var c = [Float](repeating: .nan, count: 3 * 2)
        Blas.nn(m: 3, n: 2, k: 4, a: a, b: b, c: &c)
        #expect(c.allSatisfy { $0.isFinite })
    }

    /// k = 0: the product is empty, C = beta · C.
    @Test func emptyInnerDimensionScalesC() {
        let a: [Float] = [0], b: [Float] = [0]
        var c: [Float] = [1, 2, 3, 4]
        Blas.nn(m: 2, n: 2, k: 0, a: a, b: b, c: &c, beta: 0.5)
        #expect(c == [0.5, 1, 1.5, 2])
        c = [1, 2, 3, 4]
        Blas.nn(m: 2, n: 2, k: 0, a: a, b: b, c: &c, beta: 0)
        #expect(c == [0, 0, 0, 0])
    }

    /// Attention-shaped batches: q·kᵀ per (image, head), read in place from a QKV-like buffer
    /// through leading dimensions and strides, against the triple loop, and with the same bits
    /// whether the batch runs sequentially (1 worker) or spread over workers.
    @Test(arguments: [(false, true), (false, false), (true, false)])
    func stridedBatchedMatchesLoopAndWorkerCounts(_ flags: (Bool, Bool)) {
        let (ta, tb) = flags
        let batch = 6, m = 9, n = 7, k = 5, pad = 2
        let (colsA, rowsA) = ta ? (m, k) : (k, m)
        let (colsB, rowsB) = tb ? (k, n) : (n, k)
        let lda = colsA + pad, ldb = colsB + pad, ldc = n + pad
        let strideA = rowsA * lda + 3, strideB = rowsB * ldb + 1, strideC = m * ldc + 4
        let a = randomArray(batch * strideA, seed: 11), b = randomArray(batch * strideB, seed: 12)
        let c0 = randomArray(batch * strideC, seed: 13)
        let results = perWorkerCount([1, 2, 3, 4]) { () -> [Float] in
            var c = c0
            Blas.stridedBatched(batch: batch, transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5,
                                a: a, lda: lda, strideA: strideA, b: b, ldb: ldb, strideB: strideB,
                                beta: 1, c: &c, ldc: ldc, strideC: strideC)
            return c
        }
        for r in results.dropFirst() { #expect(bits(r) == bits(results[0])) }
        let c = results[0]
        for i in 0..<batch {
            let ref = naiveGemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5,
                                a: Array(a[(i * strideA)...]), lda: lda, b: Array(b[(i * strideB)...]), ldb: ldb,
                                beta: 1, c: Array(c0[(i * strideC)..<(i * strideC + m * ldc)]), ldc: ldc)
            for e in 0..<(m * ldc) {
                let got = c[i * strideC + e]
                if e % ldc >= n { #expect(got == c0[i * strideC + e]); continue }  // padding untouched
                #expect(abs(Double(got) - ref.c[e]) <= 1e-6 * ref.scale[e] + 1e-30)
            }
        }
        // Elements between the C blocks (stride gaps) are untouched.
        for i in 0..<batch {
            for e in (m * ldc)..<strideC { #expect(c[i * strideC + e] == c0[i * strideC + e]) }
        }
    }

    /// stridedBatched leaves OpenBLAS's thread count as it found it.
    @Test func stridedBatchedRestoresBlasThreads() {
        let before = Blas.threads
        let a = randomArray(4 * 4 * 4, seed: 14)
        var c = [Float](repeating: 0, count: 4 * 4 * 4)
        Parallel.withWorkers(2) {
            Blas.stridedBatched(batch: 4, transA: false, transB: false, m: 4, n: 4, k: 4,
                                a: a, strideA: 16, b: a, strideB: 16, c: &c, strideC: 16)
        }
        #expect(Blas.threads == before)
    }

    /// Products big enough for OpenBLAS to split them over its own threads (where the last bits
    /// can depend on the split) still give the same bits for every worker count, batch 1 aside.
    @Test func stridedBatchedLargeProductsSameBits() {
        let batch = 3, m = 96, n = 80, k = 64
        let a = randomArray(batch * m * k, seed: 15), b = randomArray(batch * k * n, seed: 16)
        let results = perWorkerCount([1, 2, 3, 4]) { () -> [Float] in
            var c = [Float](repeating: 0, count: batch * m * n)
            Blas.stridedBatched(batch: batch, transA: false, transB: true, m: m, n: n, k: k,
                                a: a, strideA: m * k, b: b, strideB: k * n, c: &c, strideC: m * n)
            return c
        }
        for r in results.dropFirst() { #expect(bits(r) == bits(results[0])) }
    }

    @Test func axpy() {
        var y: [Float] = [1, 2, 3]
        Blas.axpy(n: 3, alpha: 2, x: [1, 1, -1], y: &y)
        #expect(y == [3, 4, 1])
    }

    @Test func libraryInfo() {
        #expect(!Blas.coreName.isEmpty)
        #expect(Blas.config.contains("OpenBLAS"))
        #expect(Blas.threads >= 1)
    }
}

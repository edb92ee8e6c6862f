import COpenBLAS
import Foundation

/// Row-major single-precision matrix products through OpenBLAS's cblas.
///
/// Shapes follow the math: C (m×n) = alpha · op(A) (m×k) · op(B) (k×n) + beta · C.
/// `transA`/`transB` say whether A and B are stored transposed: op(A) = A when A is stored
/// m×k, op(A) = Aᵀ when A is stored k×m (likewise B: k×n, or n×k transposed). Leading
/// dimensions (the distance in elements between two rows as stored) default to the dense
/// row-major ones; pass larger ones to work on a sub-matrix, e.g. one head's columns inside
/// a (tokens × 3·hidden) QKV buffer.
///
/// beta = 0 means C is only written, never read (NaNs or garbage in C do not leak through).
///
/// Threads: OpenBLAS runs each call on its own pool (2 threads by default). Call BLAS from one
/// thread at a time and not while a `Parallel` loop runs; see `Parallel` for why.
///
/// Reproducibility: a product's bits depend on the kernel (see `BlasKernel`) and on OpenBLAS's
/// thread count (its split decides which micro-kernel computes which element), never on
/// `Parallel.workers`; the same call on the same machine gives the same bits every time.
public enum Blas {
    /// The general product. Checks the leading dimensions in debug builds: OpenBLAS reports a
    /// bad one only by printing a message and returning without computing anything.
    public static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int? = nil,
        b: UnsafePointer<Float>, ldb: Int? = nil,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil
    ) {
        precondition(m >= 0 && n >= 0 && k >= 0, "sgemm: negative size m=\(m) n=\(n) k=\(k)")
        if m == 0 || n == 0 { return }
        // Columns of A, B, C as stored; cblas wants every leading dimension >= max(1, that).
        let colsA = transA ? m : k, colsB = transB ? k : n
        let lda = lda ?? max(1, colsA)
        let ldb = ldb ?? max(1, colsB)
        let ldc = ldc ?? n
        precondition(lda >= max(1, colsA), "sgemm: lda \(lda) < \(colsA) columns of A")
        precondition(ldb >= max(1, colsB), "sgemm: ldb \(ldb) < \(colsB) columns of B")
        precondition(ldc >= n, "sgemm: ldc \(ldc) < \(n) columns of C")
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                    beta, c, blasint(ldc))
    }

    /// C (m×n) = alpha · A (m×k) · B (k×n) + beta · C: a linear layer `x W` with W stored (in, out).
    public static func nn(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int? = nil,
                          b: UnsafePointer<Float>, ldb: Int? = nil,
                          c: UnsafeMutablePointer<Float>, ldc: Int? = nil, alpha: Float = 1, beta: Float = 0) {
        sgemm(transA: false, transB: false, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
              b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }

    /// C (m×n) = alpha · A (m×k) · Bᵀ + beta · C, B stored (n×k): a linear layer `x Wᵀ` with W
    /// in PyTorch's (out, in) layout, or attention scores Q·Kᵀ.
    public static func nt(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int? = nil,
                          b: UnsafePointer<Float>, ldb: Int? = nil,
                          c: UnsafeMutablePointer<Float>, ldc: Int? = nil, alpha: Float = 1, beta: Float = 0) {
        sgemm(transA: false, transB: true, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
              b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }

    /// C (m×n) = alpha · Aᵀ · B + beta · C, A stored (k×m), B (k×n): weight gradients
    /// `dW = dYᵀ X` (beta = 1 accumulates over micro-batches).
    public static func tn(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int? = nil,
                          b: UnsafePointer<Float>, ldb: Int? = nil,
                          c: UnsafeMutablePointer<Float>, ldc: Int? = nil, alpha: Float = 1, beta: Float = 0) {
        sgemm(transA: true, transB: false, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
              b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }

    /// `batch` independent products of the same shape; product i reads A at `a + i·strideA`,
    /// B at `b + i·strideB` and writes C at `c + i·strideC` (strides in elements; the C blocks
    /// must not overlap).
    ///
    /// Attention has many small products (batch × heads of 256×64·64×256). One at a time on
    /// OpenBLAS's two threads, each is too small to split well; so with batch ≥ 2, OpenBLAS is
    /// dropped to one thread and whole products are spread over `Parallel`'s workers instead.
    ///
    /// Each product is then always computed whole by one single-threaded call, whatever the
    /// worker count, so the results are bit-identical for every worker count. (That would not
    /// hold if some products ran on OpenBLAS's two threads: how OpenBLAS splits a product
    /// changes which of its micro-kernels computes which element, and so the last bits of
    /// some elements — measured on the Zen/Haswell kernels: 2–20% of the elements differ by
    /// an ulp or so between 1 and 2 threads.)
    public static func stridedBatched(
        batch: Int, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int? = nil, strideA: Int,
        b: UnsafePointer<Float>, ldb: Int? = nil, strideB: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil, strideC: Int
    ) {
        if batch <= 0 || m == 0 || n == 0 { return }
        let one = { (i: Int) in
            sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                  a: a + i * strideA, lda: lda, b: b + i * strideB, ldb: ldb,
                  beta: beta, c: c + i * strideC, ldc: ldc)
        }
        if batch == 1 { one(0); return }
        withThreads(1) {
            Parallel.forEach(batch, costPerItem: max(1, m * n * max(k, 1)), one)
        }
    }

    /// y += alpha · x (n elements), on OpenBLAS's threads.
    public static func axpy(n: Int, alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        if n <= 0 { return }
        cblas_saxpy(blasint(n), alpha, x, 1, y, 1)
    }

    /// The kernel OpenBLAS chose when it loaded (e.g. "Prescott", "Haswell", "SkylakeX", "Zen").
    public static var coreName: String { String(cString: openblas_get_corename()) }
    /// OpenBLAS's build description (version, threading, kernels).
    public static var config: String { String(cString: openblas_get_config()) }
    /// OpenBLAS's current thread count.
    public static var threads: Int { Int(openblas_get_num_threads()) }
    /// Sets OpenBLAS's thread count for every later call (process-wide).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }

    /// Runs `body` with OpenBLAS on `n` threads, then restores the previous count. The count is
    /// process-wide: do not call this while another thread is calling BLAS.
    public static func withThreads<R>(_ n: Int, _ body: () throws -> R) rethrows -> R {
        let before = threads
        if before == n { return try body() }
        setThreads(n)
        defer { setThreads(before) }
        return try body()
    }
}

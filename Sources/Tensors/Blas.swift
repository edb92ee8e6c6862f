import COpenBLAS
import Foundation

/// Row-major single-precision matrix products through OpenBLAS's cblas.
///
/// Shapes follow the math: C (m×n) = alpha · op(A) (m×k) · op(B) (k×n) + beta · C.
/// `transA`/`transB` say whether A and B are stored transposed; leading dimensions default
/// to the dense row-major ones.
public enum Blas {
    public static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int? = nil,
        b: UnsafePointer<Float>, ldb: Int? = nil,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil
    ) {
        if m == 0 || n == 0 { return }
        let lda = lda ?? (transA ? m : k)
        let ldb = ldb ?? (transB ? k : n)
        let ldc = ldc ?? n
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                    beta, c, blasint(ldc))
    }

    /// C (m×n) = A (m×k) · B (k×n) (+ beta·C).
    public static func nn(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                          c: UnsafeMutablePointer<Float>, alpha: Float = 1, beta: Float = 0) {
        sgemm(transA: false, transB: false, m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta, c: c)
    }

    /// C (m×n) = A (m×k) · Bᵀ, B stored (n×k): a linear layer `x Wᵀ` with W in PyTorch's (out, in).
    public static func nt(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                          c: UnsafeMutablePointer<Float>, alpha: Float = 1, beta: Float = 0) {
        sgemm(transA: false, transB: true, m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta, c: c)
    }

    /// C (m×n) = Aᵀ · B, A stored (k×m), B (k×n): weight gradients `dYᵀ X`.
    public static func tn(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                          c: UnsafeMutablePointer<Float>, alpha: Float = 1, beta: Float = 0) {
        sgemm(transA: true, transB: false, m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta, c: c)
    }

    /// `batch` independent products; matrix i of A, B, C starts at `i * strideA/B/C` elements.
    public static func stridedBatched(
        batch: Int, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int? = nil, strideA: Int,
        b: UnsafePointer<Float>, ldb: Int? = nil, strideB: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil, strideC: Int
    ) {
        for i in 0..<batch {
            sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                  a: a + i * strideA, lda: lda, b: b + i * strideB, ldb: ldb,
                  beta: beta, c: c + i * strideC, ldc: ldc)
        }
    }

    /// y += alpha · x (n elements).
    public static func axpy(n: Int, alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        cblas_saxpy(blasint(n), alpha, x, 1, y, 1)
    }

    /// The kernel OpenBLAS chose when it loaded (e.g. "Prescott", "SkylakeX").
    public static var coreName: String { String(cString: openblas_get_corename()) }
    /// OpenBLAS's build description (version, threading, kernels).
    public static var config: String { String(cString: openblas_get_config()) }
    public static var threads: Int { Int(openblas_get_num_threads()) }
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
}

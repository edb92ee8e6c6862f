/// Elementwise and reduction helpers over raw Float buffers, split over the cores when large
/// (see `Parallel`; like every `Parallel` loop, do not call them while BLAS is running on
/// another thread).
///
/// Elementwise results never depend on the worker count (each element is computed alone).
/// Reductions are computed in Double over fixed blocks of `Ops.reductionBlock` elements whose
/// partial sums are added in order (`Parallel.reduceBlocks`): bit-identical for any worker
/// count, and accurate to about 1e-16 relative for the sums a training loop needs (losses,
/// gradient norms).
///
/// Elementwise inputs and outputs may be the very same buffer (`Ops.mul(x, x, into: x)`), since
/// element i is read before it is written; buffers that partly overlap are not allowed.
public enum Ops {
    /// Elements per block of a deterministic reduction.
    public static let reductionBlock = 8192

    // MARK: elementwise

    /// y[i] = value
    public static func fill(_ y: UnsafeMutablePointer<Float>, with value: Float, count: Int) {
        Parallel.forRanges(count) { r in (y + r.lowerBound).update(repeating: value, count: r.count) }
    }

    /// dst[i] = src[i] (the buffers must not overlap).
    public static func copy(_ src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forRanges(count) { r in (dst + r.lowerBound).update(from: src + r.lowerBound, count: r.count) }
    }

    /// y += x
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forRanges(count) { r in for i in r { y[i] += x[i] } }
    }

    /// z = x + y
    public static func add(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, into z: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forRanges(count) { r in for i in r { z[i] = x[i] + y[i] } }
    }

    /// y *= s
    public static func scale(_ y: UnsafeMutablePointer<Float>, by s: Float, count: Int) {
        Parallel.forRanges(count) { r in for i in r { y[i] *= s } }
    }

    /// y += alpha · x: residual adds, gradient accumulation, SGD steps. Unlike `Blas.axpy`
    /// it runs on `Parallel`'s workers, so it can sit between other `Parallel` loops without
    /// waking OpenBLAS's threads.
    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forRanges(count, costPerItem: 2) { r in for i in r { y[i] += alpha * x[i] } }
    }

    /// y = alpha · x + beta · y. With alpha = 1 − d and beta = d this is an EMA update.
    public static func axpby(_ alpha: Float, _ x: UnsafePointer<Float>, _ beta: Float, _ y: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forRanges(count, costPerItem: 3) { r in for i in r { y[i] = alpha * x[i] + beta * y[i] } }
    }

    /// z = x ⊙ y, elementwise.
    public static func mul(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, into z: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forRanges(count) { r in for i in r { z[i] = x[i] * y[i] } }
    }

    /// y[r, c] += bias[c] for every row r of a (rows × cols) row-major matrix: a linear
    /// layer's bias after its sgemm.
    public static func addBias(_ bias: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        Parallel.forRanges(rows, costPerItem: cols) { r in
            for row in r {
                let yr = y + row * cols
                for c in 0..<cols { yr[c] += bias[c] }
            }
        }
    }

    /// out[c] (+)= Σ_r x[r, c] over the rows of a (rows × cols) row-major matrix: a bias
    /// gradient. Columns are split over the workers and each column is summed top to bottom
    /// in Float, so the result does not depend on the worker count. `accumulate` adds to
    /// `out` instead of overwriting it.
    public static func sumRows(_ x: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        // Split the columns in pieces of 16 (one cache line when `out` is 64-byte aligned, as
        // tensors are), so that workers do not write to the same line of `out`, and the inner
        // loop stays vectorisable.
        let pieces = (cols + 15) / 16
        Parallel.forRanges(pieces, costPerItem: 16 * max(rows, 1)) { p in
            let lo = p.lowerBound * 16, hi = min(cols, p.upperBound * 16)
            if !accumulate { (out + lo).update(repeating: 0, count: hi - lo) }
            for row in 0..<rows {
                let xr = x + row * cols
                for c in lo..<hi { out[c] += xr[c] }
            }
        }
    }

    // MARK: reductions (deterministic, Double)

    /// Σ x[i].
    public static func sum(_ x: UnsafePointer<Float>, count: Int) -> Double {
        Parallel.reduceBlocks(count, blockSize: reductionBlock, identity: 0.0, partial: { r in
            var s = SIMD4<Double>()
            var i = r.lowerBound
            while i + 4 <= r.upperBound {
                s += SIMD4(Double(x[i]), Double(x[i + 1]), Double(x[i + 2]), Double(x[i + 3]))
                i += 4
            }
            var t = s.sum()
            while i < r.upperBound { t += Double(x[i]); i += 1 }
            return t
        }, combine: +)
    }

    /// Σ x[i]·y[i].
    public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Double {
        Parallel.reduceBlocks(count, blockSize: reductionBlock, costPerItem: 2, identity: 0.0, partial: { r in
            var s = SIMD4<Double>()
            var i = r.lowerBound
            while i + 4 <= r.upperBound {
                s += SIMD4(Double(x[i]), Double(x[i + 1]), Double(x[i + 2]), Double(x[i + 3]))
                    * SIMD4(Double(y[i]), Double(y[i + 1]), Double(y[i + 2]), Double(y[i + 3]))
                i += 4
            }
            var t = s.sum()
            while i < r.upperBound { t += Double(x[i]) * Double(y[i]); i += 1 }
            return t
        }, combine: +)
    }

    /// Σ x[i]²: squared L2 norm, e.g. for gradient clipping.
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double {
        dot(x, x, count: count)
    }

    /// max |x[i]| (0 for an empty buffer; NaN if any element is NaN, so that a diverged
    /// run is not mistaken for a small one).
    public static func maxAbs(_ x: UnsafePointer<Float>, count: Int) -> Float {
        Parallel.reduceBlocks(count, blockSize: reductionBlock, identity: Float(0), partial: { r in
            var m: Float = 0
            for i in r {
                let a = abs(x[i])
                if a > m { m = a } else if a.isNaN { return .nan }
            }
            return m
        }, combine: { a, b in a.isNaN || b.isNaN ? .nan : max(a, b) })
    }
}

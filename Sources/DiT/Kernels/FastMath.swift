// Vectorized exp and tanh for the elementwise kernels (softmax, GELU). libm's expf/tanhf are
// scalar calls (~0.25 G/s here); these run 8 lanes at a time. Accuracy: exp within ~2 ulp over
// the float range (Cody–Waite range reduction + degree-6 minimax polynomial, as Cephes'
// expf), tanh within ~3e-7 absolute — far inside the reference tolerances (1e-5).

/// e^x for 8 lanes; inputs are clamped to [−87.3, 88.7] (results 0…FLT_MAX).
@inline(__always)
func fastExp(_ x0: SIMD8<Float>) -> SIMD8<Float> {
    let x = x0.clamped(lowerBound: SIMD8(repeating: -87.3), upperBound: SIMD8(repeating: 88.7))
    // n = round(x / ln 2); r = x − n·ln 2 in two parts for accuracy.
    let n = (x * 1.442_695_04).rounded(.toNearestOrEven)
    var r = x - n * 0.693_359_375
    r = r - n * -2.121_944_4e-4
    // e^r on |r| ≤ ln2/2 (Cephes expf coefficients).
    var p = SIMD8<Float>(repeating: 1.987_569_15e-4)
    p = p * r + 1.398_199_95e-3
    p = p * r + 8.333_451_9e-3
    p = p * r + 4.166_579_6e-2
    p = p * r + 1.666_666_55e-1
    p = p * r + 5.000_000_1e-1
    let r2 = r * r
    let er = p * r2 + r + 1
    // Scale by 2^n through the exponent bits.
    let bits = (SIMD8<Int32>(n) &+ 127) &<< 23
    return er * unsafeBitCast(bits, to: SIMD8<Float>.self)
}

/// tanh(x) for 8 lanes: 1 − 2/(e^{2x} + 1), with odd symmetry and saturation at |x| > 9.
@inline(__always)
func fastTanh(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let ax = x.replacing(with: -x, where: x .< 0).clamped(lowerBound: SIMD8(repeating: 0), upperBound: SIMD8(repeating: 9))
    // For small |x| the subtraction cancels; use the odd series there instead.
    let e = fastExp(2 * ax)
    var t = 1 - 2 / (e + 1)
    let x2 = ax * ax
    var poly = SIMD8<Float>(repeating: -17.0 / 315)
    poly = poly * x2 + SIMD8(repeating: 2.0 / 15)
    poly = poly * x2 + SIMD8(repeating: -1.0 / 3)
    poly = poly * x2 + SIMD8(repeating: 1)
    let series = ax * poly
    t.replace(with: series, where: ax .< 0.0625)
    return t.replacing(with: -t, where: x .< 0)
}

/// Scalar versions on the same code path (tails of vector loops).
@inline(__always) func fastExp(_ x: Float) -> Float { fastExp(SIMD8(repeating: x))[0] }
@inline(__always) func fastTanh(_ x: Float) -> Float { fastTanh(SIMD8(repeating: x))[0] }

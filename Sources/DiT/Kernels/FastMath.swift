// Fast exp for the elementwise kernels (softmax, GELU). libm's expf/tanhf are opaque
// scalar calls; these are branch-free Float and bit operations that LLVM inlines and
// auto-vectorizes in the callers' loops (generic SIMD types are avoided on purpose: their
// conversions were not specialized and cost more than the math). Accuracy: exp within ~2 ulp
// (Cody–Waite range reduction + Cephes' degree-6 polynomial).

/// e^x; inputs are clamped to [−87.3, 88.3] (results ~1e-38 … 2e38).
@inline(__always)
func fastExp(_ x0: Float) -> Float {
    let x = x0 < -87.3 ? -87.3 : (x0 > 88.3 ? 88.3 : x0)
    // Adding 1.5·2²³ rounds x/ln2 to the nearest integer n, which then sits in the low bits.
    let shifted = x * 1.442_695_04 + 12_582_912.0
    let n = shifted - 12_582_912.0
    var r = x - n * 0.693_359_375
    r = r - n * -2.121_944_4e-4
    var p: Float = 1.987_569_15e-4
    p = p * r + 1.398_199_95e-3
    p = p * r + 8.333_451_9e-3
    p = p * r + 4.166_579_6e-2
    p = p * r + 1.666_666_55e-1
    p = p * r + 5.000_000_1e-1
    let er = p * (r * r) + r + 1
    let ni = Int32(bitPattern: shifted.bitPattern &- 0x4B40_0000)
    let scale = Float(bitPattern: UInt32(bitPattern: (ni &+ 127) &<< 23))
    return er * scale
}

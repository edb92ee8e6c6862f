// Row reductions for the elementwise kernels. Float sums do not vectorize without
// reassociation (Swift has no fast-math), so these add in eight lanes (SIMD8, one AVX
// register), combine the lanes in a fixed tree, then add the tail: the order depends only on
// n, never on threads.

/// Σ x[i].
@inline(__always)
func rowSum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    var j = 0
    let raw = UnsafeRawPointer(x)
    while j + 8 <= n {
        acc += raw.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self)
        j += 8
    }
    var s = laneSum(acc)
    while j < n { s += x[j]; j += 1 }
    return s
}

/// Σ a[i]·b[i].
@inline(__always)
func rowDot8(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    var j = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while j + 8 <= n {
        acc += ra.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self)
            * rb.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self)
        j += 8
    }
    var s = laneSum(acc)
    while j < n { s += a[j] * b[j]; j += 1 }
    return s
}

/// Σ (x[i] − m)².
@inline(__always)
func rowSquaredDeviation(_ x: UnsafePointer<Float>, mean m: Float, _ n: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    let mv = SIMD8<Float>(repeating: m)
    var j = 0
    let raw = UnsafeRawPointer(x)
    while j + 8 <= n {
        let d = raw.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self) - mv
        acc += d * d
        j += 8
    }
    var s = laneSum(acc)
    while j < n { let d = x[j] - m; s += d * d; j += 1 }
    return s
}

/// The eight lanes added as a balanced tree: ((0+4)+(2+6)) + ((1+5)+(3+7)).
@inline(__always)
func laneSum(_ v: SIMD8<Float>) -> Float {
    let h = v.lowHalf + v.highHalf
    let q = h.lowHalf + h.highHalf
    return q[0] + q[1]
}

/// Elementwise and reduction helpers over raw Float buffers, split over both cores when large.
public enum Ops {
    /// y += x
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forRanges(count) { r in for i in r { y[i] += x[i] } }
    }

    /// y *= s
    public static func scale(_ y: UnsafeMutablePointer<Float>, by s: Float, count: Int) {
        Parallel.forRanges(count) { r in for i in r { y[i] *= s } }
    }

    /// Sum in Double (order fixed per chunk, chunks combined in order: deterministic).
    public static func sum(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var total = 0.0
        for start in stride(from: 0, to: count, by: 65_536) {
            var s = 0.0
            for i in start..<min(count, start + 65_536) { s += Double(x[i]) }
            total += s
        }
        return total
    }

    /// Sum of squares in Double.
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var s = 0.0
        for i in 0..<count { s += Double(x[i]) * Double(x[i]) }
        return s
    }

    /// Largest |x|.
    public static func maxAbs(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var m: Float = 0
        for i in 0..<count { m = max(m, abs(x[i])) }
        return m
    }
}

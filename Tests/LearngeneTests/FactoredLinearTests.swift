import Testing
import DiT
@testable import Learngene

/// The factored linear y = ((x Vᵀ) ⊙ s) U against a Double reference: forward values, and
/// every gradient (dU, dV, dScale, dx) against central differences of the reference loss
/// L = Σ w ⊙ y.
@Suite struct FactoredLinearTests {
    /// Σ_{row,o} w[row,o] Σ_k U[k,o] s[g(row),k] Σ_i V[k,i] x[row,i], in Double.
    static func referenceLoss(x: [Double], u: [Double], v: [Double], s: [Double], w: [Float],
                              rowsPerScale: Int, M: Int, IC: Int, OC: Int, r: Int) -> Double {
        var total = 0.0
        for row in 0..<M {
            for k in 0..<r {
                var xv = 0.0
                for i in 0..<IC { xv += v[k * IC + i] * x[row * IC + i] }
                let h = xv * s[(row / rowsPerScale) * r + k]
                for o in 0..<OC { total += Double(w[row * OC + o]) * u[k * OC + o] * h }
            }
        }
        return total
    }

    /// One configuration: `rowsPerScale` = M is FINE's shared σ, smaller is KIND's per sample.
    func check(M: Int, rowsPerScale: Int, IC: Int, OC: Int, r: Int) {
        let groups = M / rowsPerScale
        let x = FK.random(M * IC, seed: 1), u = FK.random(r * OC, seed: 2, scale: 0.5)
        let v = FK.random(r * IC, seed: 3, scale: 0.5), s = FK.random(groups * r, seed: 4), w = FK.random(M * OC, seed: 5)
        var out = [Float](repeating: 0, count: M * OC), xv = [Float](repeating: 0, count: M * r), h = xv
        factoredLinearForward(out: &out, xv: &xv, h: &h, inp: x, u: u, v: v, scale: s, rowsPerScale: rowsPerScale,
                              M: M, IC: IC, OC: OC, rank: r)
        // Forward against the reference (its weighted sum; and a one-hot w per output below).
        var dx = [Float](repeating: 7, count: M * IC), du = [Float](repeating: 0, count: r * OC)
        var dv = [Float](repeating: 0, count: r * IC), ds = [Float](repeating: 0, count: groups * r)
        var s1 = xv, s2 = xv
        factoredLinearBackward(dInp: &dx, dU: &du, dV: &dv, dScale: &ds, dOut: w, xv: xv, scratch1: &s1, scratch2: &s2,
                               inp: x, u: u, v: v, scale: s, rowsPerScale: rowsPerScale, M: M, IC: IC, OC: OC, rank: r,
                               overwriteInput: true)
        let loss = { (x: [Double], u: [Double], v: [Double], s: [Double]) in
            Self.referenceLoss(x: x, u: u, v: v, s: s, w: w, rowsPerScale: rowsPerScale, M: M, IC: IC, OC: OC, r: r)
        }
        var forwardErr = 0.0
        for row in 0..<M {
            for o in 0..<OC {
                var ref = 0.0
                for k in 0..<r {
                    var a = 0.0
                    for i in 0..<IC { a += Double(v[k * IC + i]) * Double(x[row * IC + i]) }
                    ref += Double(u[k * OC + o]) * Double(s[(row / rowsPerScale) * r + k]) * a
                }
                forwardErr = max(forwardErr, abs(ref - Double(out[row * OC + o])))
            }
        }
        let errors = FK.factorGradientErrors(x: x, u: u, v: v, s: s, analytic: (dx, du, dv, ds), loss: loss)
        print("factored linear M=\(M) rows/scale=\(rowsPerScale): forward \(forwardErr), \(errors)")
        #expect(forwardErr < 1e-5)
        for (name, e) in errors { #expect(e < 1e-5, "\(name) \(e)") }
    }

    @Test func sharedScaleGradients() { check(M: 6, rowsPerScale: 6, IC: 5, OC: 7, r: 3) }
    @Test func perSampleScaleGradients() { check(M: 6, rowsPerScale: 2, IC: 5, OC: 7, r: 4) }
    @Test func oneRowPerSampleGradients() { check(M: 3, rowsPerScale: 1, IC: 4, OC: 6, r: 4) }
}

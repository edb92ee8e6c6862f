import Testing
@testable import Tensors

@Suite struct OpsTests {
    // Large enough (> Parallel.grain) that 2 and 3 workers really split the loops.
    static let n = 200_003

    @Test func elementwise() {
        let n = Self.n
        let x = randomArray(n, seed: 20), y0 = randomArray(n, seed: 21)
        let results = perWorkerCount { () -> [[Float]] in
            var out: [[Float]] = []
            var y = y0
            Ops.fill(&y, with: 2.5, count: n); out.append(y)
            Ops.copy(x, to: &y, count: n); out.append(y)
            y = y0; Ops.add(x, into: &y, count: n); out.append(y)
            var z = [Float](repeating: 0, count: n)
            Ops.add(x, y0, into: &z, count: n); out.append(z)
            y = y0; Ops.scale(&y, by: -3, count: n); out.append(y)
            y = y0; Ops.axpy(0.5, x, &y, count: n); out.append(y)
            y = y0; Ops.axpby(0.1, x, 0.9, &y, count: n); out.append(y)
            Ops.mul(x, y0, into: &z, count: n); out.append(z)
            return out
        }
        for r in results.dropFirst() { #expect(r.map(bits) == results[0].map(bits)) }
        let r = results[0]
        #expect(r[0].allSatisfy { $0 == 2.5 })
        #expect(r[1] == x)
        for i in stride(from: 0, to: n, by: 997) {
            #expect(r[2][i] == y0[i] + x[i])
            #expect(r[3][i] == x[i] + y0[i])
            #expect(r[4][i] == -3 * y0[i])
            #expect(r[5][i] == y0[i] + 0.5 * x[i])
            #expect(abs(r[6][i] - (0.1 * x[i] + 0.9 * y0[i])) <= 1e-6)
            #expect(r[7][i] == x[i] * y0[i])
        }
    }

    @Test func zeroCountIsANoOp() {
        var y: [Float] = [1]
        Ops.fill(&y, with: 0, count: 0)
        Ops.axpy(1, y, &y, count: 0)
        #expect(y == [1])
        #expect(Ops.sum(y, count: 0) == 0)
        #expect(Ops.maxAbs(y, count: 0) == 0)
    }

    @Test func biasAddAndRowSums() {
        for (rows, cols) in [(1, 1), (3, 17), (1000, 40), (2, 5000)] {
            let x = randomArray(rows * cols, seed: 22), bias = randomArray(cols, seed: 23)
            let results = perWorkerCount { () -> [[Float]] in
                var y = x
                Ops.addBias(bias, into: &y, rows: rows, cols: cols)
                var s = [Float](repeating: .nan, count: cols)
                Ops.sumRows(x, rows: rows, cols: cols, into: &s)
                var acc = bias
                Ops.sumRows(x, rows: rows, cols: cols, into: &acc, accumulate: true)
                return [y, s, acc]
            }
            for r in results.dropFirst() { #expect(r.map(bits) == results[0].map(bits)) }
            let (y, s, acc) = (results[0][0], results[0][1], results[0][2])
            for r in 0..<rows { for c in 0..<cols { #expect(y[r * cols + c] == x[r * cols + c] + bias[c]) } }
            for c in 0..<cols {
                var ref: Float = 0, refAcc = bias[c]
                for r in 0..<rows { ref += x[r * cols + c]; refAcc += x[r * cols + c] }
                #expect(s[c] == ref)        // same order, top to bottom: exactly equal
                #expect(acc[c] == refAcc)
            }
        }
    }

    /// Sums are bit-identical for every worker count and as accurate as a Double loop.
    @Test func deterministicReductions() {
        let n = 1_000_003
        let x = randomArray(n, seed: 24, low: -1, high: 3), y = randomArray(n, seed: 25)
        let results = perWorkerCount([1, 2, 3, 5]) { () -> [Double] in
            [Ops.sum(x, count: n), Ops.dot(x, y, count: n), Ops.sumOfSquares(x, count: n), Double(Ops.maxAbs(y, count: n))]
        }
        for r in results.dropFirst() { #expect(r.map(\.bitPattern) == results[0].map(\.bitPattern)) }
        var s = 0.0, d = 0.0, q = 0.0
        var m: Float = 0
        for i in 0..<n {
            s += Double(x[i]); d += Double(x[i]) * Double(y[i]); q += Double(x[i]) * Double(x[i])
            m = max(m, abs(y[i]))
        }
        let r = results[0]
        #expect(abs(r[0] - s) <= 1e-12 * abs(s))
        #expect(abs(r[1] - d) <= 1e-10 * q)
        #expect(abs(r[2] - q) <= 1e-12 * q)
        #expect(r[3] == Double(m))
    }

    @Test func maxAbsSeesNaN() {
        var x = randomArray(100_000, seed: 26)
        #expect(Ops.maxAbs(x, count: x.count) <= 1)
        x[77_777] = .nan
        #expect(Parallel.withWorkers(2) { Ops.maxAbs(x, count: x.count) }.isNaN)
        #expect(Parallel.withWorkers(1) { Ops.maxAbs(x, count: x.count) }.isNaN)
        x[77_777] = -.infinity
        #expect(Ops.maxAbs(x, count: x.count) == .infinity)
    }
}

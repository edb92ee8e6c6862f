import Foundation
import Testing
@testable import Tensors

@Suite struct PhiloxTests {
    /// Random123's known-answer vectors for philox4x32_10 (kat_vectors): counter, key → output.
    @Test(arguments: [
        ([0, 0, 0, 0] as [UInt32], [0, 0] as [UInt32], [0x6627_E8D5, 0xE169_C58D, 0xBC57_AC4C, 0x9B00_DBD8] as [UInt32]),
        ([0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], [0xFFFF_FFFF, 0xFFFF_FFFF],
         [0x408F_276D, 0x41C8_3B0E, 0xA20B_C7C6, 0x6D54_51FD]),
        ([0x243F_6A88, 0x85A3_08D3, 0x1319_8A2E, 0x0370_7344], [0xA409_3822, 0x299F_31D0],
         [0xD16C_FE09, 0x94FD_CCEB, 0x5001_E420, 0x2412_6EA1]),
    ])
    func knownAnswers(counter: [UInt32], key: [UInt32], expected: [UInt32]) {
        let out = Philox.block(SIMD4(counter[0], counter[1], counter[2], counter[3]), key: SIMD2(key[0], key[1]))
        #expect(out == SIMD4(expected[0], expected[1], expected[2], expected[3]))
    }
}

@Suite struct RandomStreamTests {
    /// Word p is lane p % 4 of block p / 4, whose counter is (p/4, 0, stream, "lgen") under
    /// key (seed low, seed high): pinned so that a checkpointed stream means the same forever.
    @Test func wordLayout() {
        let s = RandomStream(seed: 0x0123_4567_89AB_CDEF, stream: 7)
        let blk = Philox.block(SIMD4(2, 0, 7, 0x6C67_656E), key: SIMD2(0x89AB_CDEF, 0x0123_4567))
        for lane in 0..<4 { #expect(s.word(at: UInt64(8 + lane)) == blk[lane]) }
        // The high half of a block index goes to the second counter word.
        let far = Philox.block(SIMD4(5, 1, 7, 0x6C67_656E), key: SIMD2(0x89AB_CDEF, 0x0123_4567))
        #expect(s.word(at: (UInt64(1) << 34) | (5 << 2) | 3) == far[3])
    }

    @Test func seedsAndStreamsDiffer() {
        let base = RandomStream(seed: 1)
        let words = (0..<8).map { base.word(at: UInt64($0)) }
        #expect(Set(words).count == 8)
        #expect(RandomStream(seed: 2).word(at: 0) != base.word(at: 0))
        #expect(RandomStream(seed: 1, stream: 1).word(at: 0) != base.word(at: 0))
        #expect(RandomStream(seed: 1 << 32).word(at: 0) != base.word(at: 0))  // the seed's high half counts
    }

    /// Fills give the same bits for 1, 2 and 3 workers, from a position that is not a block
    /// boundary and a count that is not a multiple of 4, and big enough to be split.
    @Test func fillsDoNotDependOnWorkerCount() {
        let n = 100_003
        for kind in 0..<2 {
            let results = perWorkerCount { () -> [Float] in
                var rng = RandomStream(seed: 42, stream: 3, position: 5)
                var a = [Float](repeating: 0, count: n)
                a.withUnsafeMutableBufferPointer { p in
                    if kind == 0 { rng.fillUniform(p.baseAddress!, count: n, low: -2, high: 3) }
                    else { rng.fillNormal(p.baseAddress!, count: n, mean: 1, std: 0.5) }
                }
                #expect(rng.position == 5 + UInt64(n))
                return a
            }
            #expect(bits(results[1]) == bits(results[0]))
            #expect(bits(results[2]) == bits(results[0]))
        }
        // And the split really happened: more than one chunk with 2 or 3 workers.
        #expect(Parallel.withWorkers(2) { Parallel.chunkCount(n, costPerItem: 16) } > 1)
        #expect(Parallel.withWorkers(3) { Parallel.chunkCount(n, costPerItem: 48) } > 2)
    }

    /// Filling 10 then 20 gives the same 30 numbers as filling 30 at once, and single draws
    /// continue the same sequence.
    @Test func splitFillsContinueTheSequence() {
        for normal in [false, true] {
            func fill(_ rng: inout RandomStream, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
                if normal { rng.fillNormal(out, count: n) } else { rng.fillUniform(out, count: n) }
            }
            var whole = [Float](repeating: 0, count: 31), parts = whole
            var r1 = RandomStream(seed: 9, position: 3), r2 = r1
            fill(&r1, &whole, 31)
            parts.withUnsafeMutableBufferPointer { p in
                fill(&r2, p.baseAddress!, 10)
                #expect(r2.position == 13)
                fill(&r2, p.baseAddress! + 10, 20)
                #expect(r2.position == 33)
            }
            parts[30] = normal ? r2.nextNormal() : r2.nextUniform()
            #expect(bits(parts) == bits(whole))
            #expect(r1 == r2)
        }
    }

    /// A stream restored from JSON continues exactly where the original left off.
    @Test func checkpointRoundTrip() throws {
        var rng = RandomStream(seed: .max, stream: .max)
        _ = rng.nextUInt64()
        var restored = try JSONDecoder().decode(RandomStream.self, from: JSONEncoder().encode(rng))
        #expect(restored == rng)
        #expect(restored.nextUInt32() == rng.nextUInt32())
    }

    @Test func uniformRangeAndMoments() {
        let n = 100_000
        for (low, high) in [(Float(0), Float(1)), (-1, 1), (-0.001, 1000), (1, Float(1).nextUp)] {
            var rng = RandomStream(seed: 5)
            var a = [Float](repeating: 0, count: n)
            rng.fillUniform(&a, count: n, low: low, high: high)
            #expect(a.allSatisfy { $0 >= low && $0 < high }, "range [\(low), \(high))")
        }
        var rng = RandomStream(seed: 6)
        var a = [Float](repeating: 0, count: n)
        rng.fillUniform(&a, count: n)
        let mean = a.reduce(0.0) { $0 + Double($1) } / Double(n)
        let variance = a.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(n)
        #expect(abs(mean - 0.5) < 0.005)           // σ of the mean ≈ 0.0009
        #expect(abs(variance - 1.0 / 12) < 0.002)  // σ ≈ 0.0003
        // The extremes: word 0 gives 0, the largest word gives the largest float below 1.
        #expect(RandomStream.unit(0) == 0)
        #expect(RandomStream.unit(.max) == Float(1).nextDown)
    }

    @Test func normalMoments() {
        let n = 100_000
        var rng = RandomStream(seed: 7)
        var a = [Float](repeating: 0, count: n)
        rng.fillNormal(&a, count: n)
        let x = a.map(Double.init)
        let mean = x.reduce(0, +) / Double(n)
        let m2 = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
        let m3 = x.reduce(0) { $0 + pow($1 - mean, 3) } / Double(n)
        let m4 = x.reduce(0) { $0 + pow($1 - mean, 4) } / Double(n)
        #expect(abs(mean) < 0.015)            // σ ≈ 0.0032
        #expect(abs(m2 - 1) < 0.025)          // σ ≈ 0.0045
        #expect(abs(m3 / pow(m2, 1.5)) < 0.05) // skewness 0, σ ≈ 0.008
        #expect(abs(m4 / (m2 * m2) - 3) < 0.1) // kurtosis 3, σ ≈ 0.015
        #expect(x.allSatisfy { $0.isFinite })
        // Scaled fills are mean + std · standard.
        var r2 = RandomStream(seed: 7)
        var b = [Float](repeating: 0, count: 16)
        r2.fillNormal(&b, count: 16, mean: 3, std: 2)
        for i in 0..<16 { #expect(b[i] == 3 + 2 * a[i]) }
    }

    /// The word → normal map is the inverse normal CDF: checked against a Double inverse
    /// obtained by Newton's method on Φ(z) = ½·erfc(−z/√2), over the whole range, tails included.
    @Test func normalIsInverseCDF() {
        var words: [UInt32] = [0x7FFF_FFFF, 0x8000_0000, .max]
        for k in 0..<32 { words += [1 << k, 1 << k + 1, .max - 1 << k, .max - 1 << k - 1] }  // every scale of tail
        var rng = RandomStream(seed: 8)
        for _ in 0..<2000 { words.append(rng.nextUInt32()) }
        var worst = 0.0
        for w in words {
            let u = (Double(w) + 0.5) * 0x1p-32
            let z = Double(RandomStream.normal(w))
            var exact = z
            for _ in 0..<3 {  // Newton, with the tail-accurate side of Φ
                let phi = exp(-exact * exact / 2) / (2 * Double.pi).squareRoot()
                let cdf = exact < 0 ? 0.5 * erfc(-exact / 2.0.squareRoot()) : 1 - 0.5 * erfc(exact / 2.0.squareRoot())
                exact -= (cdf - u) / phi
            }
            let err = abs(z - exact) / max(1, abs(exact))
            worst = max(worst, err)
            #expect(err < 5e-7, "word \(w): \(z) vs \(exact)")
        }
        #expect(worst > 0)  // (a sanity check that the comparison is not vacuous)
        #expect(RandomStream.normal(0) < -6.2 && RandomStream.normal(.max) > 6.2)
        #expect(RandomStream.normal(0x8000_0000) > 0 && RandomStream.normal(0x7FFF_FFFF) < 0)
        #expect(RandomStream.normal(0x8000_0000) == -RandomStream.normal(0x7FFF_FFFF))  // symmetric
    }

    @Test func nextIntRangeAndSpread() {
        var rng = RandomStream(seed: 10)
        #expect(rng.nextInt(below: 1) == 0)
        #expect(rng.position == 2)  // one 64-bit draw
        var counts = [Int](repeating: 0, count: 10)
        for _ in 0..<10_000 { counts[rng.nextInt(below: 10)] += 1 }
        #expect(counts.allSatisfy { abs($0 - 1000) < 150 })  // σ ≈ 30
        for bound in [2, 3, 1 << 40, Int.max] {
            for _ in 0..<100 {
                let x = rng.nextInt(below: bound)
                #expect(x >= 0 && x < bound)
            }
        }
    }

    @Test func permutation() {
        var r1 = RandomStream(seed: 11), r2 = r1
        let p = r1.permutation(1000)
        #expect(p.sorted() == Array(0..<1000))
        #expect(p != Array(0..<1000))
        #expect(r2.permutation(1000) == p)
        var r3 = RandomStream(seed: 12)
        #expect(r3.permutation(1000) != p)
        #expect(r3.permutation(0) == [])
        #expect(r3.permutation(1) == [0])
    }

    @Test func tensorOverloads() {
        let t = Tensor(shape: [3, 5])
        var r1 = RandomStream(seed: 13), r2 = r1
        r1.fillNormal(t, mean: 1, std: 2)
        var a = [Float](repeating: 0, count: 15)
        r2.fillNormal(&a, count: 15, mean: 1, std: 2)
        #expect(t.toArray() == a)
        r1.fillUniform(t, low: 2, high: 4)
        #expect(t.toArray().allSatisfy { $0 >= 2 && $0 < 4 })
    }
}

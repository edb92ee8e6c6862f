import Foundation

/// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
/// SC'11), the generator behind cuRAND's and JAX's counter-based streams.
///
/// It is a keyed bijection, not a state machine: block `c` under key `k` is a pure function of
/// (c, k). Any thread can compute any block without computing the ones before it, which is
/// what makes a fill split over any number of threads give the same bits, and makes the whole
/// generator state a few integers (seed, stream, position) that a checkpoint can store.
public enum Philox {
    /// Ten rounds of Philox4x32 on `counter` under `key`; bit-exact with Random123's
    /// `philox4x32(ctr, key)` (checked against its known-answer tests).
    @inlinable
    public static func block(_ counter: SIMD4<UInt32>, key: SIMD2<UInt32>) -> SIMD4<UInt32> {
        var c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3]
        var k0 = key[0], k1 = key[1]
        for round in 0..<10 {
            if round > 0 {  // the key is bumped between rounds, not before the first
                k0 &+= 0x9E37_79B9  // Weyl increments: golden ratio, √3 − 1
                k1 &+= 0xBB67_AE85
            }
            let p0 = UInt64(0xD251_1F53 as UInt32) &* UInt64(c0)  // Random123's multipliers
            let p1 = UInt64(0xCD9E_8D57 as UInt32) &* UInt64(c2)
            let hi0 = UInt32(truncatingIfNeeded: p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
            let hi1 = UInt32(truncatingIfNeeded: p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
        }
        return SIMD4(c0, c1, c2, c3)
    }
}

/// A reproducible stream of random 32-bit words. `(seed, stream)` picks the sequence;
/// `position` is the index of the next word to be used. Copying the struct forks it;
/// storing it (it is Codable) checkpoints it exactly.
///
/// Word `p` of the sequence is lane `p % 4` of Philox block `p / 4`, where the block's counter
/// is (p/4 low 32 bits, p/4 high 32 bits, stream, "lgen") and its key is the 64-bit seed.
/// Every draw consumes whole words and every output number depends only on its own word(s):
///
/// - a uniform consumes 1 word (24 bits used: every Float in the result is exactly a
///   multiple of 2⁻²⁴, so [0, 1) never rounds up to 1);
/// - a normal consumes 1 word, through the inverse normal CDF (as JAX does: `√2·erfinv(2u−1)`),
///   rather than Box–Muller, which would tie numbers together in pairs;
/// - `nextInt(below:)` consumes 2 words per try (a 64-bit draw, rejection for no bias).
///
/// Consequences: a fill of `n` numbers advances `position` by exactly `n`; filling 10 then
/// 20 numbers gives the same 30 numbers as filling 30 at once; and a fill gives the same
/// bits whatever `Parallel.workers` is.
public struct RandomStream: Sendable, Codable, Equatable, Hashable {
    public var seed: UInt64
    public var stream: UInt32
    /// Index of the next 32-bit word (not of the next Philox block).
    public var position: UInt64

    public init(seed: UInt64, stream: UInt32 = 0, position: UInt64 = 0) {
        self.seed = seed
        self.stream = stream
        self.position = position
    }

    /// The 4 words of block `index` (words 4·index ..< 4·index + 4).
    @inlinable
    public func block(_ index: UInt64) -> SIMD4<UInt32> {
        Philox.block(
            SIMD4(UInt32(truncatingIfNeeded: index), UInt32(truncatingIfNeeded: index >> 32), stream, 0x6C67_656E),
            key: SIMD2(UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
    }

    /// Word `p` of the sequence, without moving `position`.
    @inlinable
    public func word(at p: UInt64) -> UInt32 { block(p >> 2)[Int(p & 3)] }

    /// Calls `body(i, word(at: start + i))` for i in 0..<count, one Philox block per 4 words.
    @inline(__always)
    func forEachWord(from start: UInt64, count: Int, _ body: (Int, UInt32) -> Void) {
        var i = 0
        while i < count {
            let p = start &+ UInt64(i)
            let v = block(p >> 2)
            var lane = Int(p & 3)
            repeat {
                body(i, v[lane])
                i += 1
                lane += 1
            } while lane < 4 && i < count
        }
    }

    // MARK: word -> number

    /// [0, 1) from the top 24 bits: every value is exactly representable.
    @inlinable @inline(__always)
    public static func unit(_ x: UInt32) -> Float { Float(x >> 8) * 0x1p-24 }

    /// A standard normal from one word: Φ⁻¹(u) = √2·erfinv(2u − 1) with u = (x + ½)·2⁻³²,
    /// which lies strictly inside (0, 1), so the result is finite (|z| < 6.4). erfinv is
    /// M. Giles' single-precision approximation ("Approximating the erfinv function", GPU
    /// Computing Gems, 2011): one log and one polynomial, relative error below 2e-7 for
    /// |z| < 5.4. Giles fitted it for float inputs, which stop at that |z|; the words beyond
    /// (u < 2⁻²⁵ or u > 1 − 2⁻²⁵, one in 2²⁴) are refined by Newton steps in Double.
    @inlinable
    public static func normal(_ x: UInt32) -> Float {
        // 2u − 1 and (1 − y)(1 + y) are computed in Double, where they are exact or nearly
        // so; in Float, 1 − y would lose all its bits in the tails.
        let y = (Double(x) + 0.5) * 0x1p-31 - 1
        var w = -Foundation.log(Float((1 - y) * (1 + y)))
        if w > 16 { return tailNormal(x, estimate: y < 0 ? -5.5 : 5.5) }
        var p: Float
        if w < 5 {
            w -= 2.5
            p = 2.81022636e-08
            p = 3.43273939e-07 + p * w
            p = -3.5233877e-06 + p * w
            p = -4.39150654e-06 + p * w
            p = 0.00021858087 + p * w
            p = -0.00125372503 + p * w
            p = -0.00417768164 + p * w
            p = 0.246640727 + p * w
            p = 1.50140941 + p * w
        } else {
            w = w.squareRoot() - 3
            p = -0.000200214257
            p = 0.000100950558 + p * w
            p = 0.00134934322 + p * w
            p = -0.00367342844 + p * w
            p = 0.00573950773 + p * w
            p = -0.0076224613 + p * w
            p = 0.00943887047 + p * w
            p = 1.00167406 + p * w
            p = 2.83297682 + p * w
        }
        return Float(2).squareRoot() * p * Float(y)
    }

    /// Φ⁻¹ far in the tails, in Double: Newton's method on log Q(a) = log q, where
    /// Q(a) = ½·erfc(a/√2) is the upper tail and q = min(u, 1 − u) (exact here). Converges
    /// from `estimate` to full Float precision in a few steps; only 1 word in 2²⁴ gets here.
    @usableFromInline
    static func tailNormal(_ x: UInt32, estimate: Double) -> Float {
        let q = (Double(min(x, UInt32.max - x)) + 0.5) * 0x1p-32
        let logQ = Foundation.log(q)
        var a = abs(estimate)
        for _ in 0..<6 {
            let tail = 0.5 * erfc(a / 2.0.squareRoot())
            let density = Foundation.exp(-0.5 * a * a) / (2 * Double.pi).squareRoot()
            a += (Foundation.log(tail) - logQ) * tail / density
        }
        return Float(x < 0x8000_0000 ? -a : a)
    }

    // MARK: fills

    /// Fills `count` uniforms in [low, high) and advances `position` by `count`.
    public mutating func fillUniform(_ out: UnsafeMutablePointer<Float>, count: Int, low: Float = 0, high: Float = 1) {
        if count <= 0 { return }
        let me = self, span = high - low
        // low + span·u can round up to `high` for some ranges; keep the interval half-open.
        let top = high > low ? high.nextDown : low
        Parallel.forRanges(count, costPerItem: 16) { r in
            me.forEachWord(from: me.position &+ UInt64(r.lowerBound), count: r.count) { i, x in
                out[r.lowerBound + i] = min(low + span * RandomStream.unit(x), top)
            }
        }
        position &+= UInt64(count)
    }

    /// Fills `count` normals N(mean, std²) and advances `position` by `count`.
    public mutating func fillNormal(_ out: UnsafeMutablePointer<Float>, count: Int, mean: Float = 0, std: Float = 1) {
        if count <= 0 { return }
        let me = self
        Parallel.forRanges(count, costPerItem: 48) { r in
            me.forEachWord(from: me.position &+ UInt64(r.lowerBound), count: r.count) { i, x in
                out[r.lowerBound + i] = mean + std * RandomStream.normal(x)
            }
        }
        position &+= UInt64(count)
    }

    /// Fills a whole tensor with uniforms in [low, high).
    public mutating func fillUniform(_ t: Tensor, low: Float = 0, high: Float = 1) {
        fillUniform(t.data, count: t.count, low: low, high: high)
    }

    /// Fills a whole tensor with normals N(mean, std²).
    public mutating func fillNormal(_ t: Tensor, mean: Float = 0, std: Float = 1) {
        fillNormal(t.data, count: t.count, mean: mean, std: std)
    }

    // MARK: single draws

    /// The next word.
    public mutating func nextUInt32() -> UInt32 {
        defer { position &+= 1 }
        return word(at: position)
    }

    /// Two words, the first one high.
    public mutating func nextUInt64() -> UInt64 {
        let hi = nextUInt32()
        return UInt64(hi) << 32 | UInt64(nextUInt32())
    }

    /// One uniform in [0, 1) (one word); the same number `fillUniform` would give here.
    public mutating func nextUniform() -> Float { RandomStream.unit(nextUInt32()) }

    /// One standard normal (one word); the same number `fillNormal` would give here.
    public mutating func nextNormal() -> Float { RandomStream.normal(nextUInt32()) }

    /// One integer in 0..<bound, unbiased: a 64-bit draw (two words), redrawn in the rare
    /// case (probability < bound/2⁶⁴) that it falls in the incomplete last copy of 0..<bound.
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0, "nextInt(below:) needs a positive bound, got \(bound)")
        let b = UInt64(bound)
        let limit = UInt64.max - (UInt64.max % b)  // a multiple of b: 0..<limit is unbiased
        while true {
            let x = nextUInt64()
            if x < limit { return Int(x % b) }
        }
    }

    /// A seeded Fisher–Yates permutation of 0..<n (n − 1 calls to `nextInt`).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<max(n, 0))
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, nextInt(below: i + 1)) }
        }
        return p
    }
}

/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11):
/// a counter-based generator. Block `i` of stream `s` under seed `k` is a pure function
/// of (k, s, i), so a fill split over any number of threads gives the same bits, and the
/// whole generator state is two integers (seed and position) that a checkpoint can store.
public enum Philox {
    @inlinable @inline(__always)
    static func mulhilo(_ a: UInt32, _ b: UInt32) -> (hi: UInt32, lo: UInt32) {
        let p = UInt64(a) &* UInt64(b)
        return (UInt32(truncatingIfNeeded: p >> 32), UInt32(truncatingIfNeeded: p))
    }

    /// Ten rounds of Philox4x32 on `counter` under `key`.
    @inlinable
    public static func block(_ counter: SIMD4<UInt32>, key: SIMD2<UInt32>) -> SIMD4<UInt32> {
        var c = counter, k = key
        for _ in 0..<10 {
            let (hi0, lo0) = mulhilo(0xD251_1F53, c[0])
            let (hi1, lo1) = mulhilo(0xCD9E_8D57, c[2])
            c = SIMD4(hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0)
            k &+= SIMD2(0x9E37_79B9, 0xBB67_AE85)
        }
        return c
    }
}

/// A reproducible random stream: `(seed, stream)` picks the sequence, `position` counts the
/// Philox blocks consumed. Copying the struct forks it; storing it checkpoints it.
///
/// Uniforms use 24 bits per number (`(x >> 8) · 2⁻²⁴`); normals use Box–Muller on pairs.
/// A fill of `n` uniforms consumes ⌈n/4⌉ blocks, a fill of `n` normals ⌈n/2⌉ blocks, so the
/// stream position after a fill never depends on how the fill was split across threads.
public struct RandomStream: Sendable, Codable, Equatable {
    public var seed: UInt64
    public var stream: UInt32
    public var position: UInt64

    public init(seed: UInt64, stream: UInt32 = 0, position: UInt64 = 0) {
        self.seed = seed
        self.stream = stream
        self.position = position
    }

    @inlinable
    func block(_ index: UInt64) -> SIMD4<UInt32> {
        Philox.block(
            SIMD4(UInt32(truncatingIfNeeded: index), UInt32(truncatingIfNeeded: index >> 32), stream, 0x6C67_656E),
            key: SIMD2(UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
    }

    @inlinable @inline(__always)
    static func unit(_ x: UInt32) -> Float { Float(x >> 8) * 0x1p-24 }          // [0, 1)
    @inlinable @inline(__always)
    static func unitOpen(_ x: UInt32) -> Float { Float((x >> 8) + 1) * 0x1p-24 } // (0, 1]

    /// Fills `count` uniforms in [low, high).
    public mutating func fillUniform(_ out: UnsafeMutablePointer<Float>, count: Int, low: Float = 0, high: Float = 1) {
        let base = position, blocks = (count + 3) / 4, me = self
        Parallel.forRanges(blocks, costPerItem: 40) { r in
            for b in r {
                let v = me.block(base &+ UInt64(b))
                for j in 0..<4 where b * 4 + j < count {
                    out[b * 4 + j] = low + (high - low) * RandomStream.unit(v[j])
                }
            }
        }
        position &+= UInt64(blocks)
    }

    /// Fills `count` normals N(mean, std²) (Box–Muller: two normals per block).
    public mutating func fillNormal(_ out: UnsafeMutablePointer<Float>, count: Int, mean: Float = 0, std: Float = 1) {
        let base = position, blocks = (count + 1) / 2, me = self
        Parallel.forRanges(blocks, costPerItem: 60) { r in
            for b in r {
                let v = me.block(base &+ UInt64(b))
                let u1 = Double(RandomStream.unitOpen(v[0])), u2 = Double(RandomStream.unit(v[1]))
                let radius = (-2.0 * _log(u1)).squareRoot(), angle = 2.0 * Double.pi * u2
                out[b * 2] = mean + std * Float(radius * _cos(angle))
                if b * 2 + 1 < count { out[b * 2 + 1] = mean + std * Float(radius * _sin(angle)) }
            }
        }
        position &+= UInt64(blocks)
    }

    /// One uniform in [0, 1) (consumes one block).
    public mutating func nextUniform() -> Float {
        let v = block(position)
        position &+= 1
        return RandomStream.unit(v[0])
    }

    /// One integer in 0..<bound, unbiased (consumes one block per try; 64-bit draw).
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0)
        let b = UInt64(bound)
        let limit = UInt64.max - (UInt64.max % b)
        while true {
            let v = block(position)
            position &+= 1
            let x = UInt64(v[0]) << 32 | UInt64(v[1])
            if x < limit { return Int(x % b) }
        }
    }

    /// A seeded Fisher–Yates permutation of 0..<n.
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, nextInt(below: i + 1)) }
        }
        return p
    }
}

import Foundation
@usableFromInline func _log(_ x: Double) -> Double { Foundation.log(x) }
@usableFromInline func _cos(_ x: Double) -> Double { Foundation.cos(x) }
@usableFromInline func _sin(_ x: Double) -> Double { Foundation.sin(x) }

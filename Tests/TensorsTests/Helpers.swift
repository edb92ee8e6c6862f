import Testing
@testable import Tensors

/// `n` uniforms in [low, high) from a fixed stream: test inputs that are the same on every run.
func randomArray(_ n: Int, seed: UInt64, low: Float = -1, high: Float = 1) -> [Float] {
    var rng = RandomStream(seed: seed, stream: 99)
    var a = [Float](repeating: 0, count: n)
    a.withUnsafeMutableBufferPointer { rng.fillUniform($0.baseAddress!, count: n, low: low, high: high) }
    return a
}

/// Runs `body` once per worker count and returns the results, for "same bits whatever the
/// worker count" checks. 3 workers on 2 cores is deliberate: an uneven split.
func perWorkerCount<T>(_ counts: [Int] = [1, 2, 3], _ body: () -> T) -> [T] {
    counts.map { n in Parallel.withWorkers(n) { body() } }
}

/// Float arrays compared bit for bit (so that NaNs and signed zeros count too).
func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

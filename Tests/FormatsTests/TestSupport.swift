/// Knuth's MMIX linear congruential generator: deterministic test bytes without depending
/// on the Tensors RNG (whose stream is not part of these tests' contract).
func lcg(_ state: inout UInt64) -> UInt64 {
    state = state &* 6364136223846793005 &+ 1442695040888963407
    return state
}

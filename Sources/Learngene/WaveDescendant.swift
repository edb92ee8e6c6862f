import DiT
import Foundation
import Tensors

/// How a WAVE descendant's scalers start (its templates are always the learngene's).
public enum WaveScalerInit: String, Codable, Sendable, CaseIterable {
    /// From the ancestry's scalers: linear interpolation in depth, nearest-neighbour
    /// resampling of the scaler grid for another width (see `descendant(for:scalers:seed:)`).
    case interpolate
    /// Fresh random scalers, N(0, (1/N)·(C/C′)), adaLN scalers zero (adaLN-Zero).
    case random
}

extension WaveParameterization {
    /// A WAVE parameterization of `target` that shares this one's templates (the learngene,
    /// copied bit for bit) with new scalers for the target's depth and width — WAVE's
    /// "concatenating and weighting templates" for a variable-sized model (methods.md §4.2,
    /// stage 2). Train it with `LearngeneTrainer(phase: .initialize)` (scalers only), then
    /// the whole model.
    ///
    /// The target may change the depth and the width (hidden size, MLP ratio); every
    /// template size must divide the target's matrices (so the width must be a multiple of
    /// the template sizes). With `.interpolate`:
    /// - **Depth**: descendant layer l′ sits at ancestry position p = l′·(L−1)/(L′−1)
    ///   (`LayerMapping.position`, as FINE's and the host's biases); its scalers are the linear
    ///   interpolation (1 − f)·S^(⌊p⌋) + f·S^(⌊p⌋+1), f = p − ⌊p⌋.
    /// - **Width**: the target's larger (or smaller) grid of A′ × C′ scaler tiles is the
    ///   ancestry's A × C grid resampled by nearest neighbour, a′ → ⌊(a′ + ½)·A/A′⌋ (likewise
    ///   c′), so every tile of the wider matrix reuses the weighting of the tile it covers;
    ///   for an integer ratio each ancestry tile is repeated, and the q/k/v and the six adaLN
    ///   chunks map onto themselves. The result is multiplied by √(C/C′): an output then sums
    ///   C′/C times more input tiles, and this keeps its variance (for independent inputs)
    ///   at the ancestry's, as Xavier's fan-in scaling would.
    /// With `.random`, scalers are N(0, (1/N)·(C/C′)) and the adaLN scalers zero.
    public func descendant(for target: DiTConfig, scalers initialization: WaveScalerInit = .interpolate,
                           seed: UInt64 = 0) throws -> WaveParameterization {
        let problems = settings.problems(for: target)
        guard target.problems().isEmpty, problems.isEmpty else {
            throw LearngeneError("the WAVE learngene (templates \(settings.summary)) cannot serve a DiT of hidden size \(target.hiddenSize), mlp ratio \(target.mlpRatio): "
                            + (target.problems() + problems).joined(separator: "; ") + ". Pick a width whose matrices the templates tile")
        }
        let d = try WaveParameterization(config: target, settings: settings)
        d.params.data.update(from: params.data, count: learngeneCount)  // the templates, same layout
        let L = config.depth, L2 = target.depth
        for m in BlockMatrix.allCases {
            let s = shapes[m.rawValue], s2 = d.shapes[m.rawValue]
            let N = s.count, (A, C, A2, C2) = (s.gridRows, s.gridCols, s2.gridRows, s2.gridCols)
            let widthScale = (Double(C) / Double(C2)).squareRoot()
            switch initialization {
            case .random:
                var rng = RandomStream(seed: seed, stream: 0x5CA1_0000 + UInt32(m.rawValue))
                let count = L2 * N * s2.scalerSize
                if m == .adaLN {
                    d.scalers(m, layer: 0).update(repeating: 0, count: count)
                } else {
                    rng.fillNormal(d.scalers(m, layer: 0), count: count, std: Float(widthScale / Double(N).squareRoot()))
                }
            case .interpolate:
                let rowMap = (0..<A2).map { min(A - 1, Int((Double($0) + 0.5) * Double(A) / Double(A2))) }
                let colMap = (0..<C2).map { min(C - 1, Int((Double($0) + 0.5) * Double(C) / Double(C2))) }
                for l2 in 0..<L2 {
                    let p = LayerMapping.position(l2, depth: L2, ancestryDepth: L)
                    let lo = min(L - 1, Int(p.rounded(.down))), hi = min(L - 1, lo + 1), f = p - Double(lo)
                    let a0 = scalers(m, layer: lo), a1 = scalers(m, layer: hi), out = d.scalers(m, layer: l2)
                    for t in 0..<N {
                        for i in 0..<A2 {
                            for j in 0..<C2 {
                                let k = t * A * C + rowMap[i] * C + colMap[j]
                                let v = (1 - f) * Double(a0[k]) + f * Double(a1[k])
                                out[t * A2 * C2 + i * C2 + j] = Float(widthScale * v)
                            }
                        }
                    }
                }
            }
        }
        return d
    }

    /// The host DiT of a WAVE descendant of `target` grown from `ancestry` (the host of the
    /// condensed learngene): everything outside the block weight matrices.
    /// - **Same width** (hidden size and MLP ratio): `DescendantHost.build` — the embedders,
    ///   final layer and (depth-mapped) block biases are the ancestry's.
    /// - **Another width**: nothing outside the blocks can be copied (every embedder, bias
    ///   and the final layer has the hidden size in its shape), so the host is **a fresh
    ///   DiT initialization** (`initializeWeights(seed:)`: Xavier, zero biases, adaLN-Zero,
    ///   zero final layer); only the templates carry the ancestry's knowledge. **Caveat**:
    ///   with that zero final layer no gradient reaches the blocks, so a width descendant
    ///   whose host stays frozen (`LearngeneTrainer`'s `.initialize`) gets zero scaler
    ///   gradients; train the host's non-block parameters along with the scalers (e.g. the
    ///   `.condense` phase, which trains everything) or go straight to full training.
    public static func descendantHost(target: DiTConfig, ancestry: DiTModel, seed: UInt64 = 0) throws -> DiTModel {
        let a = ancestry.config
        if a.hiddenSize == target.hiddenSize && a.mlpRatio == target.mlpRatio {
            return try DescendantHost.build(target: target, ancestry: ancestry, method: .wave, seed: seed)
        }
        let problems = target.problems()
        guard problems.isEmpty else { throw LearngeneError("descendant config is invalid: \(problems.joined(separator: "; "))") }
        let host = DiTModel(config: target)
        host.initializeWeights(seed: seed)
        return host
    }

    /// A descendant's host and WAVE parameterization, hooked together
    /// (`host.blockWeights` set): `descendantHost` plus `descendant(for:scalers:seed:)`.
    public func descendantModel(target: DiTConfig, ancestryHost: DiTModel, scalers: WaveScalerInit = .interpolate,
                                seed: UInt64 = 0) throws -> (host: DiTModel, wave: WaveParameterization) {
        let wave = try descendant(for: target, scalers: scalers, seed: seed)
        let host = try Self.descendantHost(target: target, ancestry: ancestryHost, seed: seed)
        host.blockWeights = wave
        return (host, wave)
    }
}

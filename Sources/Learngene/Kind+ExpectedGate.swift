import DiT
import Tensors

extension KindParameterization {
    /// Scales each tailor's σ by the share of the classes (null class excluded) whose gate
    /// opens it, in place: afterwards `denseWeight` is the class-averaged matrix a plain DiT
    /// can hold (learngenes at full weight; with `partition` gates each tailor at 1/K). Used
    /// to export a KIND descendant as a dense DiT; save and restore `params` around it.
    public func scaleTailorsByGateShare() {
        let K = config.numClasses
        guard K > 0 else { return }
        for m in BlockMatrix.allCases {
            let (r, g) = components[m]!
            guard r > g else { continue }
            var share = [Float](repeating: 0, count: r)
            for c in 0..<K {
                let row = mask(m, label: c)
                for k in g..<r { share[k] += row[k] }
            }
            for l in 0..<config.depth {
                let s = sigma(m, layer: l)
                for k in g..<r { s[k] *= share[k] / Float(K) }
            }
        }
    }
}

import Tensors

// WAVE's sum of Kronecker products, computed by reshaping (methods.md §4.1, tile-and-weight
// order). Glossary: W (m1×m2) one block matrix; N templates T_t (w1×w2); scalers S_t (A×C)
// with A = m1/w1, C = m2/w2; B = w1, D = w2 (so a template has B·D entries).
//
// Viewing W as a 4-D array [a, b, c, d] with row = a·w1 + b and column = c·w2 + d,
//     W[a, b, c, d] = Σ_t S_t[a, c] · T_t[b, d],
// i.e. block (a, c) of W is Σ_t S_t[a, c]·T_t: W = Σ_t S_t ⊗ T_t. With the scalers stored as
// an (N × A·C) matrix 𝐒 and the templates as an (N × B·D) matrix 𝐓, the "rearranged" matrix
// R = 𝐒ᵀ𝐓 (A·C × B·D), R[(a, c), (b, d)] = W[a, b, c, d], is one sgemm; W is R with its axes
// permuted (b ↔ c), which moves contiguous runs of w2 floats. No Kronecker product is ever
// formed as a matrix. The backward permutes dW the other way into P = R(dW) and takes
//     d𝐒 += 𝐓 · Pᵀ   (N × A·C),        d𝐓 += 𝐒 · P   (N × B·D).

/// The shape of one WAVE-parameterized matrix: W (rows × cols) = Σ_{t<count} S_t ⊗ T_t with
/// templates T_t (tileRows × tileCols) and scalers S_t (gridRows × gridCols).
public struct KroneckerShape: Sendable, Equatable, Hashable {
    public var rows: Int, cols: Int
    public var tileRows: Int, tileCols: Int
    public var count: Int
    public init(rows: Int, cols: Int, tileRows: Int, tileCols: Int, count: Int) {
        precondition(tileRows > 0 && tileCols > 0 && rows % tileRows == 0 && cols % tileCols == 0 && count > 0,
                     "Kronecker shape: the tile \(tileRows)×\(tileCols) must divide the matrix \(rows)×\(cols) (count \(count))")
        self.rows = rows
        self.cols = cols
        self.tileRows = tileRows
        self.tileCols = tileCols
        self.count = count
    }
    /// A = m1/w1 and C = m2/w2: the scaler grid.
    public var gridRows: Int { rows / tileRows }
    public var gridCols: Int { cols / tileCols }
    /// Floats in one template (w1·w2) and in one scaler grid (A·C).
    public var templateSize: Int { tileRows * tileCols }
    public var scalerSize: Int { gridRows * gridCols }
}

/// Van Loan–Pitsianis's rearrangement of one matrix and its inverse:
/// R[a·C + c, b·w2 + d] = W[a·w1 + b, c·w2 + d], R (A·C × B·D), W (m1 × m2).
/// `toRearranged` copies W → R, otherwise R → W (runs of w2 contiguous floats either way).
@inline(__always)
func kroneckerRearrange(_ s: KroneckerShape, _ W: UnsafeMutablePointer<Float>, _ R: UnsafeMutablePointer<Float>, toRearranged: Bool) {
    let (A, C, w1, w2, m2) = (s.gridRows, s.gridCols, s.tileRows, s.tileCols, s.cols)
    for a in 0..<A {
        for c in 0..<C {
            for b in 0..<w1 {
                let r = R + (a * C + c) * (w1 * w2) + b * w2, w = W + (a * w1 + b) * m2 + c * w2
                if toRearranged { r.update(from: w, count: w2) } else { w.update(from: r, count: w2) }
            }
        }
    }
}

/// W (m1 × m2) = Σ_t S_t ⊗ T_t. `scalers` holds N grids (A × C) back to back, `templates` N
/// tiles (w1 × w2); `scratch` needs m1·m2 floats (the rearranged product R).
public func kroneckerSumForward(out W: UnsafeMutablePointer<Float>, scratch R: UnsafeMutablePointer<Float>,
                                scalers S: UnsafePointer<Float>, templates T: UnsafePointer<Float>, shape s: KroneckerShape) {
    // R (A·C × B·D) = 𝐒ᵀ (A·C × N) · 𝐓 (N × B·D); 𝐒 is stored (N × A·C).
    Blas.tn(m: s.scalerSize, n: s.templateSize, k: s.count, a: S, b: T, c: R)
    kroneckerRearrange(s, W, R, toRearranged: false)
}

/// The backward of `kroneckerSumForward`: dS += ∂/∂S and dT += ∂/∂T of ⟨dW, W⟩ (accumulated,
/// like every backward kernel). `scratch` needs m1·m2 floats.
public func kroneckerSumBackward(dScalers dS: UnsafeMutablePointer<Float>, dTemplates dT: UnsafeMutablePointer<Float>,
                                 scratch P: UnsafeMutablePointer<Float>, dOut dW: UnsafePointer<Float>,
                                 scalers S: UnsafePointer<Float>, templates T: UnsafePointer<Float>, shape s: KroneckerShape) {
    kroneckerRearrange(s, UnsafeMutablePointer(mutating: dW), P, toRearranged: true)
    // d𝐒 (N × A·C) += 𝐓 (N × B·D) · Pᵀ;  d𝐓 (N × B·D) += 𝐒 (N × A·C) · P.
    Blas.nt(m: s.count, n: s.scalerSize, k: s.templateSize, a: T, b: P, c: dS, beta: 1)
    Blas.nn(m: s.count, n: s.templateSize, k: s.scalerSize, a: S, b: P, c: dT, beta: 1)
}

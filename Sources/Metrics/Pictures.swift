import Foundation
import Images
import Tensors

/// A grid of sample images as one 8-bit picture.
public enum SampleGrid {
    /// Lays out `images` (N, C, H, W) in [-1, 1], C = 1 (gray) or 3 (RGB), row by row:
    /// image i goes to row i / cols, column i % cols; missing cells stay background.
    /// Pixels are converted as DiT's `sample.py` does, `clamp(127.5·x + 128, 0, 255)`
    /// truncated, so the grid shows the same bytes as `samples.npz`. `scale` repeats each
    /// pixel (28-pixel images are small on a screen); `padding` pixels of `background`
    /// separate and surround the cells.
    public static func render(images: Tensor, rows: Int, cols: Int, padding: Int = 2, scale: Int = 1,
                              background: UInt8 = 255) -> Image {
        precondition(images.shape.count == 4 && (images.shape[1] == 1 || images.shape[1] == 3),
                     "SampleGrid.render: images must be (N, 1 or 3, H, W), got \(images.shape)")
        precondition(rows >= 1 && cols >= 1 && padding >= 0 && scale >= 1, "SampleGrid.render: rows, cols, scale ≥ 1, padding ≥ 0")
        let n = images.shape[0], c = images.shape[1], h = images.shape[2], w = images.shape[3]
        let cellW = w * scale, cellH = h * scale
        let width = cols * cellW + (cols + 1) * padding, height = rows * cellH + (rows + 1) * padding
        var pixels = [UInt8](repeating: background, count: width * height * c)
        for i in 0..<min(n, rows * cols) {
            let x0 = padding + (i % cols) * (cellW + padding), y0 = padding + (i / cols) * (cellH + padding)
            for y in 0..<cellH {
                for x in 0..<cellW {
                    for ch in 0..<c {
                        let v = images.data[((i * c + ch) * h + y / scale) * w + x / scale]
                        let p = min(max(127.5 * v + 128, 0), 255)
                        pixels[((y0 + y) * width + x0 + x) * c + ch] = p.isNaN ? 0 : UInt8(p)
                    }
                }
            }
        }
        return Image(width: width, height: height, channels: c, pixels: pixels)
    }

    /// Real images beside generated ones, one row per class: `perClass` real images of the
    /// class (the first ones in `real`'s order), a gap, then `perClass` samples conditioned on
    /// it. A class with fewer images leaves its cells blank. Rows follow the class order
    /// 0…K−1. Each image's cells are as in `render`.
    public static func realBesideGenerated(real: Tensor, realLabels: [Int], samples: Tensor, sampleLabels: [Int],
                                           classes: Int, perClass: Int = 5, padding: Int = 2, scale: Int = 2) -> Image {
        precondition(real.shape.count == 4 && samples.shape.count == 4 && Array(real.shape.dropFirst()) == Array(samples.shape.dropFirst()),
                     "realBesideGenerated: real \(real.shape) and samples \(samples.shape) must be (N, C, H, W) of one size")
        precondition(realLabels.count == real.shape[0] && sampleLabels.count == samples.shape[0], "one label per image")
        let c = real.shape[1], h = real.shape[2], w = real.shape[3], per = c * h * w
        // One picture of 2·perClass + 1 columns; the middle column stays blank (the gap).
        let cols = 2 * perClass + 1
        let cells = Tensor(shape: [classes * cols, c, h, w])
        var filled = [Bool](repeating: false, count: classes * cols)
        func place(_ source: Tensor, _ labels: [Int], offset: Int) {
            var taken = [Int](repeating: 0, count: classes)
            for (i, k) in labels.enumerated() where k >= 0 && k < classes && taken[k] < perClass {
                let cell = k * cols + offset + taken[k]
                (cells.data + cell * per).update(from: source.data + i * per, count: per)
                filled[cell] = true
                taken[k] += 1
            }
        }
        place(real, realLabels, offset: 0)
        place(samples, sampleLabels, offset: perClass + 1)
        // Blank cells take the background: render them as white (+1 maps to 255).
        for cell in 0..<filled.count where !filled[cell] { (cells.data + cell * per).update(repeating: 1, count: per) }
        return render(images: cells, rows: classes, cols: cols, padding: padding, scale: scale)
    }
}

/// A loss curve drawn as a picture by a small rasterizer of its own (no plotting library or
/// font exists offline): axes, a light grid, tick labels in a built-in 3×5 pixel font, the
/// raw values as a thin light line and their exponential moving average (TensorBoard's
/// smoothing, bias-corrected) as a thick dark one. The default smoothing averages over about
/// 2% of the points (a fixed factor lags far behind a short curve and hardly smooths a long one). The y axis is logarithmic when the values
/// span more than a factor of 20 (diffusion losses fall from ~1 to a few hundredths, and a
/// linear axis flattens everything after the first steps). Drawn at twice the size and
/// averaged down, so lines are antialiased.
public enum LossCurvePlot {
    public static func render(steps: [Int], values: [Double], width: Int = 720, height: Int = 400,
                              smoothing: Double? = nil, title: String = "LOSS") -> Image {
        precondition(steps.count == values.count, "LossCurvePlot: \(steps.count) steps for \(values.count) values")
        let ss = 2  // supersampling
        var canvas = Canvas(width: width * ss, height: height * ss)
        let points = zip(steps, values).filter { $0.1.isFinite }
        let left = 64 * ss, right = 16 * ss, top = 20 * ss, bottom = 36 * ss
        let plotW = canvas.width - left - right, plotH = canvas.height - top - bottom
        let ink: RGB = (40, 40, 40), grid: RGB = (228, 228, 228)
        canvas.text(title, x: left, y: 6 * ss, scale: 2 * ss, color: ink)
        guard !points.isEmpty, plotW > 10, plotH > 10 else {
            canvas.rect(x: left, y: top, w: plotW, h: plotH, color: ink)
            return canvas.downsampled(by: ss)
        }
        let xs = points.map { Double($0.0) }, ys = points.map(\.1)
        var xMin = xs.min()!, xMax = xs.max()!
        if xMax == xMin { xMin -= 1; xMax += 1 }
        let yLo = ys.min()!, yHi = ys.max()!
        let logScale = yLo > 0 && yHi / yLo > 20
        let f: (Double) -> Double = logScale ? { Foundation_log10($0) } : { $0 }
        var (yMin, yMax) = (f(yLo), f(yHi))
        if yMax - yMin < 1e-12 { yMin -= 0.5; yMax += 0.5 }
        let pad = (yMax - yMin) * 0.05
        yMin -= pad; yMax += pad
        func px(_ x: Double) -> Int { left + Int(((x - xMin) / (xMax - xMin) * Double(plotW - 1)).rounded()) }
        func py(_ y: Double) -> Int { top + plotH - 1 - Int(((f(y) - yMin) / (yMax - yMin) * Double(plotH - 1)).rounded()) }

        // Grid and tick labels.
        for t in Ticks.linear(xMin, xMax, target: 6) {
            let x = px(t)
            canvas.line(x, top, x, top + plotH - 1, thickness: 1, color: grid)
            let label = Ticks.label(t)
            canvas.text(label, x: x - Canvas.textWidth(label, scale: 2 * ss) / 2, y: top + plotH + 6 * ss, scale: 2 * ss, color: ink)
        }
        let yTicks = logScale ? Ticks.logarithmic(yLo, yHi) : Ticks.linear(yMin, yMax, target: 6)
        for t in yTicks {
            let y = py(t)
            guard y >= top && y < top + plotH else { continue }
            canvas.line(left, y, left + plotW - 1, y, thickness: 1, color: grid)
            let label = Ticks.label(t)
            canvas.text(label, x: left - 6 * ss - Canvas.textWidth(label, scale: 2 * ss), y: y - 5 * ss, scale: 2 * ss, color: ink)
        }
        canvas.rect(x: left, y: top, w: plotW, h: plotH, color: ink)
        canvas.text("STEP", x: left + plotW - Canvas.textWidth("STEP", scale: 2 * ss), y: top + plotH + 20 * ss, scale: 2 * ss, color: ink)
        if logScale { canvas.text("LOG", x: 8 * ss, y: top, scale: 2 * ss, color: ink) }

        // Raw values, then the smoothed curve over them.
        let rawColor: RGB = (160, 190, 230), smoothColor: RGB = (20, 70, 160)
        for i in 1..<max(1, points.count) {
            canvas.line(px(xs[i - 1]), py(ys[i - 1]), px(xs[i]), py(ys[i]), thickness: ss, color: rawColor)
        }
        let smoothing = smoothing ?? max(0, 1 - 1 / max(1, Double(points.count) / 50))
        var ema = 0.0, weight = 0.0
        var smooth: [Double] = []
        for y in ys {
            ema = smoothing * ema + (1 - smoothing) * y
            weight = smoothing * weight + (1 - smoothing)
            smooth.append(ema / weight)
        }
        if points.count == 1 {
            canvas.fill(x: px(xs[0]) - 2 * ss, y: py(ys[0]) - 2 * ss, w: 4 * ss, h: 4 * ss, color: smoothColor)
        }
        for i in 1..<max(1, points.count) {
            canvas.line(px(xs[i - 1]), py(smooth[i - 1]), px(xs[i]), py(smooth[i]), thickness: 2 * ss, color: smoothColor)
        }
        // Legend, top right.
        let lx = left + plotW - 70 * ss, ly = top + 8 * ss
        canvas.line(lx, ly + 5 * ss, lx + 16 * ss, ly + 5 * ss, thickness: ss, color: rawColor)
        canvas.text("RAW", x: lx + 22 * ss, y: ly, scale: 2 * ss, color: ink)
        canvas.line(lx, ly + 19 * ss, lx + 16 * ss, ly + 19 * ss, thickness: 2 * ss, color: smoothColor)
        canvas.text("EMA", x: lx + 22 * ss, y: ly + 14 * ss, scale: 2 * ss, color: ink)
        return canvas.downsampled(by: ss)
    }
}

@inline(__always) func Foundation_log10(_ x: Double) -> Double { log10(x) }

typealias RGB = (r: UInt8, g: UInt8, b: UInt8)

/// Tick positions at 1-2-5 steps and short labels ("0.05", "2k", "1.5M").
enum Ticks {
    static func linear(_ lo: Double, _ hi: Double, target: Int) -> [Double] {
        let raw = (hi - lo) / Double(max(1, target))
        guard raw > 0, raw.isFinite else { return [lo] }
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        var t = ceil(lo / step) * step
        var out: [Double] = []
        while t <= hi + step * 1e-9 && out.count < 50 {
            out.append(abs(t) < step * 1e-9 ? 0 : t)
            t += step
        }
        return out
    }

    /// 1, 2 and 5 times powers of ten between lo and hi (only the powers when there are many decades).
    static func logarithmic(_ lo: Double, _ hi: Double) -> [Double] {
        let d0 = Int(floor(log10(lo))), d1 = Int(ceil(log10(hi)))
        let factors: [Double] = d1 - d0 > 3 ? [1] : [1, 2, 5]
        var out: [Double] = []
        for d in d0...d1 { for f in factors { let v = f * pow(10, Double(d)); if v >= lo * 0.999 && v <= hi * 1.001 { out.append(v) } } }
        return out
    }

    static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e6 { return trim(v / 1e6) + "M" }
        if a >= 1e4 { return trim(v / 1e3) + "K" }
        if a >= 1 { return trim(v) }
        if a >= 1e-4 {
            // Enough decimals for two significant digits.
            let decimals = max(1, Int(-floor(log10(a))) + 1)
            return trim(v, decimals: decimals)
        }
        let e = Int(floor(log10(a)))
        return trim(v / pow(10, Double(e))) + "E" + String(e)
    }

    static func trim(_ v: Double, decimals: Int = 2) -> String {
        var s = String(format: "%.\(decimals)f", v)
        if s.contains(".") {
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
        }
        return s
    }
}

/// An RGB raster with the few drawing operations the plot needs.
struct Canvas {
    let width: Int, height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 255, count: width * height * 3)
    }

    mutating func set(_ x: Int, _ y: Int, _ c: RGB) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.r; pixels[i + 1] = c.g; pixels[i + 2] = c.b
    }

    mutating func fill(x: Int, y: Int, w: Int, h: Int, color: RGB) {
        for yy in max(0, y)..<min(height, y + h) { for xx in max(0, x)..<min(width, x + w) { set(xx, yy, color) } }
    }

    /// A rectangle's outline, 2 pixels wide (1 after downsampling).
    mutating func rect(x: Int, y: Int, w: Int, h: Int, color: RGB) {
        fill(x: x, y: y, w: w, h: 2, color: color)
        fill(x: x, y: y + h - 2, w: w, h: 2, color: color)
        fill(x: x, y: y, w: 2, h: h, color: color)
        fill(x: x + w - 2, y: y, w: 2, h: h, color: color)
    }

    /// Bresenham, stamping a square of `thickness` pixels at every step.
    mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, thickness: Int, color: RGB) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        let half = thickness / 2
        while true {
            fill(x: x - half, y: y - half, w: thickness, h: thickness, color: color)
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    /// 3×5 glyphs, one row per string, '#' = ink: digits, the characters numbers need, every
    /// capital letter and a little punctuation (titles are upper-cased before drawing).
    static let glyphs: [Character: [String]] = [
        "0": ["###", "#.#", "#.#", "#.#", "###"], "1": [".#.", "##.", ".#.", ".#.", "###"],
        "2": ["###", "..#", "###", "#..", "###"], "3": ["###", "..#", "###", "..#", "###"],
        "4": ["#.#", "#.#", "###", "..#", "..#"], "5": ["###", "#..", "###", "..#", "###"],
        "6": ["###", "#..", "###", "#.#", "###"], "7": ["###", "..#", "..#", "..#", "..#"],
        "8": ["###", "#.#", "###", "#.#", "###"], "9": ["###", "#.#", "###", "..#", "###"],
        ".": ["...", "...", "...", "...", ".#."], "-": ["...", "...", "###", "...", "..."],
        "+": ["...", ".#.", "###", ".#.", "..."], " ": ["...", "...", "...", "...", "..."],
        "A": [".#.", "#.#", "###", "#.#", "#.#"], "E": ["###", "#..", "##.", "#..", "###"],
        "G": [".##", "#..", "#.#", "#.#", ".##"], "K": ["#.#", "#.#", "##.", "#.#", "#.#"],
        "L": ["#..", "#..", "#..", "#..", "###"], "M": ["#.#", "###", "###", "#.#", "#.#"],
        "O": [".#.", "#.#", "#.#", "#.#", ".#."], "P": ["##.", "#.#", "##.", "#..", "#.."],
        "R": ["##.", "#.#", "##.", "#.#", "#.#"], "S": [".##", "#..", ".#.", "..#", "##."],
        "T": ["###", ".#.", ".#.", ".#.", ".#."], "W": ["#.#", "#.#", "###", "###", "#.#"],
        "B": ["##.", "#.#", "##.", "#.#", "##."], "C": [".##", "#..", "#..", "#..", ".##"],
        "D": ["##.", "#.#", "#.#", "#.#", "##."], "F": ["###", "#..", "##.", "#..", "#.."],
        "H": ["#.#", "#.#", "###", "#.#", "#.#"], "I": ["###", ".#.", ".#.", ".#.", "###"],
        "J": ["..#", "..#", "..#", "#.#", ".#."], "N": ["##.", "#.#", "#.#", "#.#", "#.#"],
        "Q": [".#.", "#.#", "#.#", "##.", ".##"], "U": ["#.#", "#.#", "#.#", "#.#", "###"],
        "V": ["#.#", "#.#", "#.#", "#.#", ".#."], "X": ["#.#", "#.#", ".#.", "#.#", "#.#"],
        "Y": ["#.#", "#.#", ".#.", ".#.", ".#."], "Z": ["###", "..#", ".#.", "#..", "###"],
        "(": [".#.", "#..", "#..", "#..", ".#."], ")": [".#.", "..#", "..#", "..#", ".#."],
        "/": ["..#", "..#", ".#.", "#..", "#.."], ":": ["...", ".#.", "...", ".#.", "..."],
        "_": ["...", "...", "...", "...", "###"], "=": ["...", "###", "...", "###", "..."],
    ]

    static func textWidth(_ s: String, scale: Int) -> Int { max(0, s.count * 4 * scale - scale) }

    /// Draws `s` with its top-left corner at (x, y), each glyph pixel `scale`² pixels.
    mutating func text(_ s: String, x: Int, y: Int, scale: Int, color: RGB) {
        var cx = x
        for ch in s.uppercased() {
            if let g = Self.glyphs[ch] {
                for (row, bits) in g.enumerated() {
                    for (col, bit) in bits.enumerated() where bit == "#" {
                        fill(x: cx + col * scale, y: y + row * scale, w: scale, h: scale, color: color)
                    }
                }
            }
            cx += 4 * scale
        }
    }

    /// Averages `k`×`k` blocks: the antialiasing step.
    func downsampled(by k: Int) -> Image {
        let w = width / k, h = height / k
        var out = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<3 {
                    var s = 0
                    for dy in 0..<k { for dx in 0..<k { s += Int(pixels[((y * k + dy) * width + x * k + dx) * 3 + c]) } }
                    out[(y * w + x) * 3 + c] = UInt8((s + k * k / 2) / (k * k))
                }
            }
        }
        return Image(width: w, height: h, channels: 3, pixels: out)
    }
}

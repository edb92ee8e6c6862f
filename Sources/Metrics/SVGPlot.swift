import Foundation

/// A line plot as SVG, for inlining in `report.html` and `Outbox/index.html`: vector lines,
/// text in the browser's own fonts (crisp at any zoom), a log y axis where values span
/// decades (the loss), a legend when there are several series.
///
/// Ticks and their labels are those of the PNG plotter (`Ticks`: 1-2-5 steps, "2K", "1E-5").
public struct SVGPlot: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]
        /// CSS color; nil takes the next of the palette.
        public var color: String?
        public var lineWidth: Double
        /// Drawn faint (a raw curve under its smoothed one).
        public var faint: Bool
        public init(name: String, points: [(x: Double, y: Double)], color: String? = nil, lineWidth: Double = 1.5, faint: Bool = false) {
            self.name = name
            self.points = points
            self.color = color
            self.lineWidth = lineWidth
            self.faint = faint
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    public var logY: Bool
    public var width: Int
    public var height: Int

    /// Colors that stay apart for the color-blind (Okabe–Ito).
    public static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

    public init(title: String, xLabel: String, yLabel: String, series: [Series], logY: Bool = false, width: Int = 720, height: Int = 300) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.logY = logY
        self.width = width
        self.height = height
    }

    /// TensorBoard's smoothing: an exponential moving average, debiased at the start
    /// (s_k = Σ w^(k−i)(1−w) y_i / (1 − w^(k+1))), so the first points are not pulled to 0.
    public static func smoothed(_ ys: [Double], weight: Double = 0.9) -> [Double] {
        var acc = 0.0, norm = 0.0
        return ys.map { y in
            acc = acc * weight + (1 - weight) * y
            norm = norm * weight + (1 - weight)
            return acc / norm
        }
    }

    public func svg() -> String {
        let named = series.filter { !$0.faint && !$0.name.isEmpty }.count
        let hasLegend = named > 1 || (named == 1 && series.count > 1)
        // The legend sits right of the plot, so it never hides a line.
        let left = 64.0, right = hasLegend ? 190.0 : 16.0, top = 30.0, bottom = 44.0
        let plotW = Double(width) - left - right, plotH = Double(height) - top - bottom
        let usable = series.map { s in s.points.filter { $0.x.isFinite && $0.y.isFinite && (!logY || $0.y > 0) } }
        let xs = usable.flatMap { $0.map(\.x) }, ys = usable.flatMap { $0.map(\.y) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" role=\"img\" aria-label=\"\(esc(title))\">"
        svg += "<style>.plot text{font:12px system-ui,-apple-system,\"Segoe UI\",\"DejaVu Sans\",sans-serif;fill:#333}.plot .t{font-weight:600;font-size:13px}.plot .g{stroke:#e6e6e6}</style>"
        svg += "<rect width=\"\(width)\" height=\"\(height)\" fill=\"#fff\"/>"
        svg += "<text class=\"t\" x=\"\(left)\" y=\"18\">\(esc(title))</text>"
        guard let xMin0 = xs.min(), let xMax0 = xs.max(), let yMin0 = ys.min(), let yMax0 = ys.max() else {
            return svg + "<text x=\"\(left)\" y=\"\(top + plotH / 2)\">no data</text></svg>"
        }
        let xMin = xMin0, xMax = xMax0 > xMin0 ? xMax0 : xMin0 + 1
        var yLo = yMin0, yHi = yMax0
        if logY {
            yLo = pow(10, floor(log10(yLo) * 4) / 4); yHi = pow(10, ceil(log10(yHi) * 4) / 4)
            if yHi <= yLo { yHi = yLo * 10 }
        } else {
            let pad = (yHi - yLo) * 0.05
            yLo -= pad; yHi += pad
            if yHi <= yLo { yLo -= 1; yHi += 1 }
        }
        let f: (Double) -> Double = logY ? { log10($0) } : { $0 }
        func px(_ x: Double) -> Double { left + (x - xMin) / (xMax - xMin) * plotW }
        func py(_ y: Double) -> Double { top + plotH - (f(y) - f(yLo)) / (f(yHi) - f(yLo)) * plotH }

        // Grid and ticks.
        for t in Ticks.linear(xMin, xMax, target: 6) {
            let x = fmt(px(t))
            svg += "<line class=\"g\" x1=\"\(x)\" y1=\"\(top)\" x2=\"\(x)\" y2=\"\(top + plotH)\"/>"
            svg += "<text x=\"\(x)\" y=\"\(fmt(top + plotH + 16))\" text-anchor=\"middle\">\(esc(Ticks.label(t)))</text>"
        }
        let yTicks = logY ? Ticks.logarithmic(yLo, yHi) : Ticks.linear(yLo, yHi, target: 5)
        for t in yTicks {
            let y = fmt(py(t))
            svg += "<line class=\"g\" x1=\"\(left)\" y1=\"\(y)\" x2=\"\(left + plotW)\" y2=\"\(y)\"/>"
            svg += "<text x=\"\(fmt(left - 6))\" y=\"\(y)\" text-anchor=\"end\" dominant-baseline=\"middle\">\(esc(Ticks.label(t)))</text>"
        }
        svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(fmt(plotW))\" height=\"\(fmt(plotH))\" fill=\"none\" stroke=\"#999\"/>"
        svg += "<text x=\"\(fmt(left + plotW / 2))\" y=\"\(height - 8)\" text-anchor=\"middle\">\(esc(xLabel))</text>"
        svg += "<text transform=\"translate(14 \(fmt(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(esc(yLabel + (logY ? " (log)" : "")))</text>"

        // Lines, clipped to the plot.
        // A clip id from the title (FNV-1a): stable across runs, distinct between a page's plots.
        let clip = "clip" + String(title.utf8.reduce(UInt32(2_166_136_261)) { ($0 ^ UInt32($1)) &* 16_777_619 }, radix: 16)
        svg += "<clipPath id=\"\(clip)\"><rect x=\"\(left)\" y=\"\(top)\" width=\"\(fmt(plotW))\" height=\"\(fmt(plotH))\"/></clipPath>"
        var legend: [(String, String)] = []
        var next = 0
        for (s, pts) in zip(series, usable) where !pts.isEmpty {
            let color = s.color ?? Self.palette[next % Self.palette.count]
            if s.color == nil { next += 1 }
            let d = pts.enumerated().map { i, p in (i == 0 ? "M" : "L") + fmt(px(p.x)) + " " + fmt(py(p.y)) }.joined(separator: " ")
            let opacity = s.faint ? " stroke-opacity=\"0.3\"" : ""
            if pts.count == 1 {
                svg += "<circle cx=\"\(fmt(px(pts[0].x)))\" cy=\"\(fmt(py(pts[0].y)))\" r=\"3\" fill=\"\(color)\"/>"
            } else {
                svg += "<path d=\"\(d)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"\(fmt(s.lineWidth))\"\(opacity) clip-path=\"url(#\(clip))\"/>"
            }
            if !s.faint && !s.name.isEmpty { legend.append((s.name, color)) }
        }
        if hasLegend {
            var y = top + 10
            for (name, color) in legend {
                svg += "<line x1=\"\(fmt(left + plotW + 10))\" y1=\"\(fmt(y - 4))\" x2=\"\(fmt(left + plotW + 28))\" y2=\"\(fmt(y - 4))\" stroke=\"\(color)\" stroke-width=\"2.5\"/>"
                svg += "<text x=\"\(fmt(left + plotW + 34))\" y=\"\(fmt(y))\">\(esc(name))</text>"
                y += 16
            }
        }
        return svg + "</svg>"
    }

    func fmt(_ v: Double) -> String { String(format: "%.1f", v) }

    func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}

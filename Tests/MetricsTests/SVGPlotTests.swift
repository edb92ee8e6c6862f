import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import Metrics

@Suite struct SVGPlotTests {
    @Test func smoothingIsDebiasedEMA() {
        let s = SVGPlot.smoothed([1, 1, 1, 4], weight: 0.5)
        #expect(s[0] == 1 && s[1] == 1 && s[2] == 1)
        // (0.5·(0.5·(0.5·1·0.5 ... ))) written out: acc = 0.9375 + 2 = ..., checked against the formula.
        let w = 0.5, ys = [1.0, 1, 1, 4]
        var num = 0.0, den = 0.0
        for (i, y) in ys.enumerated() { num += pow(w, Double(3 - i)) * (1 - w) * y; den += pow(w, Double(3 - i)) * (1 - w) }
        #expect(abs(s[3] - num / den) < 1e-12)
    }

    @Test func logAxisPlotIsWellFormedSVG() throws {
        let pts = (1...50).map { (x: Double($0 * 10), y: 1.0 / Double($0)) }
        let plot = SVGPlot(title: "loss", xLabel: "step", yLabel: "loss",
                           series: [.init(name: "raw", points: pts, faint: true),
                                    .init(name: "smoothed", points: zip(pts, SVGPlot.smoothed(pts.map(\.y))).map { ($0.0.x, $0.1) })],
                           logY: true)
        let svg = plot.svg()
        #expect(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(svg.contains(">0.1<") && svg.contains(">0.05<"))  // decade and 1-2-5 ticks
        #expect(svg.contains("(log)"))
        #expect(svg.components(separatedBy: "<path ").count == 3)
        // An XML parser accepts it.
        let doc = try XMLDocument(xmlString: svg, options: [])
        #expect(doc.rootElement()?.name == "svg")
        #expect(plot.svg() == svg)  // deterministic
    }

    @Test func emptyAndDegenerateSeries() throws {
        let empty = SVGPlot(title: "none", xLabel: "x", yLabel: "y", series: []).svg()
        #expect(empty.contains("no data"))
        let flat = SVGPlot(title: "flat", xLabel: "x", yLabel: "y", series: [.init(name: "c", points: [(0, 2), (1, 2)])]).svg()
        _ = try XMLDocument(xmlString: flat, options: [])
        let one = SVGPlot(title: "one", xLabel: "x", yLabel: "y", series: [.init(name: "c", points: [(5, 2)])]).svg()
        #expect(one.contains("<circle"))
        // Non-positive values are left out of a log plot, not drawn at −∞.
        let logged = SVGPlot(title: "l", xLabel: "x", yLabel: "y", series: [.init(name: "c", points: [(0, 0), (1, 1), (2, 0.5)])], logY: true).svg()
        #expect(!logged.contains("\"nan") && !logged.contains(" nan") && !logged.contains("inf\""), "\(logged)")
        #expect(logged.contains("M64.0 "))  // the line starts at the left edge: (0, 0) is dropped, the x range is the kept points'
    }
}

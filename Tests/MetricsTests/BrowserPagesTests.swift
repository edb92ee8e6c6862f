import Foundation
import Images
import RealWeights
import Tensors
import Testing
@testable import Metrics

/// report.html and index.html rendered in a real browser (headless Chromium, through
/// Tools/check_pages.sh): no console message, every image loaded with a size, every SVG with
/// a size. Skipped without chromium; under CI=true (CI installs it) its absence fails.
@Suite struct BrowserPagesTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    @Test func reportAndIndexRenderCleanly() throws {
        let browser = try RealWeights.require("chromium (apt-get install chromium)") {
            ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
        }
        _ = browser
        let outbox = FileManager.default.temporaryDirectory.appendingPathComponent("pages-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: outbox) }
        let dir = outbox + "/demo-job"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)

        // A sample grid and a report with a loss plot, as a training stage writes them.
        let images = Tensor(shape: [4, 1, 8, 8])
        for i in 0..<images.count { images.data[i] = Float(i % 7) / 3 - 1 }
        let grid = SampleGrid.render(images: images, rows: 2, cols: 2)
        try Data(try ImageCodec.encodePNG(grid)).write(to: URL(fileURLWithPath: dir + "/samples.png"))
        let curve = (1...40).map { (x: Double($0 * 10), y: 0.2 / Double($0).squareRoot()) }
        var report = Report(job: "demo-job", stage: "pretrain", resolvedManifest: "stage: pretrain\n",
                            facts: [("steps", "400")], pictures: [.init(caption: "samples", path: "samples.png")])
        report.plots = [("loss", SVGPlot(title: "training loss", xLabel: "step", yLabel: "loss",
                                        series: [.init(name: "loss", points: curve)], logY: true).svg())]
        try Data(report.html().utf8).write(to: URL(fileURLWithPath: dir + "/report.html"))
        let metrics = """
        {"job": "demo-job", "stage": "pretrain", "steps": 400, "loss": {"final": 0.03, "curve": [[10, 0.2], [400, 0.03]]},
         "metrics": {"metrics": {"class_accuracy_pixels": {"value": 0.5, "reference": "demo"}}}}
        """
        try Data(metrics.utf8).write(to: URL(fileURLWithPath: dir + "/metrics.json"))
        try FileManager.default.copyItem(atPath: dir, toPath: outbox + "/demo-job-2")
        let index = try OutboxIndex.write(outbox: outbox)

        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [Self.repository + "/Tools/check_pages.sh", dir + "/report.html", index]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        print(output)
        #expect(p.terminationStatus == 0, "\(output)")
        #expect(output.contains("report.html: 1 images, 1 SVGs"))
        #expect(output.contains("index.html: 4 images, 1 SVGs"))  // two thumbnails and two comparison grids; one loss plot
    }
}

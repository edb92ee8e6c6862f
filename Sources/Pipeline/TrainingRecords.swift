import Formats
import Foundation
import Metrics

/// What a finished training loop leaves beside the model for people to look at: the report's
/// inline SVG plots and the published TensorBoard event file. Both are drawn from the
/// checkpointed curves (`TrainingLoop.State`), so a resumed job shows each step once.
enum TrainingRecords {
    /// One trained model's curves; `name` tells it apart in stages that train several (`init`).
    struct Curves {
        var name = ""
        var loss: [TrainingLoop.LossPoint]
        var metrics: [TrainingLoop.MetricPoint] = []
    }

    /// Loss (raw window means and TensorBoard-smoothed, log axis), learning rate, images/s,
    /// and one plot per metric evaluated during training (against step and against training
    /// seconds).
    static func plots(_ c: Curves, logEvery: Int) -> [(caption: String, svg: String)] {
        var out: [(caption: String, svg: String)] = []
        let curve = c.loss, prefix = c.name.isEmpty ? "" : c.name + ": "
        guard !curve.isEmpty else { return out }
        let steps = curve.map { Double($0.step) }, losses = curve.map(\.loss)
        let smooth = SVGPlot.smoothed(losses, weight: 0.8)
        out.append(("\(prefix)training loss, mean per \(logEvery) steps (faint) and smoothed (TensorBoard's debiased EMA, weight 0.8); log axis",
                    SVGPlot(title: "\(prefix)loss", xLabel: "step", yLabel: "loss",
                            series: [.init(name: "window mean", points: Array(zip(steps, losses)).map { (x: $0.0, y: $0.1) }, faint: true),
                                     .init(name: "smoothed", points: Array(zip(steps, smooth)).map { (x: $0.0, y: $0.1) }, lineWidth: 2)],
                            logY: true).svg()))
        let lrs = curve.compactMap { p in p.lr.map { (x: Double(p.step), y: $0) } }
        if lrs.count > 1 {
            out.append(("\(prefix)learning rate at each window's last step",
                        SVGPlot(title: "\(prefix)learning rate", xLabel: "step", yLabel: "learning rate", series: [.init(name: "", points: lrs)], height: 220).svg()))
        }
        let speed = curve.compactMap { p in p.imagesPerSecond.map { (x: Double(p.step), y: $0) } }
        if speed.count > 1 {
            out.append(("\(prefix)training throughput per window (time inside training steps)",
                        SVGPlot(title: "\(prefix)images/s", xLabel: "step", yLabel: "images/s", series: [.init(name: "", points: speed)], height: 220).svg()))
        }
        for (name, points) in metricCurves(c.metrics) {
            let byStep = points.map { (x: Double($0.step), y: $0.value) }
            let byTime = points.map { (x: $0.seconds, y: $0.value) }
            out.append(("\(prefix)\(name) during training (evaluation.every; \(points.count) evaluations)",
                        SVGPlot(title: "\(prefix)\(name) against step", xLabel: "step", yLabel: name, series: [.init(name: "", points: byStep)], height: 240).svg()))
            out.append(("\(prefix)\(name) against training seconds",
                        SVGPlot(title: "\(prefix)\(name) against training time", xLabel: "training seconds", yLabel: name,
                                series: [.init(name: "", points: byTime)], height: 240).svg()))
        }
        return out
    }

    static func metricCurves(_ curve: [TrainingLoop.MetricPoint]) -> [(name: String, points: [(step: Int, value: Double, seconds: Double)])] {
        return Set(curve.flatMap { $0.values.keys }).sorted().map { name in
            (name, curve.compactMap { p in p.values[name].map { (step: p.step, value: $0, seconds: p.trainSeconds) } })
        }
    }

    /// `<output>/events/`: one TensorBoard event file with the loss, learning rate and
    /// images/s per window, the metrics during training (`eval/…`) and at the end
    /// (`metrics/…`), the sample grids as images and the resolved manifest as text.
    static func writeEvents(output: String, curves: [Curves], finalStep: Int,
                            metrics: MetricsReport?, pictures: [String], manifestYAML: String) throws {
        let w = try TensorBoardEventWriter(directory: output + "/events")
        defer { w.close() }
        var last = Date().timeIntervalSince1970
        for c in curves {
            let prefix = c.name.isEmpty ? "" : c.name + "/"
            for p in c.loss {
                let t = p.time ?? last
                w.scalar(prefix + "train/loss", p.loss, step: p.step, wallTime: t)
                if let lr = p.lr { w.scalar(prefix + "train/learning_rate", lr, step: p.step, wallTime: t) }
                if let r = p.imagesPerSecond { w.scalar(prefix + "train/images_per_second", r, step: p.step, wallTime: t) }
            }
            for p in c.metrics {
                for (k, v) in p.values.sorted(by: { $0.key < $1.key }) { w.scalar(prefix + "eval/" + k, v, step: p.step, wallTime: p.time) }
            }
            last = max(last, c.loss.last?.time ?? last)
        }
        let now = Date().timeIntervalSince1970
        for (name, entry) in (metrics?.metrics ?? [:]).sorted(by: { $0.key < $1.key }) {
            w.scalar("metrics/" + name, entry.value, step: finalStep, wallTime: now)
        }
        for name in pictures {
            guard let bytes = FileManager.default.contents(atPath: output + "/" + name), let size = pngSize(Array(bytes)) else { continue }
            w.image((name as NSString).deletingPathExtension, png: Array(bytes), width: size.width, height: size.height,
                    channels: size.channels, step: finalStep, wallTime: now)
        }
        w.text("manifest", "```yaml\n" + manifestYAML + "\n```", step: finalStep, wallTime: now)
        w.flush()
    }

    /// Width, height and channel count from a PNG's IHDR chunk.
    static func pngSize(_ b: [UInt8]) -> (width: Int, height: Int, channels: Int)? {
        guard b.count >= 26, b[12...15].elementsEqual(Array("IHDR".utf8)) else { return nil }
        func be(_ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }
        let channels: Int
        switch b[25] { case 0: channels = 1; case 2: channels = 3; case 4: channels = 2; case 6: channels = 4; default: channels = 3 }
        return (be(16), be(20), channels)
    }
}

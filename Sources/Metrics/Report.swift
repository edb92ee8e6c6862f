import Foundation

/// `report.html`: one page per job that ties its outputs together — what was run (the
/// resolved manifest), what came out (metrics with their settings, sample grids, the loss
/// curve) and how long it took. Self-contained: styles inline, no scripts, no fonts or
/// anything fetched; images by paths relative to the job's folder, so the folder can be
/// moved or copied whole and the page still shows.
public struct Report: Sendable {
    public struct Picture: Sendable {
        public var caption: String
        /// Relative to the report (e.g. `samples.png`).
        public var path: String
        /// Show pixels as squares when scaled up (sample grids of 28-pixel images); false for plots.
        public var pixelated: Bool
        /// Display width in CSS pixels; nil for the file's own width.
        public var displayWidth: Int?
        public init(caption: String, path: String, pixelated: Bool = true, displayWidth: Int? = nil) {
            self.caption = caption
            self.path = path
            self.pixelated = pixelated
            self.displayWidth = displayWidth
        }
    }

    public var job: String
    public var stage: String
    /// "completed", "failed", ...
    public var status: String
    /// The manifest as resolved (every default filled in), as text (YAML or JSON).
    public var resolvedManifest: String
    public var metrics: MetricsReport?
    /// The dataset's class names, for the per-class recognizability table (indices when empty).
    public var classNames: [String] = []
    /// Other facts worth a line: steps, parameters, images/s, peak memory, final loss.
    public var facts: [(name: String, value: String)]
    public var pictures: [Picture]
    /// Inline SVG plots (loss, learning rate, images/s, metrics over steps), shown before the pictures.
    public var plots: [(caption: String, svg: String)] = []
    /// Seconds per phase (training, sampling, evaluation, ...).
    public var timings: [(name: String, seconds: Double)]
    /// Output files to link (relative paths), e.g. the model and `metrics.json`.
    public var files: [String]
    /// When the page was made (ISO 8601), shown in the header.
    public var generated: String

    public init(job: String, stage: String, status: String = "completed", resolvedManifest: String, metrics: MetricsReport? = nil,
                facts: [(name: String, value: String)] = [], pictures: [Picture] = [], timings: [(name: String, seconds: Double)] = [],
                files: [String] = [], generated: String = ISO8601DateFormatter().string(from: Date())) {
        self.job = job
        self.stage = stage
        self.status = status
        self.resolvedManifest = resolvedManifest
        self.metrics = metrics
        self.facts = facts
        self.pictures = pictures
        self.timings = timings
        self.files = files
        self.generated = generated
    }

    /// The page.
    public func html() -> String {
        var h = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(esc(job)) — learngene report</title>
        <style>
        body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0 auto; max-width: 1100px; padding: 24px; }
        h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
        .sub { color: #666; } .status { display: inline-block; padding: 1px 8px; border-radius: 10px; background: #e6f4ea; color: #1e6b34; font-size: 13px; }
        .status.failed { background: #fce8e6; color: #a50e0e; }
        table { border-collapse: collapse; font-size: 14px; } th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #eee; vertical-align: top; }
        th { background: #f6f6f6; font-weight: 600; } td.num, th.num { white-space: nowrap; } td.num { text-align: right; font-variant-numeric: tabular-nums; font-family: ui-monospace, monospace; }
        .na { color: #999; font-style: italic; } .def { color: #666; font-size: 12px; }
        figure { display: inline-block; margin: 0 24px 16px 0; vertical-align: top; } figcaption { color: #555; font-size: 13px; margin-top: 4px; }
        img.px { image-rendering: pixelated; image-rendering: crisp-edges; } img { border: 1px solid #ddd; max-width: 100%; }
        pre { background: #f6f8fa; border: 1px solid #e4e4e4; padding: 10px; overflow-x: auto; font-size: 12.5px; }
        </style></head><body>
        <h1>\(esc(job))</h1>
        <div class="sub">stage <b>\(esc(stage))</b> · <span class="status\(status == "failed" ? " failed" : "")">\(esc(status))</span> · generated \(esc(generated))</div>

        """
        if !facts.isEmpty {
            h += "<h2>Summary</h2>\n<table>\n"
            for f in facts { h += "<tr><th>\(esc(f.name))</th><td class=\"num\">\(esc(f.value))</td></tr>\n" }
            h += "</table>\n"
        }
        if let metrics {
            h += "<h2>Metrics</h2>\n" + metricsTable(metrics) + recognizabilityTable(metrics)
        }
        if !plots.isEmpty {
            h += "<h2>Training</h2>\n"
            for p in plots { h += "<figure>\(p.svg)<figcaption>\(esc(p.caption))</figcaption></figure>\n" }
        }
        if !pictures.isEmpty {
            h += "<h2>Pictures</h2>\n"
            for p in pictures {
                let width = p.displayWidth.map { " width=\"\($0)\"" } ?? ""
                h += "<figure><img src=\"\(esc(p.path))\" alt=\"\(esc(p.caption))\"\(width)\(p.pixelated ? " class=\"px\"" : "")><figcaption>\(esc(p.caption))</figcaption></figure>\n"
            }
        }
        if !timings.isEmpty {
            h += "<h2>Timings</h2>\n<table>\n<tr><th>phase</th><th>seconds</th></tr>\n"
            for t in timings { h += "<tr><td>\(esc(t.name))</td><td class=\"num\">\(String(format: "%.1f", t.seconds))</td></tr>\n" }
            let total = timings.reduce(0) { $0 + $1.seconds }
            h += "<tr><th>total</th><th class=\"num\">\(String(format: "%.1f", total))</th></tr>\n</table>\n"
        }
        if !files.isEmpty {
            h += "<h2>Files</h2>\n<ul>\n" + files.map { "<li><a href=\"\(esc($0))\">\(esc($0))</a></li>\n" }.joined() + "</ul>\n"
        }
        h += "<h2>Manifest (resolved)</h2>\n<pre>\(esc(resolvedManifest))</pre>\n</body></html>\n"
        return h
    }

    func metricsTable(_ m: MetricsReport) -> String {
        var t = "<table>\n<tr><th>metric</th><th>value</th><th>samples</th><th>reference</th><th>sampler</th><th>steps</th><th>guidance</th><th>seed</th><th>checkpoint</th><th>weights</th><th>input</th></tr>\n"
        for name in (MetricsReport.names + m.metrics.keys.sorted() + m.unavailable.keys.sorted()).uniqued() {
            if let e = m.metrics[name] {
                let s = e.sampling
                let value = abs(e.value) >= 100 ? String(format: "%.2f", e.value) : String(format: "%.4f", e.value)
                t += "<tr><td><b>\(esc(name))</b><div class=\"def\">\(esc(e.definition))</div></td><td class=\"num\">\(value)</td>"
                t += "<td class=\"num\">\(e.samples)</td><td>\(esc(e.reference ?? "—"))\(e.referenceSamples.map { " (\($0))" } ?? "")</td>"
                t += "<td>\(esc(s?.sampler ?? "—"))</td><td class=\"num\">\(s.map { String($0.steps) } ?? "—")</td>"
                t += "<td class=\"num\">\(s.map { String(format: "%g", $0.guidance) } ?? "—")</td><td class=\"num\">\(s.map { String($0.seed) } ?? "—")</td>"
                t += "<td class=\"num\">\(s.map { String($0.checkpointStep) } ?? "—")</td><td>\(esc(s?.weights ?? "—"))</td><td class=\"num\">\(e.inputSize) px</td></tr>\n"
            } else if let why = m.unavailable[name] {
                t += "<tr><td><b>\(esc(name))</b></td><td colspan=\"10\" class=\"na\">not computed: \(esc(why))</td></tr>\n"
            }
        }
        if !m.seconds.isEmpty {
            let parts = m.seconds.keys.sorted().map { "\($0) \(String(format: "%.1f", m.seconds[$0]!)) s" }
            t += "<tr><td colspan=\"11\" class=\"def\">evaluation time: \(esc(parts.joined(separator: ", ")))</td></tr>\n"
        }
        return t + "</table>\n"
    }

    /// Per-class accuracy of the class probe on samples and on held-out real images.
    func recognizabilityTable(_ m: MetricsReport) -> String {
        var t = ""
        for (name, e) in m.metrics.sorted(by: { $0.key < $1.key }) where name.hasPrefix("class_accuracy_") {
            guard let d = e.details, let real = d["real_accuracy"], let ratio = d["ratio"] else { continue }
            t += "<h2>Recognizability (\(esc(name)))</h2>\n<p>samples <b>\(String(format: "%.1f%%", 100 * e.value))</b> recognized as their class, "
            t += "real held-out images \(String(format: "%.1f%%", 100 * real)): ratio <b>\(String(format: "%.2f", ratio))</b> (1 = as recognizable as real images; chance is 1/classes).</p>\n"
            t += "<table>\n<tr><th>class</th><th class=\"num\">samples</th><th class=\"num\">real held-out</th></tr>\n"
            var k = 0
            while let g = d["class_\(k)"] {
                let r = d["real_class_\(k)"] ?? .nan
                let name = k < classNames.count ? classNames[k] : "\(k)"
                func pct(_ v: Double) -> String { v.isNaN ? "—" : String(format: "%.0f%%", 100 * v) }
                t += "<tr><td>\(esc(name))</td><td class=\"num\">\(pct(g))</td><td class=\"num\">\(pct(r))</td></tr>\n"
                k += 1
            }
            t += "</table>\n"
        }
        return t
    }

    func esc(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }
}

extension Array where Element: Hashable {
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}

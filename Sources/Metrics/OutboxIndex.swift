import Formats
import Foundation

/// `Outbox/index.html`: every published job on one page, and the jobs that were measured on
/// the same dataset side by side (the point of the example: learngene descendants against
/// scratch).
///
/// Built from what each job folder already holds (`metrics.json`, `samples.png`,
/// `report.html`), so it can be rebuilt at any time from the Outbox alone; the daemon
/// rewrites it atomically after every publish. The table sorts by any column (a few lines of
/// inline script; the page works without it). Plots are inline SVG, images are relative
/// links: the Outbox can be copied whole.
public enum OutboxIndex {
    /// One job's row, read from its folder.
    public struct Entry: Sendable {
        public var job: String
        public var stage: String
        public var status: String
        /// Where its metrics were measured ("digits (the training data)"), for grouping.
        public var reference: String?
        public var steps: Int?
        public var trainSeconds: Double?
        public var finalLoss: Double?
        public var lossCurve: [(x: Double, y: Double)]
        /// Metric name → value, for the columns below.
        public var metrics: [String: Double]
        /// Metric name → curve over steps, when the job evaluated during training.
        public var metricCurves: [String: [(x: Double, y: Double)]]
        public var hasSamples: Bool
        public var hasReport: Bool
        /// For a failed job: what went wrong, and its folder relative to the Outbox.
        public var failure: (what: String, folder: String)? = nil
    }

    /// A job in `Failed/`: shown in the table with its reason, so the index has every
    /// finished job, not only the good ones.
    public struct Failure: Sendable {
        public var job: String, stage: String?, what: String
        /// Its folder relative to the Outbox, e.g. `../Failed/j`.
        public var folder: String
        public init(job: String, stage: String?, what: String, folder: String) {
            self.job = job; self.stage = stage; self.what = what; self.folder = folder
        }
    }

    /// The metric columns, in order, with short headers; a column shows when any job has it.
    static let columns: [(key: String, header: String, percent: Bool)] = [
        ("class_accuracy_pixels", "class acc. pixels", true),
        ("class_accuracy_effnet_lite0", "class acc. Lite0", true),
        ("fd_effnet_lite0", "FD Lite0", false),
        ("fid_inception_v3", "FID", false),
        ("precision_effnet_lite0", "precision", false),
        ("recall_effnet_lite0", "recall", false),
    ]

    /// Reads every `<outbox>/<job>/metrics.json` (folders without one are skipped).
    public static func entries(outbox: String) -> [Entry] {
        let fm = FileManager.default
        let names = ((try? fm.contentsOfDirectory(atPath: outbox)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        return names.compactMap { name in
            let dir = (outbox as NSString).appendingPathComponent(name)
            guard let data = fm.contents(atPath: (dir as NSString).appendingPathComponent("metrics.json")),
                  let m = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
            var e = Entry(job: m["job"] as? String ?? name, stage: m["stage"] as? String ?? "?", status: "published",
                          reference: nil, steps: m["steps"] as? Int, trainSeconds: m["train_seconds"] as? Double,
                          finalLoss: nil, lossCurve: [], metrics: [:], metricCurves: [:],
                          hasSamples: fm.fileExists(atPath: (dir as NSString).appendingPathComponent("samples.png")),
                          hasReport: fm.fileExists(atPath: (dir as NSString).appendingPathComponent("report.html")))
            if let loss = m["loss"] as? [String: Any] {
                e.finalLoss = loss["final"] as? Double
                e.lossCurve = (loss["curve"] as? [[Double]] ?? []).compactMap { $0.count == 2 ? (x: $0[0], y: $0[1]) : nil }
            }
            if let block = m["metrics"] as? [String: Any], let ms = block["metrics"] as? [String: Any] {
                for (key, v) in ms {
                    guard let entry = v as? [String: Any] else { continue }
                    if let value = entry["value"] as? Double { e.metrics[key] = value }
                    // "digits (the training data)" and "digits" are the same images.
                    if e.reference == nil, let r = entry["reference"] as? String {
                        e.reference = r.components(separatedBy: " (").first
                    }
                }
            }
            if let curves = m["metric_curves"] as? [String: [[Double]]] {
                for (key, pts) in curves { e.metricCurves[key] = pts.compactMap { $0.count >= 2 ? (x: $0[0], y: $0[1]) : nil } }
            }
            return e
        }
    }

    /// Rewrites `<outbox>/index.html` (atomically: a reader sees the old page or the new one).
    @discardableResult
    public static func write(outbox: String, failures: [Failure] = []) throws -> String {
        let path = (outbox as NSString).appendingPathComponent("index.html")
        let published = entries(outbox: outbox)
        let failed = failures.filter { f in !published.contains { $0.job == f.job } }.sorted { $0.job < $1.job }.map { f in
            Entry(job: f.job, stage: f.stage ?? "?", status: "failed", reference: nil, steps: nil, trainSeconds: nil, finalLoss: nil,
                  lossCurve: [], metrics: [:], metricCurves: [:], hasSamples: false, hasReport: false, failure: (f.what, f.folder))
        }
        try AtomicFile.write(Array(html(published + failed).utf8), to: path)
        return path
    }

    /// The page for these entries.
    public static func html(_ entries: [Entry], generated: String = ISO8601DateFormatter().string(from: Date())) -> String {
        let shown = columns.filter { c in entries.contains { $0.metrics[c.key] != nil } }
        var h = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>learngene Outbox</title>
        <style>
        body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0 auto; max-width: 1200px; padding: 24px; }
        h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
        .sub { color: #666; } table { border-collapse: collapse; font-size: 14px; }
        th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #eee; vertical-align: middle; }
        th { background: #f6f6f6; font-weight: 600; cursor: pointer; user-select: none; } th.sorted::after { content: " ▾"; }
        td.num { text-align: right; font-variant-numeric: tabular-nums; font-family: ui-monospace, monospace; white-space: nowrap; }
        img.thumb { image-rendering: pixelated; border: 1px solid #ddd; height: 96px; } .na { color: #999; }
        .best { font-weight: 700; } a.failed { color: #b00020; font-weight: 600; } figure { display: inline-block; margin: 0 16px 16px 0; vertical-align: top; }
        </style></head><body>
        <h1>learngene Outbox</h1>
        <div class="sub">\(entries.count) jobs · generated \(esc(generated)) · click a column to sort</div>
        <h2>Jobs</h2>

        """
        h += "<table id=\"jobs\"><thead><tr><th>job</th><th>stage</th><th>status</th><th>samples</th><th class=\"num\">steps</th><th class=\"num\">train s</th><th class=\"num\">final loss</th>"
        for c in shown { h += "<th class=\"num\">\(esc(c.header))</th>" }
        h += "</tr></thead><tbody>\n"
        for e in entries {
            let link = e.hasReport ? "<a href=\"\(esc(e.job))/report.html\">\(esc(e.job))</a>" : esc(e.job)
            let thumb = e.hasSamples ? "<img class=\"thumb\" src=\"\(esc(e.job))/samples.png\" alt=\"samples of \(esc(e.job))\">" : "<span class=\"na\">—</span>"
            let status = e.failure.map { "<a class=\"failed\" href=\"\(esc($0.folder))/error.json\" title=\"\(esc($0.what))\">failed</a>: \(esc(String($0.what.prefix(80))))" }
                ?? esc(e.status)
            h += "<tr><td data-v=\"\(esc(e.job))\">\(link)</td><td>\(esc(e.stage))</td><td>\(status)</td><td>\(thumb)</td>"
            h += numberCell(e.steps.map(Double.init), decimals: 0) + numberCell(e.trainSeconds, decimals: 1) + numberCell(e.finalLoss, decimals: 4)
            for c in shown { h += numberCell(e.metrics[c.key], decimals: c.percent ? 1 : 3, percent: c.percent) }
            h += "</tr>\n"
        }
        h += "</tbody></table>\n"

        // Side by side: jobs measured against the same reference data.
        let groups = Dictionary(grouping: entries.filter { $0.reference != nil }, by: { $0.reference! })
        for (reference, group) in groups.sorted(by: { $0.key < $1.key }) where group.count >= 2 {
            h += "<h2>Compared on \(esc(reference))</h2>\n<table><tr><th>job</th><th>stage</th><th class=\"num\">steps</th>"
            let cols = shown.filter { c in group.contains { $0.metrics[c.key] != nil } }
            for c in cols { h += "<th class=\"num\">\(esc(c.header))</th>" }
            h += "</tr>\n"
            for e in group {
                h += "<tr><td>\(esc(e.job))</td><td>\(esc(e.stage))</td>" + numberCell(e.steps.map(Double.init), decimals: 0)
                for c in cols {
                    let values = group.compactMap { $0.metrics[c.key] }
                    // Higher is better for accuracies, precision and recall; lower for distances.
                    let best = c.key.hasPrefix("fd") || c.key.hasPrefix("fid") ? values.min() : values.max()
                    h += numberCell(e.metrics[c.key], decimals: c.percent ? 1 : 3, percent: c.percent, bold: e.metrics[c.key] == best)
                }
                h += "</tr>\n"
            }
            h += "</table>\n"
            let losses = group.filter { !$0.lossCurve.isEmpty }
            if losses.count >= 2 {
                let series = losses.map { SVGPlot.Series(name: $0.job, points: zip($0.lossCurve, SVGPlot.smoothed($0.lossCurve.map(\.y))).map { (x: $0.0.x, y: $0.1) }) }
                h += "<figure>" + SVGPlot(title: "training loss (smoothed) — \(reference)", xLabel: "step", yLabel: "loss", series: series, logY: true, width: plotWidth).svg() + "</figure>\n"
            }
            // The recognizability first: pixel accuracy reads best at small sample counts.
            let curveKeys = Set(group.flatMap { $0.metricCurves.keys }).sorted { (curveRank($0), $0) < (curveRank($1), $1) }
            for key in curveKeys {
                let series = group.compactMap { e in e.metricCurves[key].map { SVGPlot.Series(name: e.job, points: $0) } }
                h += "<figure>" + SVGPlot(title: "\(key) during training — \(reference)", xLabel: "step", yLabel: key, series: series, width: plotWidth).svg() + "</figure>\n"
            }
            if group.allSatisfy({ $0.hasSamples }) {
                for e in group { h += "<figure><img class=\"thumb\" style=\"height:220px\" src=\"\(esc(e.job))/samples.png\" alt=\"samples of \(esc(e.job))\"><figcaption>\(esc(e.job))</figcaption></figure>" }
                h += "\n"
            }
        }
        h += """
        <script>
        // Sort the jobs table by the clicked column (numbers numerically, "—" last).
        document.querySelectorAll('#jobs th').forEach(function (th, col) {
          th.addEventListener('click', function () {
            var body = document.querySelector('#jobs tbody');
            var rows = Array.prototype.slice.call(body.rows);
            var down = !th.classList.contains('sorted');
            document.querySelectorAll('#jobs th').forEach(function (o) { o.classList.remove('sorted'); });
            if (down) th.classList.add('sorted');
            function key(r) { var c = r.cells[col]; var v = c.getAttribute('data-v'); return v === null ? c.textContent : v; }
            rows.sort(function (a, b) {
              var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
              var r = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : (isNaN(nx) && !isNaN(ny) ? 1 : (!isNaN(nx) && isNaN(ny) ? -1 : x.localeCompare(y)));
              return down ? r : -r;
            });
            rows.forEach(function (r) { body.appendChild(r); });
          });
        });
        </script>
        </body></html>

        """
        return h
    }

    /// Two plots side by side in the page's 1200 px.
    static let plotWidth = 560

    static func curveRank(_ key: String) -> Int {
        key.hasPrefix("class_accuracy_pixels") ? 0 : key.hasPrefix("fd") ? 1 : 2
    }

    static func numberCell(_ v: Double?, decimals: Int, percent: Bool = false, bold: Bool = false) -> String {
        guard let v, v.isFinite else { return "<td class=\"num na\" data-v=\"\">—</td>" }
        let text = percent ? String(format: "%.\(decimals)f%%", 100 * v) : String(format: "%.\(decimals)f", v)
        return "<td class=\"num\(bold ? " best" : "")\" data-v=\"\(v)\">\(text)</td>"
    }

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}

import Foundation
import Testing
@testable import Metrics

@Suite struct OutboxIndexTests {
    func job(_ name: String, stage: String, acc: Double, fd: Double, reference: String) -> String {
        """
        {"job": "\(name)", "stage": "\(stage)", "steps": 100, "train_seconds": 12.5,
         "loss": {"final": 0.03, "curve": [[50, 0.1], [100, 0.03]]},
         "metrics": {"metrics": {
            "class_accuracy_pixels": {"value": \(acc), "reference": "\(reference)"},
            "fd_effnet_lite0": {"value": \(fd), "reference": "\(reference)"}}}}
        """
    }

    @Test func tableAndComparison() throws {
        let outbox = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: outbox) }
        for (name, stage, acc, fd, ref) in [("fine-d2", "finetune", 0.875, 505.4, "digits (the training data)"),
                                            ("scratch-d2", "finetune", 0.42, 518.3, "digits (the training data)"),
                                            ("re-eval", "evaluate", 0.5, 510.0, "digits"),
                                            ("pretrain", "pretrain", 0.75, 521.4, "fashion-mnist (the training data)")] {
            try FileManager.default.createDirectory(atPath: outbox + "/" + name, withIntermediateDirectories: true)
            try Data(job(name, stage: stage, acc: acc, fd: fd, reference: ref).utf8).write(to: URL(fileURLWithPath: outbox + "/\(name)/metrics.json"))
        }
        try FileManager.default.createDirectory(atPath: outbox + "/.tmp-staging", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: outbox + "/no-metrics", withIntermediateDirectories: true)

        let entries = OutboxIndex.entries(outbox: outbox)
        #expect(entries.map(\.job) == ["fine-d2", "pretrain", "re-eval", "scratch-d2"])
        #expect(entries[0].reference == "digits" && entries[0].lossCurve.count == 2 && entries[0].finalLoss == 0.03)

        let path = try OutboxIndex.write(outbox: outbox)
        let page = try String(contentsOfFile: path, encoding: .utf8)
        #expect(page.contains("<h2>Compared on digits</h2>"))
        #expect(!page.contains("Compared on fashion-mnist"))  // one job alone is not a comparison
        // Best of the group in bold: the higher accuracy, the lower FD (both fine-d2's).
        #expect(page.contains("<td class=\"num best\" data-v=\"0.875\">87.5%</td>"))
        #expect(page.contains("<td class=\"num best\" data-v=\"505.4\">505.400</td>"))
        #expect(page.contains("training loss (smoothed)"))
        #expect(page.contains("<a href=\"fine-d2/report.html\">") == false)  // no report.html in the folder: no link
        #expect(page.contains("addEventListener('click'"))
    }

    @Test func failedJobsAreListedWithTheirReasonUnlessRepublished() throws {
        let outbox = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: outbox) }
        try FileManager.default.createDirectory(atPath: outbox + "/ok", withIntermediateDirectories: true)
        try Data(job("ok", stage: "pretrain", acc: 0.7, fd: 500, reference: "digits").utf8).write(to: URL(fileURLWithPath: outbox + "/ok/metrics.json"))
        let failures = [OutboxIndex.Failure(job: "bad", stage: "finetune", what: "dataset `x` <missing>", folder: "../Failed/bad"),
                        OutboxIndex.Failure(job: "ok", stage: "pretrain", what: "an earlier attempt", folder: "../Failed/ok")]
        let page = try String(contentsOfFile: try OutboxIndex.write(outbox: outbox, failures: failures), encoding: .utf8)
        #expect(page.contains("href=\"../Failed/bad/error.json\"") && page.contains("dataset `x` &lt;missing&gt;"))
        #expect(!page.contains("an earlier attempt"))  // published since: the Outbox wins
        #expect(page.contains("2 jobs"))
    }
}

import Foundation
import Formats
import Testing
@testable import Pipeline

/// What a job records about its training, end to end with the real executable: metric curves
/// from `evaluation.every` (the same numbers after kill -9 and resume), TensorBoard event
/// files read back, the inline plots in report.html and the Outbox's index.html.
@Suite(.serialized) struct TrainingRecordsProcessTests {
    /// 4000 steps (a few seconds), a checkpoint every 40, class accuracy of 10 samples every
    /// 500 steps.
    static let job = PretrainProcessTests.tinyJob(steps: 4000, every: 40,
                                                  extra: "evaluation: {every: 500, every_samples: 10, metrics: [class_accuracy_pixels]}")

    /// metric_curves of a published job as (name, step, value): the training seconds differ
    /// between runs and are left out.
    static func curves(_ root: TempRoot) -> [String] {
        guard case let .object(c)? = root.json("Outbox/j/metrics.json")?["metric_curves"] else { return [] }
        return c.flatMap { (name: String, points: JSONValue) -> [String] in
            (points.arrayValue ?? []).map { (p: JSONValue) -> String in
                let v = p.arrayValue ?? []
                return "\(name) \(v.first?.intValue ?? -1) \(v.count > 1 ? v[1].doubleValue ?? .nan : .nan)"
            }
        }
    }

    /// A root where `job` ran uninterrupted and was published as `Outbox/j`.
    static func publishedRun(_ label: String) throws -> TempRoot {
        let root = TempRoot(label)
        try PretrainProcessTests.tinyDataset(root)
        root.job("j", job)
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(r.status == 0, "\(r.stderr)")
        return root
    }

    @Test func metricCurvesAreRecordedAndSurviveKillNine() throws {
        let clean = try Self.publishedRun("curves-clean")
        let reference = Self.curves(clean)
        #expect(reference.map { $0.split(separator: " ").prefix(2).joined(separator: " ") }
                == stride(from: 500, through: 4000, by: 500).map { "class_accuracy_pixels \($0)" }, "\(reference)")

        let root = TempRoot("curves-kill9")
        try PretrainProcessTests.tinyDataset(root)
        root.job("j", Self.job)
        var rng = SystemRandomNumberGenerator()
        var kills = 0
        for round in 0..<16 where !root.exists("Outbox/j") {
            let offset = PretrainProcessTests.logSize(root, job: "j")
            let p = try Learngene.start(["serve", "--once", "--crash-limit", "1000", "--root", root.path], root: root, label: "k\(round)")
            // Even rounds: up to 300 steps past the newest checkpoint, so the job cannot finish
            // early; odd rounds: any moment, evaluations and checkpoint writes included.
            let newest = CheckpointStore(directory: root.path + "/.state/claimed/j/checkpoints", configHash: "", keep: 1).completeSteps().last ?? 0
            let target = newest + Int.random(in: 1...300, using: &rng)
            _ = PretrainProcessTests.waitForStep(root, job: "j", step: target, process: p, since: offset,
                                                 within: round % 2 == 0 ? 300 : Double.random(in: 0.01...1.0, using: &rng))
            if p.process.isRunning { kills += 1 }
            p.signal(SIGKILL)
            _ = p.wait(timeout: 60)
        }
        print("metric curves under kill -9: \(kills) kills, starts \(root.json(".state/claimed/j/job.json")?["starts"]?.intValue ?? -1)")
        let last = try Learngene.run(["serve", "--once", "--crash-limit", "1000", "--root", root.path], root: root)
        #expect(last.status == 0, "\(last.stderr)")
        #expect(kills >= 8, "only \(kills) kills landed")
        #expect((root.json("Outbox/j/job.json")?["starts"]?.intValue ?? 0) > kills / 2)
        #expect(Self.curves(root) == reference, "metric curves after \(kills) kills differ from the uninterrupted run")
    }

    @Test func eventsPlotsAndIndexArePublished() throws {
        let root = try Self.publishedRun("records")

        // TensorBoard: one event file with the loss, learning rate, the metric curve, the final
        // metrics, the sample grid and the manifest.
        let events = root.list("Outbox/j/events")
        #expect(events.count == 1 && events[0].hasPrefix("events.out.tfevents."), "\(events)")
        let path = root.path + "/Outbox/j/events/" + (events.first ?? "")
        let records = try TFRecord.records(Array(try Data(contentsOf: URL(fileURLWithPath: path))), path: path)
        var tags: [String: Int] = [:]
        for record in records.dropFirst() {
            for summary in try ProtoMessage(record).messages(5) {
                for value in try summary.messages(1) { tags[value.string(1) ?? "?", default: 0] += 1 }
            }
        }
        #expect(tags["train/loss"] == 800, "\(tags)")  // log_every 5 over 4000 steps
        #expect(tags["train/learning_rate"] == 800 && tags["eval/class_accuracy_pixels"] == 8, "\(tags)")
        #expect(tags["metrics/class_accuracy_pixels"] == 1 && tags["samples"] == 1 && tags["manifest"] == 1, "\(tags)")
        // The tensorboard package's own reader, when installed (CI installs it).
        let python = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"
        let check = try Learngene.run(["-c", "\(python) '\(PretrainProcessTests.repo)/Tools/read_tfevents.py' '\(root.path)/Outbox/j/events'"],
                                      root: root, shell: true)
        if check.status == 0 {
            #expect(check.stdout.contains("eval/class_accuracy_pixels: 8 points"), "\(check.stdout)")
        } else {
            #expect(ProcessInfo.processInfo.environment["CI"] != "true", "read_tfevents.py failed under CI: \(check.stderr)")
        }

        // report.html draws the curves inline; metrics.json holds them.
        let html = try #require(root.read("Outbox/j/report.html"))
        #expect(html.contains("<svg") && html.contains("class_accuracy_pixels"))
        #expect(root.exists("Outbox/j/real-and-samples.png"))
        // index.html lists the job and links its report.
        let index = try #require(root.read("Outbox/index.html"))
        #expect(index.contains("href=\"j/report.html\""), "\(index.prefix(2000))")
    }
}

import Foundation
import Testing
@testable import Pipeline

/// The spool and the daemon loop in-process, with the deterministic `CountStage`.
@Suite struct DaemonTests {
    @Test func onceRunsReadyJobsInDependencyOrderAndFailsBadOnes() throws {
        let root = TempRoot("once")
        root.countJob("child", extra: "inputs: {model: parent}\n")
        root.countJob("parent", steps: 7, seed: 5)
        root.job("broken", "stage: count\ntraining: {steps: -3}\n")
        root.write("Inbox/jobs/notes.txt", "not a manifest")
        let summary = try root.daemon().run()
        #expect(Set(summary.published) == ["parent", "child"])
        #expect(summary.failed == ["broken"])
        #expect(root.result("parent") == CountStage.expected(seed: 5, steps: 7))
        #expect(root.read("Outbox/child/parent-result.txt") == root.read("Outbox/parent/result.txt"))
        // Outputs beside the stage's: resolved and original manifest, log, job record.
        for f in ["manifest.yaml", "manifest.original.yaml", "log.jsonl", "job.json", "result.txt"] {
            #expect(root.exists("Outbox/parent/\(f)"), "missing \(f)")
        }
        let resolved = try Manifest.parse(Array(root.read("Outbox/parent/manifest.yaml")!.utf8), fileName: "parent.yaml",
                                          catalog: StageRegistry([CountStage()]).catalog)
        #expect(resolved.training.steps == 7 && resolved.seed == 5)
        // The bad manifest went to Failed/ with its original bytes and an actionable error.json.
        #expect(root.read("Failed/broken/broken.yaml") == "stage: count\ntraining: {steps: -3}\n")
        let error = try #require(root.json("Failed/broken/error.json"))
        #expect(error["job"]?.stringValue == "broken")
        #expect(error["problems"]?.arrayValue?.first?["field"]?.stringValue == "training.steps")
        #expect(error["fix"]?.stringValue?.isEmpty == false)
        // Nothing left behind; the unrelated file is untouched.
        #expect(root.list("Inbox/jobs") == ["notes.txt"])
        #expect(root.list(".state/claimed").isEmpty)
        #expect(root.list("Outbox") == ["child", "index.html", "parent"])  // index.html: the page over every finished job
        #expect(root.read("Outbox/index.html")?.contains("href=\"../Failed/broken/error.json\"") == true, "the index lacks the failed job")
    }

    @Test func progressGoesToLogJSONLines() throws {
        let root = TempRoot("log")
        root.job("j", "stage: count\ntraining: {steps: 6, log_every: 2}\n")
        _ = try root.daemon().run()
        let lines = root.read("Outbox/j/log.jsonl")!.split(separator: "\n").compactMap { try? JSONValue.parse(String($0)) }
        let progress = lines.filter { $0["event"]?.stringValue == "progress" }
        #expect(progress.map { $0["step"]?.intValue } == [2, 4, 6])
        #expect(progress.allSatisfy { $0["job"]?.stringValue == "j" && $0["loss"]?.doubleValue != nil && $0["images_per_second"] != nil && $0["eta_seconds"] != nil })
        #expect(lines.first?["event"]?.stringValue == "start")
        #expect(lines.contains { $0["event"]?.stringValue == "state" && $0["from"]?.stringValue == "claimed" && $0["to"]?.stringValue == "running" })
        #expect(lines.last?["event"]?.stringValue == "done")
    }

    @Test func stopMidRunCheckpointsAndResumeGivesTheSameResult() throws {
        let root = TempRoot("stop")
        root.countJob("j", steps: 20, seed: 3, every: 7)
        let stop = StopSignal()
        let stage = CountStage { _, step in if step == 9 { stop.request("test") } }
        let first = try root.daemon(stage, stop: stop).run()
        #expect(first.stopped && first.published.isEmpty)
        #expect(root.list(".state/claimed") == ["j"])
        #expect(CheckpointStore(directory: root.path + "/.state/claimed/j/checkpoints", configHash: "", keep: 1).completeSteps() == [7, 9])
        let status = try #require(root.json(".state/claimed/j/status.json"))
        #expect(status["state"]?.stringValue == "stopped" && status["step"]?.intValue == 9)
        let rows = StatusReport.collect(layout: root.layout, catalog: StageRegistry([CountStage()]).catalog)
        #expect(rows.first { $0.job == "j" }?.state == "interrupted")

        let second = try root.daemon().run()
        #expect(second.published == ["j"])
        #expect(root.result("j") == CountStage.expected(seed: 3, steps: 20))
        let job = try #require(root.json("Outbox/j/job.json"))
        #expect(job["starts"]?.intValue == 2)
    }

    @Test func crashDebrisIsResumedOrCleanedWithoutDuplicates() throws {
        let root = TempRoot("crash")
        // A run that "died" at step 9: claimed, checkpoints, a half-written Outbox staging folder.
        root.countJob("j", steps: 12, seed: 4, every: 3)
        let stop = StopSignal()
        _ = try root.daemon(CountStage { _, s in if s == 9 { stop.request("test") } }, stop: stop).run()
        root.write("Outbox/.tmp-j/partial.bin", "junk")
        root.write(".state/claimed/j/checkpoints/ckpt-00000010.tmp/tensors.safetensors", "junk")
        _ = try root.daemon().run()
        #expect(root.result("j") == CountStage.expected(seed: 4, steps: 12))
        #expect(!root.exists("Outbox/j/partial.bin"))
        #expect(!root.exists("Outbox/.tmp-j"))

        // A crash after the publishing rename, before the claim folder was removed: the restart
        // only cleans up (no second Outbox folder, no rerun).
        root.countJob("k", steps: 4, seed: 9)
        _ = try root.daemon().run()
        let claimID = root.json("Outbox/k/job.json")!["claim_id"]!.stringValue!
        root.write(".state/claimed/k/k.yaml", "stage: count\nseed: 9\ntraining: {steps: 4, log_every: 100}\ncheckpoint: {every: 3, keep: 2}\n")
        root.write(".state/claimed/k/claim.json", #"{"claim_id": "\#(claimID)", "claimed_at": "x", "host": "h", "pid": 1, "starts": 1, "last_start_step": 0, "starts_without_progress": 0}"#)
        let again = try root.daemon().run()
        #expect(again.published.isEmpty && again.failed.isEmpty)
        #expect(root.list("Outbox") == ["index.html", "j", "k"])
        #expect(root.list(".state/claimed").isEmpty)
    }

    @Test func failingStageGoesToFailedAndTheDaemonGoesOn() throws {
        let root = TempRoot("fail")
        root.countJob("bad", seed: 666)
        root.countJob("good", seed: 1)
        root.countJob("after-bad", extra: "inputs: {model: bad}\n")
        let summary = try root.daemon().run()
        #expect(summary.published == ["good"])
        #expect(Set(summary.failed) == ["bad", "after-bad"])
        let e = try #require(root.json("Failed/bad/error.json"))
        #expect(e["what"]?.stringValue == "the stage refused seed 666")
        #expect(e["stage"]?.stringValue == "count")
        #expect(root.exists("Failed/bad/bad.yaml") && root.exists("Failed/bad/log.jsonl"))
        let child = try #require(root.json("Failed/after-bad/error.json"))
        #expect(child["what"]?.stringValue == "input job bad failed: the stage refused seed 666")
        #expect(root.list(".state/claimed").isEmpty)
    }

    @Test func repeatedFailuresKeepEveryCopy() throws {
        let root = TempRoot("refail")
        root.countJob("x", seed: 666)
        _ = try root.daemon().run()
        root.countJob("x", seed: 666)
        _ = try root.daemon().run()
        #expect(root.list("Failed") == ["x", "x~2"])
    }

    @Test func jobNameAlreadyPublishedFailsTheNewManifest() throws {
        let root = TempRoot("dup")
        root.countJob("x")
        _ = try root.daemon().run()
        root.countJob("x", seed: 2)
        let s = try root.daemon().run()
        #expect(s.failed == ["x"])
        #expect(root.json("Failed/x/error.json")?["what"]?.stringValue?.contains("already has results") == true)
        #expect(root.result("x") == CountStage.expected(seed: 1, steps: 10))
    }

    @Test func crashLoopingJobIsFailed() throws {
        let root = TempRoot("loop")
        root.countJob("j", steps: 5)
        // A claim that was started 3 times without ever reaching a checkpoint.
        try FileManager.default.createDirectory(atPath: root.path + "/.state/claimed/j", withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: root.path + "/Inbox/jobs/j.yaml", toPath: root.path + "/.state/claimed/j/j.yaml")
        root.write(".state/claimed/j/claim.json", #"{"claim_id": "c1", "claimed_at": "x", "host": "h", "pid": 1, "starts": 3, "last_start_step": 0, "starts_without_progress": 2}"#)
        let s = try root.daemon(crashLimit: 3).run()
        #expect(s.failed == ["j"])
        #expect(root.json("Failed/j/error.json")?["what"]?.stringValue?.contains("interrupted 4 times") == true)
    }

    @Test func symlinkedDatasetOutsideTheRootFailsTheJob() throws {
        let root = TempRoot("evil")
        let outside = TempRoot("outside2")
        outside.write("a/x.png", "x")
        try FileManager.default.createSymbolicLink(atPath: root.path + "/Inbox/datasets/evil", withDestinationPath: outside.path)
        root.countJob("j", extra: "inputs: {dataset: evil}\n")
        let s = try root.daemon().run()
        #expect(s.failed == ["j"])
        let e = try #require(root.json("Failed/j/error.json"))
        #expect(e["what"]?.stringValue?.contains("symbolic link") == true)
        #expect(e["where"]?.stringValue == "inputs.dataset")
        #expect(outside.exists("a/x.png"))
    }

    @Test func waitingJobsStayInTheInbox() throws {
        let root = TempRoot("wait")
        root.countJob("j", extra: "inputs: {dataset: later}\n")
        let s = try root.daemon().run()
        #expect(s.waiting.map(\.job) == ["j"])
        #expect(s.waiting[0].reason.contains("dataset later"))
        #expect(root.list("Inbox/jobs") == ["j.yaml"])
        root.dataset("later")
        #expect(try root.daemon().run().published == ["j"])
    }

    @Test func twoDaemonsOnOneRootRunEachJobExactlyOnce() throws {
        let root = TempRoot("two")
        let jobs = (0..<16).map { "job\($0)" }
        for (i, j) in jobs.enumerated() { root.countJob(j, steps: 3 + i % 4, seed: i) }
        let counter = StepCounter()
        let stage = CountStage { job, step in if step == 1 { counter.add(job) } }
        let results = ResultsBox()
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            let s = try? root.daemon(stage).run()
            results.add(s?.published ?? [])
        }
        #expect(results.all.sorted() == jobs.sorted())
        #expect(counter.counts.values.allSatisfy { $0 == 1 } && counter.counts.count == jobs.count)
        #expect(root.list("Outbox").sorted() == (jobs + ["index.html"]).sorted())
        for (i, j) in jobs.enumerated() { #expect(root.result(j) == CountStage.expected(seed: i, steps: 3 + i % 4)) }
    }
}

final class StepCounter: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var counts: [String: Int] = [:]
    func add(_ job: String) { lock.lock(); counts[job, default: 0] += 1; lock.unlock() }
}

final class ResultsBox: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var all: [String] = []
    func add(_ x: [String]) { lock.lock(); all += x; lock.unlock() }
}

import Foundation
import Testing
@testable import Pipeline

/// The `pretrain` stage end to end with the real executable and a tiny model: outputs,
/// kill -9 at random moments, SIGTERM, bad images, two daemons, `run`.
@Suite(.serialized) struct PretrainProcessTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// A tiny model (8×8 inputs, one block of width 16) so a job takes about a second.
    static func tinyJob(steps: Int = 60, every: Int = 5, seed: Int = 0, dataset: String = "ds", extra: String = "") -> String {
        """
        stage: pretrain
        seed: \(seed)
        inputs: {dataset: \(dataset)}
        model: {input_size: 8, patch_size: 4, hidden_size: 16, depth: 1, num_heads: 2}
        training: {steps: \(steps), batch_size: 4, log_every: 5, learning_rate: 0.001}
        checkpoint: {every: \(every), keep: 2}
        sampling: {count: 4, steps: 3, grid_columns: 2}
        \(extra)
        """
    }

    /// Copies `perClass` Fashion-MNIST PNGs of two classes from the repository's Inbox.
    static func tinyDataset(_ root: TempRoot, name: String = "ds", perClass: Int = 6) throws {
        let src = repo + "/Inbox/datasets/fashion-mnist"
        for c in ["0_tshirt_top", "1_trouser"] {
            let files = try FileManager.default.contentsOfDirectory(atPath: src + "/" + c).filter { $0.hasSuffix(".png") }.sorted().prefix(perClass)
            try FileManager.default.createDirectory(atPath: root.path + "/Inbox/datasets/\(name)/\(c)", withIntermediateDirectories: true)
            for f in files { try FileManager.default.copyItem(atPath: "\(src)/\(c)/\(f)", toPath: root.path + "/Inbox/datasets/\(name)/\(c)/\(f)") }
        }
    }

    static let resultFiles = ["model.safetensors", "ema.safetensors", "samples.npz", "samples.png"]

    /// Result bytes of an uninterrupted run of `tinyJob()` named `job`.
    /// The job the interruption tests kill and stop: long enough (~10 s) to be interrupted
    /// many times, with frequent checkpoints.
    static let longJob = tinyJob(steps: 3000, every: 40)

    static func reference(job: String = "j") throws -> [String: Data] {
        let root = TempRoot("reference")
        try tinyDataset(root)
        root.job(job, longJob)
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(r.status == 0, "\(r.stderr)")
        var out: [String: Data] = [:]
        for f in resultFiles { out[f] = FileManager.default.contents(atPath: root.path + "/Outbox/\(job)/\(f)") }
        return out
    }

    static func results(_ root: TempRoot, job: String = "j") -> [String: Data] {
        var out: [String: Data] = [:]
        for f in resultFiles { out[f] = FileManager.default.contents(atPath: root.path + "/Outbox/\(job)/\(f)") }
        return out
    }

    /// The newest step the running process logged in the job's log.jsonl (progress lines come
    /// every `log_every` steps; status.json is only rewritten once a second). Only lines past
    /// `offset` that follow a "start" line count: an earlier, killed process's do not.
    static func loggedStep(_ root: TempRoot, job: String, since offset: UInt64) -> Int? {
        guard let h = FileHandle(forReadingAtPath: root.path + "/.state/claimed/\(job)/log.jsonl") else { return nil }
        defer { try? h.close() }
        let end = (try? h.seekToEnd()) ?? 0
        guard end > offset else { return nil }
        try? h.seek(toOffset: offset)
        let text = String(decoding: h.readDataToEndOfFile(), as: UTF8.self)
        var sawStart = false
        var step: Int?
        for line in text.split(separator: "\n") {
            if line.contains("\"event\":\"start\"") { sawStart = true; step = nil }
            if sawStart, line.contains("\"event\":\"progress\""), let s = (try? JSONValue.parse(String(line)))?["step"]?.intValue { step = s }
        }
        return step
    }

    /// The current size of the job's log: lines past it were written by a later process.
    static func logSize(_ root: TempRoot, job: String) -> UInt64 {
        ((try? FileManager.default.attributesOfItem(atPath: root.path + "/.state/claimed/\(job)/log.jsonl"))?[.size] as? NSNumber)?.uint64Value ?? 0
    }

    /// Waits until the process started after `since` has logged at least `step` (false if the
    /// job finished or the process exited first). Only lines written after `since` count, so a
    /// killed predecessor's progress can never satisfy the wait before the new process starts.
    static func waitForStep(_ root: TempRoot, job: String, step: Int, process: Learngene.Running, since offset: UInt64 = 0, within seconds: Double = 300) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline && process.process.isRunning {
            if let s = loggedStep(root, job: job, since: offset), s >= step { return true }
            if root.exists("Outbox/\(job)") { return false }
            usleep(5_000)
        }
        return false
    }

    @Test func onceTrainsAndPublishesEveryOutput() throws {
        let root = TempRoot("pretrain")
        try Self.tinyDataset(root)
        root.job("j", Self.tinyJob(steps: 12))
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("step 10/12") && r.stderr.contains("images/s") && r.stderr.contains("ETA"))
        for f in Self.resultFiles + ["metrics.json", "manifest.yaml", "manifest.original.yaml", "log.jsonl", "job.json"] {
            #expect(root.exists("Outbox/j/\(f)"), "missing \(f)")
        }
        // samples.npz: a ZIP holding arr_0.npy, uint8 (4, 8, 8, 1).
        let npz = try #require(FileManager.default.contents(atPath: root.path + "/Outbox/j/samples.npz"))
        let text = String(decoding: npz.prefix(200), as: UTF8.self)
        #expect(text.contains("arr_0.npy") && text.contains("'descr': '|u1'") && text.contains("'shape': (4, 8, 8, 1)"))
        // Metrics and the resolved manifest (num_classes: auto became the class count).
        let metrics = try #require(root.json("Outbox/j/metrics.json"))
        for key in ["loss", "images_per_second", "wall_seconds", "peak_memory_bytes", "parameters", "train_seconds"] {
            #expect(metrics[key] != nil, "metrics.json lacks \(key)")
        }
        #expect(metrics["loss"]?["curve"]?.arrayValue?.count == 3)
        #expect(metrics["steps"]?.intValue == 12)
        let resolved = try Manifest.parse(Array(root.read("Outbox/j/manifest.yaml")!.utf8), fileName: "j.yaml")
        #expect(resolved.model.numClasses == .fixed(2))
        // The weights use DiT's state_dict names.
        let model = String(decoding: FileManager.default.contents(atPath: root.path + "/Outbox/j/model.safetensors")!.prefix(4000), as: UTF8.self)
        #expect(model.contains("blocks.0.attn.qkv.weight") && model.contains("final_layer.linear.weight"))
        #expect(root.list(".state/claimed").isEmpty && root.list("Inbox/jobs").isEmpty)
    }

    @Test func killNineAtRandomMomentsGivesTheSameBits() throws {
        let reference = try Self.reference()
        #expect(reference.count == Self.resultFiles.count)
        let root = TempRoot("kill9")
        try Self.tinyDataset(root)
        root.job("j", Self.longJob)
        var rng = SystemRandomNumberGenerator()
        var midTraining = 0, atRandom = 0
        for round in 0..<40 where !root.exists("Outbox/j") {
            let logOffset = Self.logSize(root, job: "j")
            let p = try Learngene.start(["serve", "--once", "--crash-limit", "1000", "--root", root.path], root: root, label: "k\(round)")
            // Each round ends at most 60 steps past the newest checkpoint, so the job cannot
            // finish early however fast the build is, and every even round lands mid-training.
            let newest = CheckpointStore(directory: root.path + "/.state/claimed/j/checkpoints", configHash: "", keep: 1).completeSteps().last ?? 0
            let target = newest + Int.random(in: 1...60, using: &rng)
            if round % 2 == 0 {
                if Self.waitForStep(root, job: "j", step: target, process: p, since: logOffset) { midTraining += 1 }
            } else {
                // Any moment: start-up, data loading, a checkpoint write, sampling, publishing.
                _ = Self.waitForStep(root, job: "j", step: target, process: p, since: logOffset, within: Double.random(in: 0.01...1.5, using: &rng))
                if p.process.isRunning { atRandom += 1 }
            }
            p.signal(SIGKILL)
            _ = p.wait(timeout: 60)
        }
        // The end game, unbounded: kills may land in the last steps, the final checkpoint,
        // sampling, or between the publishing rename and the cleanup.
        for round in 0..<8 where !root.exists("Outbox/j") {
            let p = try Learngene.start(["serve", "--once", "--crash-limit", "1000", "--root", root.path], root: root, label: "e\(round)")
            usleep(UInt32.random(in: 10_000...1_500_000, using: &rng))
            if p.process.isRunning { atRandom += 1 }
            p.signal(SIGKILL)
            _ = p.wait(timeout: 60)
        }
        print("kill -9 loop: \(midTraining) kills mid-training, \(atRandom) at random moments")
        // One clean run at the end, always: a kill between the publishing rename and the
        // claim's removal leaves the claim behind, and the next start must finish that
        // cleanup without publishing the job a second time.
        let r = try Learngene.run(["serve", "--once", "--crash-limit", "1000", "--root", root.path], root: root)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(root.list("Outbox").filter { $0.hasPrefix("j") } == ["j"], "the job was published more than once")
        #expect(midTraining >= 5, "only \(midTraining) kills landed mid-training")
        let got = Self.results(root)
        for f in Self.resultFiles {
            #expect(got[f] != nil && got[f] == reference[f], "\(f) differs from the uninterrupted run (\(midTraining) + \(atRandom) kills)")
        }
        #expect((root.json("Outbox/j/job.json")?["starts"]?.intValue ?? 0) > midTraining)
        #expect(root.list(".state/claimed").isEmpty && root.list("Failed").isEmpty)
    }

    @Test func sigtermMidTrainingCheckpointsExitsZeroAndResumes() throws {
        let reference = try Self.reference()
        let root = TempRoot("sigterm-train")
        try Self.tinyDataset(root)
        root.job("j", Self.longJob)
        let p = try Learngene.start(["serve", "--root", root.path], root: root)
        #expect(Self.waitForStep(root, job: "j", step: 123, process: p))
        p.signal(SIGTERM)
        let r = p.wait(timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        let status = try #require(root.json(".state/claimed/j/status.json"))
        #expect(status["state"]?.stringValue == "stopped")
        let stoppedAt = try #require(status["step"]?.intValue)
        #expect(stoppedAt >= 123 && stoppedAt < 3000)
        let steps = CheckpointStore(directory: root.path + "/.state/claimed/j/checkpoints", configHash: "", keep: 1).completeSteps()
        #expect(steps.last == stoppedAt)
        let rows = try Learngene.run(["status", "--root", root.path], root: root)
        #expect(rows.stdout.contains("interrupted") && rows.stdout.contains("checkpoint at step \(stoppedAt)"))

        let again = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(Self.results(root) == reference)
    }

    @Test func changedManifestOnResumeIsAnErrorNotAFreshStart() throws {
        let root = TempRoot("mismatch")
        try Self.tinyDataset(root)
        root.job("j", Self.longJob)
        let p = try Learngene.start(["serve", "--root", root.path], root: root)
        #expect(Self.waitForStep(root, job: "j", step: 12, process: p))
        p.signal(SIGTERM)
        _ = p.wait(timeout: 120)
        root.write(".state/claimed/j/j.yaml", Self.longJob.replacingOccurrences(of: "learning_rate: 0.001", with: "learning_rate: 0.002"))
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(r.status == 1)
        let e = try #require(root.json("Failed/j/error.json"))
        #expect(e["what"]?.stringValue?.contains("different configuration") == true)
        #expect(root.read("Failed/j/j.yaml")?.contains("0.002") == true)
    }

    @Test func badImagesFailTheJobOrAreSkippedAsTheManifestSays() throws {
        let root = TempRoot("bad-images")
        let fixtures = Self.repo + "/Tests/ImagesTests/Fixtures"
        for name in ["bad-fail", "bad-skip"] {
            try Self.tinyDataset(root, name: name, perClass: 3)
            for f in ["png_truncated.png", "jpeg_truncated.jpg", "png_bomb.png", "junk.png", "png_bad_crc.png"] {
                try FileManager.default.copyItem(atPath: fixtures + "/" + f, toPath: root.path + "/Inbox/datasets/\(name)/1_trouser/\(f)")
            }
        }
        root.write("Inbox/datasets/empty/a/readme.txt", "no images")
        root.job("fail", Self.tinyJob(steps: 4, dataset: "bad-fail"))
        root.job("skip", Self.tinyJob(steps: 4, dataset: "bad-skip", extra: "data: {bad_images: skip}"))
        root.job("empty", Self.tinyJob(steps: 4, dataset: "empty"))
        root.job("missing-class-count", Self.tinyJob(steps: 4, extra: "").replacingOccurrences(of: "num_heads: 2}", with: "num_heads: 2, num_classes: 1}"))
        try Self.tinyDataset(root)
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(r.status == 1)
        #expect(root.list("Outbox") == ["index.html", "skip"])
        #expect(root.list("Failed") == ["empty", "fail", "missing-class-count"])
        let e = try #require(root.json("Failed/fail/error.json"))
        #expect(e["what"]?.stringValue?.contains("5 of 11 images could not be read") == true)
        #expect(e["where"]?.stringValue?.hasPrefix("Inbox/datasets/bad-fail/1_trouser/") == true)
        #expect(e["fix"]?.stringValue?.contains("bad_images: skip") == true)
        let log = root.read("Outbox/skip/log.jsonl") ?? ""
        #expect(log.components(separatedBy: "\"event\":\"skipped-image\"").count - 1 == 5)
        #expect(log.contains("over the limit"))  // the decompression bomb, refused before decoding
        #expect(root.json("Failed/empty/error.json")?["what"]?.stringValue?.contains("no .png/.jpg/.jpeg") == true)
        #expect(root.json("Failed/missing-class-count/error.json")?["where"]?.stringValue == "manifest field model.num_classes")
        // The datasets are untouched.
        #expect(root.list("Inbox/datasets/bad-fail/1_trouser").count == 8)
    }

    @Test func twoDaemonsRunEachRealJobExactlyOnce() throws {
        let root = TempRoot("two-real")
        try Self.tinyDataset(root)
        let jobs = (0..<8).map { "job\($0)" }
        for (i, j) in jobs.enumerated() { root.job(j, Self.tinyJob(steps: 6, seed: i)) }
        let a = try Learngene.start(["serve", "--once", "--root", root.path], root: root, label: "a")
        let b = try Learngene.start(["serve", "--once", "--root", root.path], root: root, label: "b")
        let ra = a.wait(), rb = b.wait()
        #expect(ra.status == 0 && rb.status == 0, "\(ra.stderr)\n\(rb.stderr)")
        #expect(root.list("Outbox") == (["index.html"] + jobs).sorted())
        for j in jobs {
            let log = root.read("Outbox/\(j)/log.jsonl") ?? ""
            #expect(log.components(separatedBy: "\"event\":\"start\"").count - 1 == 1, "\(j) started more than once")
            #expect(root.json("Outbox/\(j)/job.json")?["starts"]?.intValue == 1)
        }
        let claimedBy = [ra.stderr, rb.stderr].map { s in jobs.filter { s.contains("[\($0)] claimed") }.count }
        #expect(claimedBy.reduce(0, +) == jobs.count)
    }

    @Test func runCommandRunsOneJobInTheForeground() throws {
        let root = TempRoot("run-cmd")
        try Self.tinyDataset(root)
        let elsewhere = TempRoot("elsewhere")
        elsewhere.write("solo.yaml", Self.tinyJob(steps: 4))
        let r = try Learngene.run(["run", "--root", root.path, elsewhere.path + "/solo.yaml"], root: root)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == root.path + "/Outbox/solo")
        #expect(elsewhere.exists("solo.yaml"))  // a manifest outside the inbox is copied, not moved
        root.job("inbox", Self.tinyJob(steps: 4, dataset: "nope"))
        let waiting = try Learngene.run(["run", "--root", root.path, "Inbox/jobs/inbox.yaml"], root: root)
        #expect(waiting.status == 1 && waiting.stderr.contains("not ready") && waiting.stderr.contains("dataset nope"))
        #expect(root.exists("Inbox/jobs/inbox.yaml"))
    }
}

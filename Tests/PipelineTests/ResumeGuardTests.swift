import Foundation
import Testing
@testable import Pipeline

/// Resumes that cannot silently diverge (issue 14): a model large enough that the threaded
/// kernel paths run, kill -9 mid-training, and refusals when a resume would give other bits
/// (another thread count) or train on other data (a dataset edited between kill and restart).
@Suite(.serialized) struct ResumeGuardTests {
    /// 16×16 inputs in 4×4 patches (16 tokens), width 64, batch 16: M = 256 rows.
    static func threadedJob(steps: Int = 400, every: Int = 25) -> String {
        """
        stage: pretrain
        seed: 3
        inputs: {dataset: ds}
        model: {input_size: 16, patch_size: 4, hidden_size: 64, depth: 2, num_heads: 4}
        training: {steps: \(steps), batch_size: 16, log_every: 5, learning_rate: 0.001}
        checkpoint: {every: \(every), keep: 2}
        sampling: {count: 4, steps: 3, grid_columns: 2}
        """
    }

    /// The threaded paths this size crosses (`splitRows`: rows ≥ 2·workers and ≥ 2 Mflop;
    /// `parallelTasks` for attention: batch · heads > 1 tasks), so a test of it is not one
    /// more single-threaded run.
    @Test func theJobCrossesTheSplitThresholds() {
        let rows = 16 * 16, D = 64
        #expect(rows >= 2 * 2)
        #expect(2 * rows * D * 3 * D >= 2_000_000)   // qkv
        #expect(2 * rows * D * 4 * D >= 2_000_000)   // fc1, fc2
        #expect(16 * 4 > 1)                          // attention heads over the workers
    }

    static let twoThreads = ["LEARNGENE_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"]

    static func reference(_ env: [String: String]) throws -> [String: Data] {
        let root = TempRoot("threaded-ref")
        try PretrainProcessTests.tinyDataset(root, perClass: 12)
        root.job("j", threadedJob())
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root, environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        return PretrainProcessTests.results(root)
    }

    static func checkpointSteps(_ root: TempRoot) -> [Int] {
        CheckpointStore(directory: root.path + "/.state/claimed/j/checkpoints", configHash: "", keep: 1).completeSteps()
    }

    /// Starts the job and kills it with SIGKILL once it logged `step` (true if it got there).
    static func killAfter(_ root: TempRoot, step: Int, env: [String: String], label: String) throws -> Bool {
        let offset = PretrainProcessTests.logSize(root, job: "j")
        let p = try Learngene.start(["serve", "--once", "--crash-limit", "1000", "--root", root.path], root: root, environment: env, label: label)
        let landed = PretrainProcessTests.waitForStep(root, job: "j", step: step, process: p, since: offset)
        p.signal(SIGKILL)
        _ = p.wait(timeout: 60)
        return landed
    }

    @Test func killNineMidTrainingWithThreadedKernelsGivesTheSameBits() throws {
        let reference = try Self.reference(Self.twoThreads)
        let root = TempRoot("threaded-kill")
        try PretrainProcessTests.tinyDataset(root, perClass: 12)
        root.job("j", Self.threadedJob())
        var midTraining = 0
        for (round, step) in [37, 81, 140, 212, 300].enumerated() where !root.exists("Outbox/j") {
            if try Self.killAfter(root, step: step, env: Self.twoThreads, label: "t\(round)") { midTraining += 1 }
        }
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root, environment: Self.twoThreads)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(midTraining >= 4, "only \(midTraining) kills landed mid-training")
        #expect(PretrainProcessTests.results(root) == reference)
    }

    @Test func resumeUnderAnotherThreadCountIsRefusedAndKeepsTheCheckpoint() throws {
        let reference = try Self.reference(Self.twoThreads)
        let root = TempRoot("threaded-refuse")
        try PretrainProcessTests.tinyDataset(root, perClass: 12)
        root.job("j", Self.threadedJob())
        #expect(try Self.killAfter(root, step: 60, env: Self.twoThreads, label: "a"))
        let before = Self.checkpointSteps(root)
        #expect(!before.isEmpty)
        for env in [["LEARNGENE_THREADS": "1", "OPENBLAS_NUM_THREADS": "2"], ["LEARNGENE_THREADS": "2", "OPENBLAS_NUM_THREADS": "1"]] {
            let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root, environment: env)
            #expect(r.status == 1, "\(r.stderr)")
            #expect(r.stderr.contains("LEARNGENE_THREADS=2") && r.stderr.contains("OPENBLAS_NUM_THREADS=2"), "\(r.stderr.suffix(2000))")
            #expect(r.stderr.contains("delete"), "\(r.stderr.suffix(2000))")
            // Nothing trained, nothing lost: the claim and its checkpoints wait for the fix.
            #expect(Self.checkpointSteps(root) == before)
            #expect(root.list("Failed").isEmpty && !root.exists("Outbox/j"))
        }
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root, environment: Self.twoThreads)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(PretrainProcessTests.results(root) == reference)
    }

    @Test func datasetEditedBetweenKillAndRestartIsRefused() throws {
        let root = TempRoot("edited-data")
        try PretrainProcessTests.tinyDataset(root)
        root.job("j", PretrainProcessTests.longJob)
        #expect(try Self.killAfter(root, step: 60, env: [:], label: "a"))
        let before = Self.checkpointSteps(root)
        #expect(!before.isEmpty)
        // Same count, other pixels: one trouser image's bytes replaced by a T-shirt's.
        let dir = root.path + "/Inbox/datasets/ds"
        let shirt = try #require(root.list("Inbox/datasets/ds/0_tshirt_top").first)
        let trouser = try #require(root.list("Inbox/datasets/ds/1_trouser").first)
        let original = try #require(FileManager.default.contents(atPath: "\(dir)/1_trouser/\(trouser)"))
        try FileManager.default.removeItem(atPath: "\(dir)/1_trouser/\(trouser)")
        try FileManager.default.copyItem(atPath: "\(dir)/0_tshirt_top/\(shirt)", toPath: "\(dir)/1_trouser/\(trouser)")
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("dataset") && r.stderr.contains("changed"), "\(r.stderr.suffix(2000))")
        #expect(Self.checkpointSteps(root) == before)
        #expect(root.list("Failed").isEmpty)
        // Restored, the job resumes and finishes.
        try original.write(to: URL(fileURLWithPath: "\(dir)/1_trouser/\(trouser)"))
        let again = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(root.exists("Outbox/j/model.safetensors"))
    }
}

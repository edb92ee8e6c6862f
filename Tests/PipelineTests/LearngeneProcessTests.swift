import Foundation
import Testing
@testable import Pipeline

/// The learngene stages end to end with the real executable on tiny models: pretrain →
/// condense (FINE, KIND, WAVE) → init (two depths) → finetune next to scratch, and kill -9
/// at random moments of condense and init giving the same bits as an uninterrupted run.
@Suite(.serialized) struct LearngeneProcessTests {
    static let model = "model: {input_size: 8, patch_size: 4, hidden_size: 16, depth: 2, num_heads: 2}"
    static let quick = "sampling: {count: 4, steps: 2, grid_columns: 2}\nevaluation: {samples: 0}"

    static func ancestry(steps: Int = 30) -> String {
        """
        stage: pretrain
        inputs: {dataset: ds}
        \(model)
        training: {steps: \(steps), batch_size: 4, log_every: 5, learning_rate: 0.002}
        checkpoint: {every: 10}
        \(quick)
        """
    }

    static func condense(_ method: String, steps: Int = 12, extra: String = "") -> String {
        """
        stage: condense
        inputs: {model: {job: anc}, dataset: ds}
        learngene: {method: \(method), rank: 6, template_size: 8, templates: 2\(extra)}
        training: {steps: \(steps), batch_size: 4, log_every: 3, learning_rate: 0.002}
        checkpoint: {every: 3}
        \(quick)
        """
    }

    static func initialize(_ job: String, _ method: String, steps: Int = 8, depths: String = "[1, 3]", extra: String = "") -> String {
        """
        stage: init
        inputs: {learngene: {job: \(job)}, dataset: ds}
        data: {max_images: 8}
        learngene: {method: \(method), depths: \(depths)\(extra)}
        training: {steps: \(steps), batch_size: 4, log_every: 2, learning_rate: 0.002}
        checkpoint: {every: 2}
        """
    }

    @Test func exampleShapedPipelineRunsForEveryMethod() throws {
        let root = TempRoot("learngene")
        try PretrainProcessTests.tinyDataset(root)
        root.job("anc", Self.ancestry())
        for method in ["fine", "kind", "wave"] {
            root.job("\(method)-lg", Self.condense(method))
            root.job("\(method)-init", Self.initialize("\(method)-lg", method))
        }
        root.job("wave-wide", Self.initialize("wave-lg", "wave", depths: "[2]", extra: ", widths: [32]"))
        root.job("ft-d1", "stage: finetune\ninputs: {model: {job: fine-init}, dataset: ds}\nfinetune: {model_file: depth-1.safetensors}\ntraining: {steps: 10, batch_size: 4, log_every: 5}\n\(Self.quick)\n")
        root.job("scratch-d1", "stage: finetune\ninputs: {dataset: ds}\n\(Self.model.replacingOccurrences(of: "depth: 2", with: "depth: 1"))\ntraining: {steps: 10, batch_size: 4, log_every: 5}\n\(Self.quick)\n")
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(root.list("Failed").isEmpty, "failed: \(root.list("Failed")) \(r.stderr.suffix(3000))")
        for method in ["fine", "kind", "wave"] {
            for f in ["learngene.safetensors", "condensed.safetensors", "metrics.json", "report.html", "loss.png", "samples.png"] {
                #expect(root.exists("Outbox/\(method)-lg/\(f)"), "\(method)-lg lacks \(f)")
            }
            let storage = root.json("Outbox/\(method)-lg/metrics.json")?["storage"]
            #expect((storage?["learngene_bytes"]?.intValue ?? 0) > 0 && (storage?["size_specific_floats"]?.intValue ?? 0) > 0, "\(method): \(String(describing: storage))")
            for f in ["depth-1.safetensors", "depth-3.safetensors", "metrics.json", "report.html"] {
                #expect(root.exists("Outbox/\(method)-init/\(f)"), "\(method)-init lacks \(f)")
            }
            let sizes = root.json("Outbox/\(method)-init/metrics.json")?["sizes"]?.arrayValue ?? []
            #expect(sizes.map { $0["depth"]?.intValue } == [1, 3])
            #expect(sizes.allSatisfy { ($0["trainable_parameters"]?.intValue ?? 0) > 0 && $0["init_steps"]?.intValue == 8 })
            // A descendant is a plain DiT of its depth with DiT's state_dict names.
            let head = String(decoding: FileManager.default.contents(atPath: root.path + "/Outbox/\(method)-init/depth-3.safetensors")!.prefix(8000), as: UTF8.self)
            #expect(head.contains("blocks.2.attn.qkv.weight") && !head.contains("blocks.3."))
        }
        #expect(root.exists("Outbox/wave-wide/depth-2-width-32.safetensors"))
        // The wider descendant's fresh host trains with its scalers.
        let wide = root.json("Outbox/wave-wide/metrics.json")?["sizes"]?.arrayValue?.first
        #expect((wide?["trainable_parameters"]?.intValue ?? 0) > (wide?["size_specific_floats"]?.intValue ?? 0), "\(String(describing: wide))")
        let ft = try #require(root.json("Outbox/ft-d1/metrics.json"))
        #expect(ft["initialized_from"]?.stringValue == "fine-init/depth-1.safetensors" && ft["depth"]?.intValue == 1)
        #expect((ft["learngene_bytes"]?.intValue ?? 0) > 0)
        let scratch = try #require(root.json("Outbox/scratch-d1/metrics.json"))
        #expect(scratch["initialized_from"]?.stringValue?.hasPrefix("scratch") == true && scratch["parameters"] == ft["parameters"])
    }

    @Test func fineSigmaAblationsNeedNoTraining() throws {
        let root = TempRoot("ablation")
        try PretrainProcessTests.tinyDataset(root)
        root.job("anc", Self.ancestry(steps: 10))
        root.job("lg", Self.condense("fine", steps: 3))
        for s in ["random", "identical", "linear"] {
            root.job("init-\(s)", Self.initialize("lg", "fine", depths: "[2]", extra: ", sigma_init: \(s)"))
        }
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(r.status == 0, "\(r.stderr)")
        var files: [Data] = []
        for s in ["random", "identical", "linear"] {
            let row = root.json("Outbox/init-\(s)/metrics.json")?["sizes"]?.arrayValue?.first
            #expect(row?["init_steps"]?.intValue == 0 && row?["trainable_parameters"]?.intValue == 0, "\(s): \(String(describing: row))")
            files.append(FileManager.default.contents(atPath: root.path + "/Outbox/init-\(s)/depth-2.safetensors") ?? Data())
        }
        #expect(Set(files).count == 3, "the three σ initializations gave the same weights")
    }

    static let finetune = """
        stage: finetune
        inputs: {model: {job: init}, dataset: ds}
        finetune: {model_file: depth-3.safetensors}
        training: {steps: 600, batch_size: 4, log_every: 5}
        checkpoint: {every: 7}
        sampling: {count: 4, steps: 2, grid_columns: 2}
        evaluation: {samples: 0}
        """

    /// Runs `job` under `serve --once`, killing the daemon with SIGKILL until it publishes.
    /// Even rounds wait until this process has logged training progress and then kill it a
    /// moment later; odd rounds kill at a random moment. Returns the kills and how many of
    /// them the progress log proves landed mid-training (a step below `steps` logged by the
    /// killed process, which was still running): a kill during start-up proves nothing.
    static func killUntilPublished(_ root: TempRoot, job: String, steps: Int, maxKills: Int = 12) throws -> (kills: Int, midTraining: Int) {
        var rng = SystemRandomNumberGenerator()
        var kills = 0, midTraining = 0
        for round in 0..<maxKills where !root.exists("Outbox/\(job)") {
            let offset = PretrainProcessTests.logSize(root, job: job)
            let p = try Learngene.start(["serve", "--once", "--crash-limit", "1000", "--root", root.path], root: root, label: "k\(round)")
            if round % 2 == 0 {
                if PretrainProcessTests.waitForStep(root, job: job, step: 1, process: p, since: offset, within: 120) {
                    usleep(UInt32.random(in: 0...150_000, using: &rng))
                }
            } else {
                usleep(UInt32.random(in: 50_000...900_000, using: &rng))
            }
            let running = p.process.isRunning
            p.signal(SIGKILL)
            _ = p.wait(timeout: 60)
            if running { kills += 1 }
            if running, let s = PretrainProcessTests.loggedStep(root, job: job, since: offset), s < steps { midTraining += 1 }
        }
        if !root.exists("Outbox/\(job)") {
            let r = try Learngene.run(["serve", "--once", "--crash-limit", "1000", "--root", root.path], root: root)
            #expect(r.status == 0, "\(r.stderr)")
        }
        return (kills, midTraining)
    }

    @Test(arguments: ["fine", "wave"]) func condenseInitAndFinetuneSurviveKillNine(method: String) throws {
        let files = ["learngene.safetensors", "condensed.safetensors"], initFiles = ["depth-1.safetensors", "depth-3.safetensors"]
        func setUp(_ label: String) throws -> TempRoot {
            let root = TempRoot(label)
            try PretrainProcessTests.tinyDataset(root)
            root.job("anc", Self.ancestry(steps: 10))
            let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
            #expect(r.status == 0, "\(r.stderr)")
            return root
        }
        // Uninterrupted.
        let ref = try setUp("kill-ref")
        ref.job("lg", Self.condense(method, steps: 300))
        ref.job("init", Self.initialize("lg", method, steps: 150))
        ref.job("ft", Self.finetune)
        var r = try Learngene.run(["serve", "--once", "--root", ref.path], root: ref)
        #expect(r.status == 0, "\(r.stderr)")
        // Killed at random moments, job by job.
        let root = try setUp("kill")
        root.job("lg", Self.condense(method, steps: 300))
        let (k1, m1) = try Self.killUntilPublished(root, job: "lg", steps: 300)
        root.job("init", Self.initialize("lg", method, steps: 150))
        let (k2, m2) = try Self.killUntilPublished(root, job: "init", steps: 150)
        root.job("ft", Self.finetune)
        let (k3, m3) = try Self.killUntilPublished(root, job: "ft", steps: 600)
        print("\(method): \(k1) kills during condense (\(m1) mid-training), \(k2) during init (\(m2)), \(k3) during finetune (\(m3))")
        #expect(m1 >= 1 && m2 >= 1 && m3 >= 1, "kills that landed mid-training: condense \(m1), init \(m2), finetune \(m3)")
        for f in ["model.safetensors", "ema.safetensors", "samples.png"] {
            #expect(FileManager.default.contents(atPath: root.path + "/Outbox/ft/\(f)") == FileManager.default.contents(atPath: ref.path + "/Outbox/ft/\(f)"), "\(method) ft/\(f) differs after \(k3) kills")
        }
        for f in files {
            #expect(FileManager.default.contents(atPath: root.path + "/Outbox/lg/\(f)") == FileManager.default.contents(atPath: ref.path + "/Outbox/lg/\(f)"), "\(method) lg/\(f) differs after \(k1) kills")
        }
        for f in initFiles {
            #expect(FileManager.default.contents(atPath: root.path + "/Outbox/init/\(f)") == FileManager.default.contents(atPath: ref.path + "/Outbox/init/\(f)"), "\(method) init/\(f) differs after \(k2) kills")
        }
        r = try Learngene.run(["status", "--root", root.path], root: root)
        #expect(root.list("Failed").isEmpty)
    }
}

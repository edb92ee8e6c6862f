import Foundation
import Testing
@testable import Pipeline

@Suite struct ManifestTests {
    /// samples.npz is ZIP32: a valid-looking manifest whose samples exceed 4 GiB used to reach
    /// NumpyArchive's precondition after training; now it is refused when read.
    @Test func samplesOverFourGiBAreAManifestProblem() {
        let p = problems("stage: pretrain\ninputs: {dataset: x}\nmodel: {input_size: 256, patch_size: 16, in_channels: 3}\nsampling: {count: 30000}\n")
        #expect(p.contains { $0.field == "sampling.count" && $0.message.contains("4 GiB") }, "\(p)")
        #expect(!problems("stage: pretrain\ninputs: {dataset: x}\nmodel: {input_size: 256, patch_size: 16, in_channels: 3}\nsampling: {count: 20000}\n")
            .contains { $0.field == "sampling.count" })
    }

    @Test func minimalManifestGetsEveryDefault() throws {
        let m = try manifest("stage: pretrain\ninputs:\n  dataset: fashion\n", file: "fm.yaml")
        #expect(m.name == "fm")
        #expect(m.stage == "pretrain")
        #expect(m.inputs == ["dataset": .dataset("fashion")])
        #expect(m.model.preset == "cpu-28-small")
        #expect(m.model.inputSize == 28 && m.model.patchSize == 4 && m.model.hiddenSize == 128)
        #expect(m.model.classDropoutProb == 0.1)
        #expect(m.training.steps == 1000 && m.training.recipe == "cpu" && m.training.learningRate == 2e-3)
        #expect(m.sampling.seed == m.seed)
        #expect(m.checkpoint.every == 200 && m.checkpoint.keep == 2)
        #expect(m.evaluation.metrics == Manifest.EvaluationSection.defaults && m.evaluation.samples == 1000)
        #expect(!m.evaluation.metrics.contains("fid_inception_v3"))
        let all = try manifest("stage: pretrain\ninputs: {dataset: x}\nevaluation: {metrics: [all]}\n")
        #expect(all.evaluation.metrics == Manifest.EvaluationSection.available)
        let fid = try manifest("stage: pretrain\ninputs: {dataset: x}\nevaluation: {metrics: [class_accuracy_pixels, inception]}\n")
        #expect(fid.evaluation.metrics == ["class_accuracy_pixels", "fid_inception_v3", "sfid_inception_v3", "precision_inception_v3", "recall_inception_v3"])
    }

    /// `training.recipe` picks every default; a field written wins; the resolved manifest says all.
    @Test func recipesGiveTheirDefaultsAndFieldsOverride() throws {
        let cpu = try manifest("stage: pretrain\ninputs: {dataset: x}\ntraining: {steps: 3000}\n")
        #expect(cpu.training.lrSchedule == .cosine && cpu.training.warmupSteps == 100 && cpu.training.minLRFraction == 0.1)
        #expect(cpu.training.emaSchedule == .warmup && cpu.training.emaDecay == 0.999)
        #expect(cpu.training.lossWeighting == .minSNR && cpu.training.minSNRGamma == 5 && cpu.training.gradClip == 1)
        let short = try manifest("stage: pretrain\ninputs: {dataset: x}\ntraining: {steps: 60}\n")
        #expect(short.training.warmupSteps == 6)  // a tenth of a run shorter than 1000 steps
        let dit = try manifest("stage: pretrain\ninputs: {dataset: x}\ntraining: {recipe: dit, steps: 50}\n")
        let s = dit.training.settings
        #expect(s.optimizer.learningRate == 1e-4 && s.lrSchedule == .constant && s.warmupSteps == 0)
        #expect(s.emaSchedule == .constant && s.emaDecay == 0.9999 && s.lossWeighting == .uniform && s.gradClip == nil)
        let mixed = try manifest("stage: pretrain\ninputs: {dataset: x}\ntraining: {recipe: dit, loss_weighting: min-snr, grad_clip: 2}\n")
        #expect(mixed.training.lossWeighting == .minSNR && mixed.training.settings.gradClip == 2 && mixed.training.learningRate == 1e-4)
        #expect(mixed.yaml().contains("recipe: dit") && mixed.yaml().contains("loss_weighting: min-snr"))
        #expect(throws: ManifestError.self) { try manifest("stage: pretrain\ninputs: {dataset: x}\ntraining: {recipe: fast}\n") }
        #expect(throws: ManifestError.self) { try manifest("stage: pretrain\ninputs: {dataset: x}\ntraining: {lr_schedule: step}\n") }
        #expect(throws: ManifestError.self) { try manifest("stage: pretrain\ninputs: {dataset: x}\nsampling: {sampler: euler}\n") }
        #expect(try manifest("stage: pretrain\ninputs: {dataset: x}\nsampling: {sampler: dpm++2m, steps: 10}\n").sampling.sampler == "dpm++2m")
    }

    @Test func metricAliasesExpandAndDuplicatesCollapse() throws {
        let m = try manifest("stage: pretrain\ninputs: {dataset: x}\nevaluation: {metrics: [precision_recall, fd_effnet_lite0, recall_effnet_lite0]}\n")
        #expect(m.evaluation.metrics == ["precision_effnet_lite0", "recall_effnet_lite0", "fd_effnet_lite0"])
        let none = try manifest("stage: pretrain\ninputs: {dataset: x}\nevaluation: {metrics: []}\n")
        #expect(none.evaluation.metrics.isEmpty)
    }

    @Test func presetFillsModelFieldsAndOverridesWin() throws {
        let m = try manifest("stage: pretrain\ninputs: {dataset: x}\nmodel: {preset: cpu-32, depth: 2}\n")
        #expect(m.model.inputSize == 32 && m.model.inChannels == 3 && m.model.patchSize == 2 && m.model.hiddenSize == 192)
        #expect(m.model.depth == 2)
    }

    @Test func resolvedYAMLIsAValidManifestThatReadsBackTheSame() throws {
        let text = """
            stage: pretrain
            seed: 7
            inputs:
              dataset: {path: Inbox/datasets/x}
            model: {num_classes: 3, class_dropout_prob: 0.25}
            training: {steps: 12, learning_rate: 0.0003, adam_eps: 1.0e-7}
            sampling: {sampler: ddpm, cfg_scale: 1.5}
            """
        let m = try manifest(text, file: "r.yaml")
        let again = try manifest(m.yaml(), file: "r.yaml")
        #expect(again == m)
        #expect(again.configHash == m.configHash)
        #expect(m.yaml().contains("learning_rate: 0.0003"))
        #expect(m.sampling.seed == 7)
    }

    @Test func jsonManifestsWork() throws {
        let m = try manifest(#"{"stage": "pretrain", "inputs": {"dataset": {"job": "parent"}}, "training": {"steps": 5}}"#, file: "j.json")
        #expect(m.inputs["dataset"] == .job("parent"))
        #expect(m.training.steps == 5)
        #expect(m.jobDependencies == ["parent"])
    }

    @Test func configHashChangesWithAnyResultRelevantField() throws {
        let a = try manifest("stage: pretrain\ninputs: {dataset: x}\n")
        let b = try manifest("stage: pretrain\ninputs: {dataset: x}\nseed: 1\n")
        let c = try manifest("stage: pretrain\ninputs: {dataset: x}\ntraining: {batch_size: 16}\n")
        #expect(Set([a.configHash, b.configHash, c.configHash]).count == 3)
    }

    @Test func nameMustMatchTheFileName() {
        let p = problems("stage: pretrain\nname: other\ninputs: {dataset: x}\n", file: "mine.yaml")
        #expect(p.count == 1 && p[0].field == "name")
        #expect(p[0].fix.contains("other.yaml"))
        #expect(problems("stage: pretrain\nname: mine\ninputs: {dataset: x}\n", file: "mine.yaml").isEmpty)
    }

    /// The bad-manifest corpus: each is refused with the field named and a fix.
    @Test(arguments: [
        ("stage: pretrain\ninputs: {dataset: x}\ntraining: {steps: -5}\n", "training.steps"),
        ("stage: pretrain\ninputs: {dataset: x}\ntraining: {steps: ten}\n", "training.steps"),
        ("stage: pretrain\ninputs: {dataset: x}\ntraining: {stesp: 10}\n", "training.stesp"),
        ("stage: pretrain\ninputs: {dataset: x}\nmodel: {input_size: 1000000000}\n", "model.input_size"),
        ("stage: pretrain\ninputs: {dataset: x}\nmodel: {input_size: 31623}\n", "model.input_size"),
        ("stage: pretrain\ninputs: {dataset: x}\nmodel: {patch_size: 5}\n", "model.patch_size"),
        ("stage: pretrain\ninputs: {dataset: x}\nmodel: {hidden_size: 130}\n", "model.hidden_size"),
        ("stage: pretrain\ninputs: {dataset: x}\nmodel: {preset: DiT-XXL/2}\n", "model.preset"),
        ("stage: pretrain\ninputs: {dataset: x}\ntraining: {batch_size: 4096}\nmodel: {preset: DiT-XL/2}\n", "training.batch_size"),
        ("stage: pretrain\ninputs: {dataset: x}\ntraining: {learning_rate: 0}\n", "training.learning_rate"),
        ("stage: pretrain\ninputs: {dataset: x}\ntraining: {learning_rate: .nan}\n", "training.learning_rate"),
        ("stage: pretrain\ninputs: {dataset: x}\nsampling: {sampler: euler}\n", "sampling.sampler"),
        ("stage: pretrain\ninputs: {dataset: x}\nsampling: {steps: 5000}\n", "sampling.steps"),
        ("stage: pretrain\ninputs: {dataset: x}\ncheckpoint: {keep: 0}\n", "checkpoint.keep"),
        ("stage: pretrain\ninputs: {dataset: x}\ndata: {bad_images: ignore}\n", "data.bad_images"),
        ("stage: pretrain\ninputs: {dataset: x}\nevaluation: {metrics: [fid]}\n", "evaluation.metrics[0]"),
        ("stage: pretrain\ninputs: {dataset: x}\nevaluation: {metrics: [fd_effnet_lite0, bogus]}\n", "evaluation.metrics[1]"),
        ("stage: pretrain\ninputs: {dataset: x}\nevaluation: {samples: -1}\n", "evaluation.samples"),
        ("stage: pretrain\ninputs: {dataset: x}\nevaluation: {input_size: 100000}\n", "evaluation.input_size"),
        ("stage: pretrain\ninputs: {dataset: x}\nevaluation: {model_file: ../x.safetensors}\n", "evaluation.model_file"),
        ("stage: pretrain\ninputs: {dataset: x}\nevaluation: {reference_statistics: ../stats.npz}\n", "evaluation.reference_statistics"),
        ("stage: pretrain\ninputs: {dataset: x}\nevaluation: {reference_statistics: /tmp/stats.npz}\n", "evaluation.reference_statistics"),
        ("stage: pretrain\ninputs: {dataset: x}\nevaluation: {reference_statistics: stats.pkl}\n", "evaluation.reference_statistics"),
        ("stage: pretrain\ninputs: {dataset: x}\nevaluation: {reference_statistics: 5}\n", "evaluation.reference_statistics"),
        ("stage: pretrain\ninputs: {dataset: x}\nevaluation: {metrics: [fd_effnet_lite0], reference_statistics: s.npz}\n", "evaluation.reference_statistics"),
        ("stage: pretrain\ninputs: {dataset: x}\nseed: -1\n", "seed"),
        ("stage: pretrain\ninputs: {dataset: x}\nversion: 2\n", "version"),
        ("stage: pretrian\ninputs: {dataset: x}\n", "stage"),
        ("inputs: {dataset: x}\n", "stage"),
        ("stage: pretrain\n", "inputs.dataset"),
        ("stage: pretrain\ninputs: {dataset: ../../etc}\n", "inputs.dataset"),
        ("stage: pretrain\ninputs: {dataset: {path: ../outside}}\n", "inputs.dataset"),
        ("stage: pretrain\ninputs: {dataset: {path: a/../../b}}\n", "inputs.dataset"),
        ("stage: pretrain\ninputs: {dataset: {job: job}}\n", "inputs.dataset"),
        ("stage: pretrain\ninputs: {dataset: {dataset: a, job: b}}\n", "inputs.dataset"),
        ("stage: pretrain\ninputs: {dataset: x, model: y}\n", "inputs.model"),
        ("stage: pretrain\ninputs: {dataset: x}\ntraining: 5\n", "training"),
        ("stage: pretrain\ninputs: {dataset: x}\nmodel: {num_classes: many}\n", "model.num_classes"),
        ("stage: pretrain\ninputs: {dataset: x}\ndata: {horizontal_flip: maybe}\n", "data.horizontal_flip"),
        ("stage: 3\ninputs: {dataset: x}\n", "stage"),
        ("- stage: pretrain\n", ""),
        ("stage: pretrain\ninputs: {dataset: x\n", ""),
        ("stage: pretrain\nstage: pretrain\n", ""),
        ("", ""),
    ])
    func badManifestIsRefusedNamingTheField(text: String, field: String) {
        let p = problems(text)
        #expect(!p.isEmpty, "accepted: \(text)")
        #expect(p.contains { $0.field == field }, "fields \(p.map(\.field)) for: \(text)")
        #expect(p.allSatisfy { !$0.fix.isEmpty && !$0.message.isEmpty })
    }

    @Test func allProblemsAreReportedAtOnceWithLines() {
        let p = problems("stage: pretrain\ninputs: {dataset: x}\ntraining:\n  steps: -1\n  batch_size: 0\nsampling: {count: -2}\n")
        #expect(Set(p.map(\.field)) == ["training.steps", "training.batch_size", "sampling.count"])
        #expect(p.first { $0.field == "training.steps" }?.line == 4)
    }

    @Test func typoGetsASuggestion() {
        let p = problems("stage: pretrain\ninputs: {dataset: x}\ntrainig: {steps: 3}\n")
        #expect(p.count == 1)
        #expect(p[0].fix.contains("did you mean `training`"))
    }

    @Test func hostileManifestsAreBounded() {
        // YAML alias bomb: 9 levels of 9 references would expand to 9^9 nodes.
        var bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
        for i in 1...8 {
            let prev = i == 1 ? "a" : "a\(i - 1)"
            bomb += "a\(i): &a\(i) [" + Array(repeating: "*\(prev)", count: 9).joined(separator: ", ") + "]\n"
        }
        let p = problems(bomb)
        #expect(p.count == 1 && p[0].message.contains("values"))
        // Oversized file.
        let big = "stage: pretrain\n# " + String(repeating: "x", count: 2 << 20) + "\n"
        #expect(problems(big).first?.message.contains("bytes") == true)
        // Deep nesting in JSON.
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(!problems(#"{"stage": "pretrain", "x": "# + deep + "}", file: "d.json").isEmpty)
        // Not UTF-8.
        #expect((try? Manifest.parse([0xFF, 0xFE, 0x00], fileName: "b.yaml")) == nil)
    }

    @Test func pathsOutsideTheRootAreRefused() throws {
        let root = "/srv/learngene"
        let inside = try manifest("stage: pretrain\ninputs: {dataset: {path: /srv/learngene/Inbox/datasets/x}}\n")
        #expect(inside.rootProblems(root: root).isEmpty)
        let outside = try manifest("stage: pretrain\ninputs: {dataset: {path: /etc}}\n")
        #expect(outside.rootProblems(root: root).first?.field == "inputs.dataset")
        let sibling = try manifest("stage: pretrain\ninputs: {dataset: {path: /srv/learngene-other/x}}\n")
        #expect(!sibling.rootProblems(root: root).isEmpty)
    }

    @Test func symlinkOutOfTheRootIsRefusedWhenResolved() throws {
        let root = TempRoot("symlink")
        let outside = TempRoot("outside")
        try FileManager.default.createSymbolicLink(atPath: root.path + "/Inbox/datasets/evil", withDestinationPath: outside.path)
        root.dataset("good")
        #expect(throws: JobError.self) { try RootPaths.resolveInside("Inbox/datasets/evil", root: root.path, field: "inputs.dataset") }
        let good = try RootPaths.resolveInside("Inbox/datasets/good", root: root.path, field: "inputs.dataset")
        #expect(good == root.path + "/Inbox/datasets/good")
        do {
            _ = try RootPaths.resolveInside("Inbox/datasets/evil", root: root.path, field: "inputs.dataset")
        } catch let e as JobError {
            #expect(e.what.contains("symbolic link") && e.where == "inputs.dataset" && !e.fix.isEmpty)
        }
    }

    @Test func jobNames() {
        #expect(JobName.isValid("fm-pretrain_2.v1"))
        #expect(!JobName.isValid(".hidden"))
        #expect(!JobName.isValid("a b"))
        #expect(!JobName.isValid("a/b"))
        #expect(!JobName.isValid(String(repeating: "a", count: 65)))
        #expect(JobName.sanitized("my job!.x") == "my_job_.x")
        #expect(JobName.sanitized("...") == "unnamed")
    }
}

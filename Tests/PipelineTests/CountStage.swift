import Formats
import Foundation
@testable import Pipeline

/// A deterministic stand-in stage for the spool tests: `training.steps` steps of an integer
/// hash chain, with checkpoints through the real store, honoring stop requests. The value it
/// publishes depends on every step, so a resume that skipped or repeated one would show.
struct CountStage: Stage {
    /// Called after each step (job, step): tests use it to request a stop or count steps.
    let onStep: @Sendable (String, Int) -> Void

    init(onStep: @escaping @Sendable (String, Int) -> Void = { _, _ in }) { self.onStep = onStep }

    static let description = StageDescription(name: "count", summary: "test stage", inputs: [
        InputRole(name: "dataset", required: false, shorthandKind: "dataset", help: "a dataset"),
        InputRole(name: "model", required: false, shorthandKind: "job", help: "an earlier job"),
    ])
    var stageDescription: StageDescription { CountStage.description }

    struct State: Codable, Sendable { var value: UInt64; var step: Int }

    static func mix(_ v: UInt64, _ step: Int) -> UInt64 {
        var x = v ^ UInt64(step) &* 0x9E37_79B9_7F4A_7C15
        x = (x ^ (x >> 31)) &* 0xBF58_476D_1CE4_E5B9
        return x ^ (x >> 29)
    }

    /// The value an uninterrupted run publishes.
    static func expected(seed: Int, steps: Int) -> UInt64 {
        var v = UInt64(seed)
        for s in 0..<steps { v = mix(v, s) }
        return v
    }

    func run(_ ctx: JobContext) throws -> StageOutcome {
        let m = ctx.manifest
        if m.seed == 666 { throw JobError(what: "the stage refused seed 666", where: "seed", fix: "use another seed") }
        var warnings: [String] = []
        var state = try ctx.checkpoints.latest(State.self, warnings: &warnings)?.state ?? State(value: UInt64(m.seed), step: 0)
        func save() throws {
            try ctx.checkpoints.save(step: state.step, tensors: SafeTensors.File(tensors: ["v": .i64([Int(bitPattern: UInt(state.value))], shape: [1])]), state: state)
        }
        ctx.progress.setPhase("training", step: state.step, total: m.training.steps)
        while state.step < m.training.steps {
            state.value = CountStage.mix(state.value, state.step)
            state.step += 1
            ctx.progress.trainingStep(state.step, of: m.training.steps, loss: 1.0 / Double(state.step), images: 1)
            onStep(ctx.job, state.step)
            if state.step % m.checkpoint.every == 0 { try save() }
            if ctx.shouldStop() {
                try save()
                return .stopped(step: state.step)
            }
        }
        try save()
        try "\(state.value)\n".write(toFile: ctx.outputDirectory + "/result.txt", atomically: true, encoding: .utf8)
        if let parent = ctx.inputs["model"] {
            try FileManager.default.copyItem(atPath: parent + "/result.txt", toPath: ctx.outputDirectory + "/parent-result.txt")
        }
        return .completed(StageResult(manifest: m, summary: "counted \(state.step) steps"))
    }
}

extension TempRoot {
    func countJob(_ name: String, steps: Int = 10, seed: Int = 1, every: Int = 3, extra: String = "") {
        job(name, "stage: count\nseed: \(seed)\ntraining: {steps: \(steps), log_every: 100}\ncheckpoint: {every: \(every), keep: 2}\n\(extra)")
    }

    func daemon(_ stage: CountStage = CountStage(), once: Bool = true, stop: StopSignal = StopSignal(), crashLimit: Int = 5) -> Daemon {
        var options = DaemonOptions(once: once)
        options.crashLimit = crashLimit
        return Daemon(layout: layout, registry: StageRegistry([stage]), options: options, logger: quietLogger, stop: stop)
    }

    func result(_ job: String) -> UInt64? {
        read("Outbox/\(job)/result.txt").flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }
}

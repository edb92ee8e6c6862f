import Foundation

/// One kind of job (`stage:` in a manifest). A stage reads its inputs, trains or computes,
/// checkpoints through `context.checkpoints`, reports through `context.progress`, and writes
/// its result files into `context.outputDirectory`; the runner publishes that folder.
///
/// Resumption is the stage's contract: started again on the same job after a crash or a stop,
/// it must continue from `context.checkpoints`' newest checkpoint and produce the same bits as
/// a run that was never interrupted. Between steps it checks `context.shouldStop()`; when true
/// it writes a checkpoint and returns `.stopped`.
public protocol Stage: Sendable {
    var stageDescription: StageDescription { get }
    func run(_ context: JobContext) throws -> StageOutcome
}

/// How a stage run ended (failures are thrown, preferably as `JobError`).
public enum StageOutcome: Sendable {
    /// Finished: every output file is in `context.outputDirectory`.
    case completed(StageResult)
    /// Stopped on request after checkpointing at `step`; the job stays claimed and resumes later.
    case stopped(step: Int)
}

public struct StageResult: Sendable {
    /// The manifest as finally resolved (e.g. `num_classes: auto` replaced by the count found).
    public var manifest: Manifest
    /// One line for the log ("trained 2000 steps, final loss 0.031").
    public var summary: String

    public init(manifest: Manifest, summary: String) {
        self.manifest = manifest
        self.summary = summary
    }
}

/// Everything a stage gets for one job.
public final class JobContext: @unchecked Sendable {
    public let job: String
    public let manifest: Manifest
    public let layout: SpoolLayout
    /// Input role → absolute path (inside the root, symlinks resolved).
    public let inputs: [String: String]
    /// Scratch space kept across restarts of this job (removed when it is published or failed).
    public let workDirectory: String
    /// Where the stage writes its results (`Outbox/.tmp-<job>`, emptied before each start).
    public let outputDirectory: String
    public let checkpoints: CheckpointStore
    public let progress: ProgressReporter
    public let log: JobLog
    /// 1 on the first start, more after interruptions.
    public let attempt: Int
    let stop: StopSignal

    public init(job: String, manifest: Manifest, layout: SpoolLayout, inputs: [String: String], workDirectory: String,
                outputDirectory: String, checkpoints: CheckpointStore, progress: ProgressReporter, log: JobLog,
                attempt: Int, stop: StopSignal) {
        self.job = job
        self.manifest = manifest
        self.layout = layout
        self.inputs = inputs
        self.workDirectory = workDirectory
        self.outputDirectory = outputDirectory
        self.checkpoints = checkpoints
        self.progress = progress
        self.log = log
        self.attempt = attempt
        self.stop = stop
    }

    /// True once SIGTERM/SIGINT arrived: finish the current step, checkpoint, return `.stopped`.
    public func shouldStop() -> Bool { stop.isRequested }

    /// Feeds the systemd watchdog during long work between steps.
    public func heartbeat() { progress.heartbeat() }
}

/// The stages this build can run, by name.
public struct StageRegistry: Sendable {
    public var stages: [String: any Stage]
    public var catalog: StageCatalog

    public init(_ stages: [any Stage], catalog: StageCatalog = .standard) {
        self.stages = Dictionary(uniqueKeysWithValues: stages.map { ($0.stageDescription.name, $0) })
        var all = catalog.stages
        for s in stages { all[s.stageDescription.name] = s.stageDescription }
        self.catalog = StageCatalog(Array(all.values))
    }

    public subscript(name: String) -> (any Stage)? { stages[name] }
}

import Foundation
import Metrics
import Logging
import Tensors

/// Runs one claimed job to its end: resume bookkeeping, input resolution, the stage, then
/// publishing to `Outbox/` or failing to `Failed/`. The caller holds the job's lock.
public struct JobRunner: Sendable {
    public let spool: Spool
    public let registry: StageRegistry
    public let logger: Logger
    public let notifier: SystemdNotifier?
    public let stop: StopSignal
    /// Starts in a row without a newer checkpoint before the job is failed as crash-looping.
    public let crashLimit: Int

    public init(spool: Spool, registry: StageRegistry, logger: Logger, notifier: SystemdNotifier?, stop: StopSignal, crashLimit: Int = 5) {
        self.spool = spool
        self.registry = registry
        self.logger = logger
        self.notifier = notifier
        self.stop = stop
        self.crashLimit = crashLimit
    }

    public enum Outcome: Sendable, Equatable {
        case published(String)
        case failed(JobError)
        /// Stopped by a signal; checkpointed, still claimed.
        case stopped
        /// Nothing to do after all (already finished by a crashed predecessor).
        case skipped(String)
        /// Not resumed: its checkpoint would give other bits here (`ResumeRefused`); still
        /// claimed, checkpoints kept, until the daemon runs as the error's fix says.
        case held(JobError)
    }

    var layout: SpoolLayout { spool.layout }

    public func run(_ claim: ClaimedJob) -> Outcome {
        var claim = claim
        // Sampling steps and feature batches feed the watchdog through this hook.
        let notifier = self.notifier
        let beat = Heartbeat.install { notifier?.heartbeat() }
        defer { Heartbeat.remove(beat) }
        let log = JobLog(path: claim.logPath, job: claim.name, logger: logger)
        let life = Lifecycle(log: log)

        // A crash after the publishing (or failing) rename leaves only the cleanup to do.
        if let done = spool.finishedCopy(of: claim) {
            spool.removeClaim(claim)
            log.event("cleanup", "already finished in \(layout.relative(done)); removed the leftover claim")
            refreshIndex()
            return .skipped("already finished in \(layout.relative(done))")
        }
        // A crash in the middle of failing: finish it with the recorded reason.
        if let recorded = FileOps.readString(claim.errorPath).flatMap({ try? JSONValue.parse($0) }).flatMap(JobError.init(json:)) {
            return fail(claim, life: life, recorded, stage: nil, log: log)
        }

        let manifest: Manifest
        switch spool.readManifest(claim.manifestPath) {
        case let .success(m): manifest = m
        case let .failure(e): return fail(claim, life: life, e, stage: nil, log: log)
        }
        guard let stage = registry[manifest.stage] else {
            return fail(claim, life: life, JobError(what: "stage \(manifest.stage) is not available in this build of learngene",
                                        where: "manifest field stage", fix: "use one of: \(registry.stages.keys.sorted().joined(separator: ", "))"),
                        stage: manifest.stage, log: log)
        }

        // Crash-loop guard: count starts that found no newer checkpoint than the previous start.
        let store = CheckpointStore(directory: claim.checkpoints, configHash: manifest.configHash, keep: manifest.checkpoint.keep)
        let newest = store.completeSteps().last ?? 0
        claim.info.starts += 1
        claim.info.startsWithoutProgress = claim.info.starts > 1 && newest <= claim.info.lastStartStep ? claim.info.startsWithoutProgress + 1 : 0
        claim.info.lastStartStep = newest
        claim.info.pid = getpid()
        claim.info.host = FileOps.hostName
        if claim.info.startsWithoutProgress >= crashLimit {
            return fail(claim, life: life, JobError(
                what: "the job was interrupted \(claim.info.startsWithoutProgress + 1) times in a row without reaching a new checkpoint (stuck at step \(newest)); it may be crashing the daemon",
                where: "job \(claim.name), step \(newest)",
                fix: "read Failed/\(claim.name)/log.jsonl and the daemon's log for the crash; fix the input or manifest, or lower checkpoint.every, then drop the manifest in again"),
                        stage: manifest.stage, log: log)
        }
        do { try spool.saveInfo(claim) } catch {
            log.event("warning", "cannot update claim.json: \(error)", level: .warning)
        }

        // Inputs, resolved and checked again now (the planner saw an earlier moment).
        var inputs: [String: String] = [:]
        do {
            for role in manifest.inputs.keys.sorted() {
                inputs[role] = try resolveInput(manifest.inputs[role]!, field: "inputs.\(role)")
            }
        } catch let e as JobError {
            return fail(claim, life: life, e, stage: manifest.stage, log: log)
        } catch {
            return fail(claim, life: life, JobError(what: "\(error)", where: "inputs", fix: "check the inputs"), stage: manifest.stage, log: log)
        }

        let output = layout.outboxStaging(claim.name)
        FileOps.removeTree(output)
        do {
            try FileOps.makeDirectories(output)
            try FileOps.makeDirectories(claim.work)
        } catch {
            return fail(claim, life: life, JobError(what: "cannot create the job's folders: \(error)", where: layout.relative(output),
                                        fix: "check free space and permissions under \(layout.root)"), stage: manifest.stage, log: log)
        }

        let progress = ProgressReporter(job: claim.name, stage: manifest.stage, statusPath: claim.statusPath, log: log,
                                        notifier: notifier, logEvery: manifest.training.logEvery)
        log.event("start", claim.info.starts == 1
                  ? "starting \(manifest.stage) job \(claim.name)"
                  : "resuming \(manifest.stage) job \(claim.name) (start \(claim.info.starts), newest checkpoint step \(newest))",
                  [("stage", .string(manifest.stage)), ("attempt", .int(claim.info.starts)), ("checkpoint_step", .int(newest)),
                   ("config_hash", .string(manifest.configHash))])
        life.apply(.start(resumeStep: min(newest, manifest.training.steps), total: manifest.training.steps))
        progress.writeStatus(force: true)
        let context = JobContext(job: claim.name, manifest: manifest, layout: layout, inputs: inputs, workDirectory: claim.work,
                                 outputDirectory: output, checkpoints: store, progress: progress, log: log,
                                 attempt: claim.info.starts, stop: stop)
        let started = Date()
        let outcome: StageOutcome
        do {
            outcome = try stage.run(context)
        } catch let refused as ResumeRefused {
            let e = refused.error
            log.event("held", "not resumed: \(e.what) [\(e.where)] — fix: \(e.fix)", level: .error, [("error", e.json)])
            logger.error("not resumed: \(e.what) [\(layout.relative(e.where))] — fix: \(e.fix)", metadata: ["job": .string(claim.name)])
            progress.writeStatus(force: true, state: "held")
            return .held(e)
        } catch let e as JobError {
            return fail(claim, life: life, e, stage: manifest.stage, log: log)
        } catch {
            return fail(claim, life: life, JobError(what: "\(error)", where: "stage \(manifest.stage) of job \(claim.name)",
                                        fix: "see log.jsonl in the Failed folder; if the cause is unclear, report it with that folder"),
                        stage: manifest.stage, log: log)
        }

        switch outcome {
        case let .stopped(step):
            life.apply(.stop)
            log.event("stopped", "stopped at step \(step) (checkpointed); it resumes on the next start", [("step", .int(step))])
            progress.writeStatus(force: true, state: "stopped")
            return .stopped
        case let .completed(result):
            do {
                try writeRecords(claim: claim, manifest: result.manifest, output: output, started: started)
                log.event("done", "\(result.summary); publishing to Outbox/\(claim.name)")
                // The log is copied last so that it includes the line above.
                try FileOps.copyFile(claim.logPath, to: output + "/log.jsonl", limit: FileOps.logCopyLimit)
                let target = try spool.publish(claim)
                life.apply(.publish)
                logger.info("published \(layout.relative(target))", metadata: ["job": .string(claim.name)])
                refreshIndex()
                return .published(target)
            } catch {
                return fail(claim, life: life, JobError(what: "cannot publish the results: \(error)", where: layout.relative(output),
                                            fix: "check free space and permissions under \(layout.outbox), then drop the manifest in again"),
                            stage: manifest.stage, log: log)
            }
        }
    }

    /// Rewrites `Outbox/index.html` (atomically) from the published and failed folders. A
    /// failure only warns: the job is published, and `learngene index` rebuilds the page.
    func refreshIndex() {
        do { try OutboxIndex.write(outbox: layout.outbox, failures: spool.indexFailures()) } catch {
            logger.warning("could not rewrite \(layout.relative(layout.outbox))/index.html: \(error); run `learngene index` to rebuild it")
        }
    }

    /// The manifest (resolved and original) and `job.json` beside the stage's outputs.
    func writeRecords(claim: ClaimedJob, manifest: Manifest, output: String, started: Date) throws {
        try FileOps.writeDurably(manifest.yaml(), to: output + "/manifest.yaml")
        let ext = (claim.manifestFileName as NSString).pathExtension
        try FileOps.copyFile(claim.manifestPath, to: output + "/manifest.original.\(ext)")
        let record: JSONValue = .object([
            ("job", .string(claim.name)), ("stage", .string(manifest.stage)), ("claim_id", .string(claim.info.claimId)),
            ("claimed_at", .string(claim.info.claimedAt)), ("finished_at", .string(Timestamp.now())),
            ("starts", .int(claim.info.starts)), ("last_start_wall_seconds", .double((Date().timeIntervalSince(started) * 10).rounded() / 10)),
            ("host", .string(FileOps.hostName)), ("config_hash", .string(manifest.configHash)),
        ])
        try FileOps.writeDurably(record.pretty, to: output + "/job.json")
    }

    /// The job's `JobState`, advanced by the runner's events; each transition is logged, and
    /// an illegal one (a runner bug) is reported rather than silently ignored.
    final class Lifecycle {
        private(set) var state = JobState.claimed
        let log: JobLog
        init(log: JobLog) { self.log = log }

        func apply(_ event: JobState.Event) {
            do {
                let next = try state.applying(event)
                log.event("state", "\(state.name) → \(next.name)", level: .debug,
                          [("from", .string(state.name)), ("to", .string(next.name))])
                state = next
            } catch {
                log.event("warning", "\(error)", level: .warning)
            }
        }
    }

    func resolveInput(_ source: InputSource, field: String) throws -> String {
        switch source {
        case let .dataset(name):
            let rel = layout.relative(layout.datasets) + "/" + name
            guard FileOps.exists(layout.root + "/" + rel) else {
                throw JobError(what: "dataset \(name) is not in Inbox/datasets/", where: field,
                               fix: "copy the ImageFolder dataset to Inbox/datasets/\(name)/<class>/<image>.png, or correct the name")
            }
            return try RootPaths.resolveInside(rel, root: layout.root, field: field)
        case let .path(p):
            return try RootPaths.resolveInside(p, root: layout.root, field: field)
        case let .job(j):
            let dir = layout.published(j)
            guard FileOps.isDirectory(dir) else {
                if let failed = spool.failedJobs()[j] {
                    throw JobError(what: "input job \(j) failed: \(failed.error.what)", where: "\(field) (job \(j))",
                                   fix: "fix \(j) (see \(layout.relative(failed.directory))/error.json), then drop both manifests in again")
                }
                throw JobError(what: "input job \(j) has no results in Outbox/\(j)", where: field,
                               fix: "run job \(j) first (drop its manifest into Inbox/jobs), or correct the name")
            }
            return try RootPaths.resolveInside(layout.relative(dir), root: layout.root, field: field)
        }
    }

    func fail(_ claim: ClaimedJob, life: Lifecycle, _ error: JobError, stage: String?, log: JobLog) -> Outcome {
        life.apply(.fail(error))
        log.event("failed", "failed: \(error.what) [\(error.where)] — fix: \(error.fix)", level: .error, [("error", error.json)])
        do {
            let target = try spool.fail(claim, error: error, stage: stage)
            logger.error("moved to \(layout.relative(target))", metadata: ["job": .string(claim.name)])
            refreshIndex()
        } catch {
            logger.error("cannot move the failed job to Failed/: \(error); it stays in \(layout.relative(claim.directory))",
                         metadata: ["job": .string(claim.name)])
        }
        return .failed(error)
    }
}

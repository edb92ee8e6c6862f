import Foundation
import Logging

/// How the daemon runs.
public struct DaemonOptions: Sendable {
    /// Run everything that is ready, then return (instead of watching forever).
    public var once = false
    /// Full rescan at least this often (seconds), whatever inotify says.
    public var rescanInterval = 30.0
    /// A manifest or dataset modified less than this long ago (seconds) with no close/rename
    /// event seen may still be being written, and waits. `--once` takes everything present.
    public var settleSeconds = 3.0
    /// A manifest that does not parse is failed only after this long unchanged (or a close
    /// event): a writer that pauses mid-file must not have its half-written file moved away.
    public var unparsableSettleSeconds = 30.0
    /// See `JobRunner.crashLimit`.
    public var crashLimit = 5

    public init(once: Bool = false) { self.once = once }
}

/// What a daemon run did.
public struct DaemonSummary: Sendable {
    public var published: [String] = []
    public var failed: [String] = []
    /// Claimed jobs not resumed because their checkpoints would give other bits here.
    public var held: [String] = []
    /// Jobs left waiting at the end of a `--once` run, with the reason.
    public var waiting: [(job: String, reason: String)] = []
    /// True when a stop signal ended the run.
    public var stopped = false
}

/// The spool loop: scan (the source of truth), plan, fail what is wrong, run one ready job,
/// rescan; wait for inotify or the rescan interval when idle. One job runs at a time (the
/// training uses both cores); several daemons may share a root, coordinated by per-job locks.
public final class Daemon: @unchecked Sendable {
    public let spool: Spool
    public let registry: StageRegistry
    public let options: DaemonOptions
    public let logger: Logger
    public let notifier: SystemdNotifier
    public let stop: StopSignal
    let runner: JobRunner
    private var watcher: InboxWatcher?
    private var lastWaitReasons: [String: String] = [:]
    /// Jobs refused a resume (`JobRunner.Outcome.held`): their cause (environment, data) does
    /// not change while this process runs, so they are not retried until a restart.
    private var held: Set<String> = []

    public init(layout: SpoolLayout, registry: StageRegistry, options: DaemonOptions, logger: Logger,
                notifier: SystemdNotifier = SystemdNotifier(environment: [:]), stop: StopSignal = StopSignal()) {
        spool = Spool(layout: layout, catalog: registry.catalog)
        self.registry = registry
        self.options = options
        self.logger = logger
        self.notifier = notifier
        self.stop = stop
        runner = JobRunner(spool: spool, registry: registry, logger: logger, notifier: notifier, stop: stop, crashLimit: options.crashLimit)
    }

    var layout: SpoolLayout { spool.layout }

    public func run() throws -> DaemonSummary {
        try layout.prepare()
        spool.sweepTemporaries()
        if !options.once {
            watcher = InboxWatcher(layout: layout)
            if watcher == nil { logger.warning("inotify is unavailable; scanning every \(Int(options.rescanInterval)) s instead") }
        }
        logger.info("\(options.once ? "processing" : "watching") \(layout.inbox)", metadata: ["root": .string(layout.root)])
        notifier.ready(status: "watching \(layout.inbox)")
        var summary = DaemonSummary()
        var lastScan = -Double.infinity

        while !stop.isRequested {
            notifier.heartbeat()
            let snapshot = spool.scan(isComplete: isComplete)
            lastScan = SystemdNotifier.monotonic()
            watcher?.acknowledgeOverflow()
            watcher?.forget(except: Set(snapshot.inbox.map(\.fileName)).union(snapshot.datasets))
            let decisions = Planner.plan(snapshot)
            var ranJob = false
            var waiting: [(String, String)] = []
            var incomplete = false

            for decision in decisions {
                if stop.isRequested { break }
                switch decision {
                case let .fail(job, file, error):
                    guard let lock = spool.lock(job) else { continue }
                    defer { lock.unlock() }
                    do {
                        let stageName = (try? spool.readManifest(layout.jobs + "/" + file).get())?.stage
                        if let target = try spool.failInboxFile(file, job: job, error: error, stage: stageName) {
                            logger.error("\(file): \(error.what) [\(error.where)] — fix: \(error.fix); moved to \(layout.relative(target))",
                                         metadata: ["job": .string(job)])
                            summary.failed.append(job)
                            runner.refreshIndex()
                        }
                    } catch {
                        logger.error("cannot move \(file) to Failed/: \(error)", metadata: ["job": .string(job)])
                    }
                case let .resume(job):
                    guard !ranJob, !held.contains(job), let lock = spool.lock(job) else { continue }
                    defer { lock.unlock() }
                    guard let claim = spool.openClaim(job) else { continue }
                    ranJob = true
                    record(runner.run(claim), job: job, into: &summary)
                case let .run(job, file):
                    guard !ranJob, let lock = spool.lock(job) else { continue }
                    defer { lock.unlock() }
                    let claim: ClaimedJob?
                    do {
                        claim = try spool.claim(file: file, job: job)
                    } catch {
                        logger.error("cannot claim \(file): \(error)", metadata: ["job": .string(job)])
                        continue
                    }
                    guard let claim else { continue }  // taken by another daemon
                    lastWaitReasons[job] = nil
                    logger.info("claimed \(file)", metadata: ["job": .string(job)])
                    ranJob = true
                    record(runner.run(claim), job: job, into: &summary)
                case let .wait(job, _, reason):
                    waiting.append((job, reason))
                    if lastWaitReasons[job] != reason {
                        lastWaitReasons[job] = reason
                        logger.info("waiting: \(reason)", metadata: ["job": .string(job)])
                    }
                case .incomplete:
                    incomplete = true
                }
                if ranJob { break }  // the world changed: rescan before deciding more
            }
            if stop.isRequested { break }
            if ranJob { continue }
            if options.once && !incomplete {
                summary.waiting = waiting
                break
            }
            // Idle: wait for a folder event, the rescan interval, a settling file or a signal.
            let pendingSettle = incomplete ? options.settleSeconds / 2 : Double.infinity
            let watchdog = notifier.watchdogInterval ?? Double.infinity
            let timeout = min(options.rescanInterval - (SystemdNotifier.monotonic() - lastScan), pendingSettle, watchdog, options.rescanInterval)
            notifier.status("idle: \(waiting.count) job(s) waiting")
            if let watcher {
                _ = watcher.wait(timeout: max(0.05, timeout), stop: stop)
            } else {
                InboxWatcher.sleep(timeout: max(0.05, timeout), stop: stop)
            }
        }
        if stop.isRequested {
            summary.stopped = true
            logger.info("stopping (\(stop.reason ?? "requested"))")
        }
        notifier.stopping(status: "stopping")
        return summary
    }

    func record(_ outcome: JobRunner.Outcome, job: String, into summary: inout DaemonSummary) {
        switch outcome {
        case .published: summary.published.append(job)
        case .failed: summary.failed.append(job)
        case .held:
            summary.held.append(job)
            held.insert(job)
        case .stopped, .skipped: break
        }
    }

    /// A manifest or dataset is complete when `--once` says so, when inotify saw it closed
    /// after writing or renamed in since its last modification, or when it has not changed
    /// for `settleSeconds`.
    func isComplete(_ item: Spool.Item) -> Bool {
        if options.once { return true }
        let now = Date().timeIntervalSince1970
        switch item {
        case let .manifest(name, modified), let .dataset(name, modified):
            if let seen = watcher?.completedAt[name], seen >= modified { return true }
            return now - modified >= options.settleSeconds
        case let .unparsable(name, modified):
            if let seen = watcher?.completedAt[name], seen >= modified { return true }
            return now - modified >= options.unparsableSettleSeconds
        }
    }
}

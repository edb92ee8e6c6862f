import ArgumentParser
import Foundation
import Pipeline

/// `learngene serve`: the daemon. Watches `Inbox/` and runs jobs as their inputs become ready;
/// with `--once`, runs everything that is ready and exits (0, or 1 if a job failed).
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Watch the inbox and run jobs (the daemon).",
        discussion: """
            Folders under the root: Inbox/jobs/ (manifests), Inbox/datasets/ (ImageFolder datasets), \
            Outbox/ (results), Failed/ (failed jobs with error.json) and .state/ (claimed jobs, \
            checkpoints). SIGTERM or SIGINT finishes the current training step, writes a checkpoint \
            and exits 0; the job resumes on the next start. Under systemd (Type=notify) it reports \
            READY, STATUS and WATCHDOG through $NOTIFY_SOCKET.
            """)

    @Option(name: .long, help: ArgumentHelp("Root folder (default: $LEARNGENE_ROOT, else the current folder).", valueName: "dir"))
    var root: String?

    @Flag(name: .long, help: "Run every job that is ready, then exit (non-zero if a job failed).")
    var once = false

    @Option(name: .long, help: ArgumentHelp("Full rescan interval in seconds.", valueName: "seconds"))
    var rescanInterval: Double = 30

    @Option(name: .long, help: ArgumentHelp("Fail a job interrupted this many times in a row without a new checkpoint.", valueName: "n"))
    var crashLimit: Int = 5

    func validate() throws {
        guard rescanInterval > 0 else { throw ValidationError("--rescan-interval must be positive") }
        guard crashLimit >= 1 else { throw ValidationError("--crash-limit must be at least 1") }
    }

    func run() throws {
        let logger = PipelineSetup.logger()
        let layout = PipelineSetup.root(root)
        var options = DaemonOptions(once: once)
        options.rescanInterval = rescanInterval
        options.crashLimit = crashLimit
        let stop = StopSignal()
        stop.installHandlers { message in logger.notice("\(message)") }
        let daemon = Daemon(layout: layout, registry: PipelineSetup.registry, options: options, logger: logger,
                            notifier: SystemdNotifier(), stop: stop)
        let summary: DaemonSummary
        do {
            summary = try daemon.run()
        } catch {
            logger.critical("cannot run in \(layout.root): \(error) — check that the folder exists and is writable")
            throw ExitCode(2)
        }
        if once {
            for (job, reason) in summary.waiting { logger.warning("still waiting: \(reason)", metadata: ["job": .string(job)]) }
            logger.info("done: \(summary.published.count) published, \(summary.failed.count) failed, \(summary.waiting.count) waiting")
        }
        // A signal means "stop cleanly": exit 0 (claimed jobs resume on the next start).
        if once && !(summary.failed.isEmpty && summary.held.isEmpty) && !summary.stopped { throw ExitCode(1) }
    }
}

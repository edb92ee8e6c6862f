import ArgumentParser
import Foundation
import Pipeline

/// `learngene run MANIFEST`: one job in the foreground, without the daemon loop. The manifest
/// is claimed from `Inbox/jobs/` (or copied in, if it lives elsewhere) and published to
/// `Outbox/` as the daemon would; a job name resumes an interrupted (claimed) job.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one job in the foreground.",
        discussion: """
            MANIFEST is a manifest file (in Inbox/jobs/, or anywhere: it is then copied and left in \
            place), or the name of an interrupted job to resume. Exits 0 when the job is published \
            or stopped by a signal (it resumes later), 1 when it is invalid, not ready, or failed.
            """)

    @Argument(help: ArgumentHelp("Manifest file, or the name of an interrupted job.", valueName: "manifest"))
    var manifest: String

    @Option(name: .long, help: ArgumentHelp("Root folder (default: $LEARNGENE_ROOT, else the current folder).", valueName: "dir"))
    var root: String?

    func run() throws {
        let logger = PipelineSetup.logger()
        let layout = PipelineSetup.root(root)
        try layout.prepare()
        let registry = PipelineSetup.registry
        let spool = Spool(layout: layout, catalog: registry.catalog)
        let stop = StopSignal()
        stop.installHandlers { message in logger.notice("\(message)") }
        let runner = JobRunner(spool: spool, registry: registry, logger: logger, notifier: SystemdNotifier(), stop: stop)

        let claim: ClaimedJob
        var lock: FileLock?
        defer { lock?.unlock() }
        let path = RootPaths.normalize(manifest.hasPrefix("/") ? manifest : FileManager.default.currentDirectoryPath + "/" + manifest)
        if !FileManager.default.fileExists(atPath: path) && JobName.isValid(manifest)
            && FileManager.default.fileExists(atPath: layout.claimDirectory(manifest)) {
            guard let l = spool.lock(manifest) else { fail("job \(manifest) is running in another process") }
            lock = l
            guard let c = spool.openClaim(manifest) else { fail("job \(manifest) has no claimed manifest in \(layout.claimDirectory(manifest))") }
            claim = c
        } else {
            guard FileManager.default.fileExists(atPath: path) else { fail("\(manifest) does not exist (neither a file nor an interrupted job's name)") }
            let fileName = (path as NSString).lastPathComponent
            let job = JobName.fromFileName(fileName)
            let parsed: Manifest
            switch spool.readManifest(path) {
            case let .success(m): parsed = m
            case let .failure(e):
                printError("\(fileName): \(e.what) [\(e.where)] — fix: \(e.fix)")
                for p in e.problems where e.problems.count > 1 { printError("  - \(p)") }
                throw ExitCode(1)
            }
            // Readiness: the same rules as the daemon, for this one job.
            var snapshot = spool.scan()
            snapshot.inbox = [SpoolSnapshot.InboxFile(fileName: fileName, jobName: job, parsed: .success(parsed))]
            for decision in Planner.plan(snapshot) {
                switch decision {
                case let .wait(_, _, reason): fail("not ready: \(reason)")
                case let .fail(_, _, e): fail("\(e.what) [\(e.where)] — fix: \(e.fix)")
                default: break
                }
            }
            guard let l = spool.lock(job) else { fail("job \(job) is being handled by another process") }
            lock = l
            let inInbox = (path as NSString).deletingLastPathComponent == layout.jobs
            do {
                if inInbox {
                    guard let c = try spool.claim(file: fileName, job: job) else { fail("\(fileName) was taken by another process") }
                    claim = c
                } else {
                    claim = try spool.claimCopy(of: path, job: job)
                }
            } catch {
                fail("cannot claim \(fileName): \(error)")
            }
        }
        switch runner.run(claim) {
        case let .published(target): print(target)
        case let .failed(e):
            printError("job \(claim.name) failed: \(e.what) [\(e.where)] — fix: \(e.fix)")
            throw ExitCode(1)
        case .stopped: logger.notice("stopped; resume with `learngene run \(claim.name)` or `learngene serve`")
        case let .skipped(why): logger.notice("\(why)")
        case let .held(e):
            printError("job \(claim.name) not resumed: \(e.what) [\(e.where)] — fix: \(e.fix)")
            throw ExitCode(1)
        }
    }

    func fail(_ message: String) -> Never {
        printError("learngene run: \(message)")
        Foundation.exit(1)
    }
}

func printError(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

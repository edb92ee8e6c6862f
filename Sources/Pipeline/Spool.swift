import Foundation
import Metrics

/// What the daemon writes into `claim.json` when it claims or resumes a job.
public struct ClaimInfo: Codable, Sendable, Equatable {
    public var claimId: String
    public var claimedAt: String
    public var host: String
    public var pid: Int32
    /// Times the job was started (1 = never interrupted).
    public var starts: Int = 0
    /// Newest checkpoint step at the last start.
    public var lastStartStep: Int = -1
    /// Consecutive starts that found no newer checkpoint: a job that crashes the daemon over
    /// and over is failed instead of looping forever.
    public var startsWithoutProgress: Int = 0

    enum CodingKeys: String, CodingKey {
        case claimId = "claim_id", claimedAt = "claimed_at", host, pid, starts
        case lastStartStep = "last_start_step", startsWithoutProgress = "starts_without_progress"
    }
}

/// A job in `.state/claimed/<job>/`.
public struct ClaimedJob: Sendable {
    public let name: String
    public let directory: String
    /// The user's manifest file, moved here from `Inbox/jobs/`.
    public let manifestPath: String
    public var info: ClaimInfo

    public var checkpoints: String { directory + "/checkpoints" }
    public var work: String { directory + "/work" }
    public var logPath: String { directory + "/log.jsonl" }
    public var statusPath: String { directory + "/status.json" }
    public var errorPath: String { directory + "/error.json" }
    var infoPath: String { directory + "/claim.json" }
    public var manifestFileName: String { (manifestPath as NSString).lastPathComponent }
}

/// The filesystem side of the spool: scanning (the source of truth), locking, claiming by
/// rename, publishing by rename and failing with `error.json`. Never deletes a user's file
/// unless a copy is already in `Outbox/` or `Failed/`.
public struct Spool: Sendable {
    public let layout: SpoolLayout
    public let catalog: StageCatalog

    public init(layout: SpoolLayout, catalog: StageCatalog = .standard) {
        self.layout = layout
        self.catalog = catalog
    }

    /// Something whose completeness the caller judges (settle time, inotify events).
    public enum Item: Sendable {
        case manifest(fileName: String, modified: Double)
        /// A manifest judged complete that does not parse: it may be a slow writer's partial
        /// file, so it deserves a longer wait before it is failed (and moved away).
        case unparsable(fileName: String, modified: Double)
        case dataset(name: String, modified: Double)
    }

    static let manifestExtensions = ["yaml", "yml", "json"]

    /// Whether a name in `Inbox/jobs/` is a manifest to look at: dot-files and editor or
    /// download temporaries are skipped, as maildir readers skip them.
    public static func isManifestFileName(_ name: String) -> Bool {
        guard !name.hasPrefix("."), !name.hasSuffix("~") else { return false }
        return manifestExtensions.contains((name as NSString).pathExtension.lowercased())
    }

    /// Reads the folders into a snapshot. `isComplete` decides whether a manifest or dataset
    /// that was modified recently may still be being written.
    public func scan(isComplete: (Item) -> Bool = { _ in true }) -> SpoolSnapshot {
        var s = SpoolSnapshot()
        for name in FileOps.list(layout.jobs) where Spool.isManifestFileName(name) {
            let path = layout.jobs + "/" + name
            // lstat: a link is judged (and failed) as a link, never by what it points to.
            guard FileOps.isRegularFileNoFollow(path) || FileOps.isSymlink(path), let mtime = FileOps.lmtime(path) else { continue }
            let job = JobName.fromFileName(name)
            let jobKey = JobName.isValid(job) ? job : JobName.sanitized(job)
            guard isComplete(.manifest(fileName: name, modified: mtime)) else {
                s.inbox.append(.init(fileName: name, jobName: jobKey, parsed: nil, modified: mtime))
                continue
            }
            let parsed = readManifest(path)
            if case let .failure(e) = parsed, e.problems.contains(where: \.isSyntax),
               !isComplete(.unparsable(fileName: name, modified: mtime)) {
                s.inbox.append(.init(fileName: name, jobName: jobKey, parsed: nil, modified: mtime))
                continue
            }
            s.inbox.append(.init(fileName: name, jobName: jobKey, parsed: parsed, modified: mtime))
        }
        for job in FileOps.list(layout.claimed) where !job.hasPrefix(".") {
            if manifestPath(inClaim: layout.claimDirectory(job)) != nil { s.claimed.insert(job) }
        }
        for job in FileOps.list(layout.outbox) where !job.hasPrefix(".") && FileOps.isDirectory(layout.outbox + "/" + job) {
            s.published.insert(job)
        }
        s.failed = failedJobs().mapValues(\.error)
        for name in FileOps.list(layout.datasets) where !name.hasPrefix(".") {
            let path = layout.datasets + "/" + name
            guard FileOps.isDirectory(path) else { continue }
            var newest = FileOps.mtime(path) ?? 0
            for sub in FileOps.list(path) where FileOps.isDirectory(path + "/" + sub, followLinks: false) {
                newest = max(newest, FileOps.mtime(path + "/" + sub) ?? 0)
            }
            if isComplete(.dataset(name: name, modified: newest)) { s.datasets.insert(name) }
        }
        for f in s.inbox {
            guard case let .success(m)? = f.parsed else { continue }
            for case let .path(p) in m.inputs.values {
                if let rel = RootPaths.lexicalRelative(p, root: layout.root), FileOps.exists(rel.isEmpty ? layout.root : layout.root + "/" + rel) {
                    s.readyPaths.insert(p)
                }
            }
        }
        return s
    }

    /// Parses and validates a manifest file (including the root's path rules).
    public func readManifest(_ path: String) -> Result<Manifest, JobError> {
        let name = (path as NSString).lastPathComponent
        let bytes: [UInt8]
        // Never through a link: one to /proc/self/environ or a private file would be read,
        // and copied into Failed/ for everyone to see.
        let linkError = { (target: String?) in
            JobError(what: "the manifest is a symbolic link\(target.map { " (to \($0))" } ?? ""); manifests are read only as plain files",
                     where: self.layout.relative(path), fix: "copy the manifest itself into Inbox/jobs (`cp -L`), not a link to it")
        }
        if FileOps.isSymlink(path) { return .failure(linkError(FileOps.linkTarget(path))) }
        do {
            bytes = try FileOps.read(path, limit: ConfigNode.Limits().maxBytes, followLinks: false)
        } catch let e as FileError where e.code == ELOOP {
            return .failure(linkError(nil))
        } catch {
            return .failure(JobError(what: "cannot read the manifest: \(error)", where: layout.relative(path), fix: "check the file's permissions"))
        }
        do {
            let m = try Manifest.parse(bytes, fileName: name, catalog: catalog)
            let problems = m.rootProblems(root: layout.root)
            if !problems.isEmpty { return .failure(.invalidManifest(problems, file: name)) }
            return .success(m)
        } catch {
            return .failure(error.jobError)
        }
    }

    /// The newest failure of each job, as `Outbox/index.html` lists it.
    public func indexFailures() -> [OutboxIndex.Failure] {
        failedJobs().map { job, f in
            let stage = FileOps.readString(layout.failed + "/" + f.directory + "/error.json").flatMap { try? JSONValue.parse($0) }?["stage"]?.stringValue
            let failed = layout.relative(layout.failed)  // "Failed", a sibling of the Outbox
            let folder = failed.hasPrefix("/") ? "file://" + failed + "/" + f.directory : "../" + failed + "/" + f.directory
            return OutboxIndex.Failure(job: job, stage: stage, what: f.error.what, folder: folder)
        }
    }

    /// The newest failure of each job in `Failed/`.
    public func failedJobs() -> [String: (directory: String, error: JobError)] {
        var out: [String: (String, JobError, Double)] = [:]
        for dir in FileOps.list(layout.failed) where !dir.hasPrefix(".") {
            let path = layout.failed + "/" + dir
            guard FileOps.isDirectory(path) else { continue }
            let json = FileOps.readString(path + "/error.json").flatMap { try? JSONValue.parse($0) }
            let job = json?["job"]?.stringValue ?? dir
            let error = json.flatMap(JobError.init(json:)) ?? JobError(what: "failed (no readable error.json)", where: "Failed/\(dir)", fix: "see the folder")
            let t = FileOps.mtime(path) ?? 0
            if let old = out[job], old.2 > t { continue }
            out[job] = (dir, error, t)
        }
        return out.mapValues { ($0.0, $0.1) }
    }

    // MARK: Locks and claims

    /// The per-job lock; whoever holds it is the only one claiming, running, publishing or
    /// failing that job.
    public func lock(_ job: String) -> FileLock? { FileLock.tryLock(layout.lockFile(job)) }

    /// The manifest's name inside the claim folder: `<job>.<ext>` with the extension in lower case.
    static func claimedFileName(_ file: String, job: String) -> String {
        job + "." + (file as NSString).pathExtension.lowercased()
    }

    /// The user's manifest in a claim folder: `<job>.yaml|yml|json` (the folder's other JSON
    /// files are the daemon's own).
    func manifestPath(inClaim dir: String) -> String? {
        let job = (dir as NSString).lastPathComponent
        for ext in Spool.manifestExtensions where FileOps.isRegularFileNoFollow(dir + "/" + job + "." + ext) || FileOps.isSymlink(dir + "/" + job + "." + ext) {
            return dir + "/" + job + "." + ext
        }
        return nil
    }

    /// Claims `Inbox/jobs/<file>` as job `job` by renaming it into `.state/claimed/<job>/`.
    /// The caller holds the job's lock. Returns nil if the file is gone (another daemon took it).
    public func claim(file: String, job: String) throws -> ClaimedJob? {
        let source = layout.jobs + "/" + file
        guard FileOps.exists(source) else { return nil }
        let dir = layout.claimDirectory(job)
        if FileOps.exists(dir) {
            // A claim folder without a manifest is debris of an interrupted claim or cleanup
            // (the lock we hold proves no one uses it): nothing of the user's is in it.
            guard manifestPath(inClaim: dir) == nil else {
                throw JobError(what: "job \(job) is already claimed", where: layout.relative(dir),
                               fix: "wait for it to finish, or rename this job")
            }
            FileOps.removeTree(dir)
        }
        try FileOps.makeDirectories(dir)
        let info = ClaimInfo(claimId: FileOps.randomHex(), claimedAt: Timestamp.now(), host: FileOps.hostName, pid: getpid())
        try writeInfo(info, to: dir + "/claim.json")
        let target = dir + "/" + Spool.claimedFileName(file, job: job)
        do {
            try FileOps.rename(source, target)
        } catch let e as FileError where e.code == ENOENT {
            FileOps.removeTree(dir)
            return nil
        }
        FileOps.syncDirectory(dir)
        FileOps.syncDirectory(layout.jobs)
        return ClaimedJob(name: job, directory: dir, manifestPath: target, info: info)
    }

    /// Claims a manifest from anywhere (for `learngene run FILE`) by copying it in; the user's
    /// file stays where it is. The caller holds the job's lock.
    public func claimCopy(of path: String, job: String) throws -> ClaimedJob {
        let dir = layout.claimDirectory(job)
        if FileOps.exists(dir) {
            guard manifestPath(inClaim: dir) == nil else {
                throw JobError(what: "job \(job) is already claimed", where: layout.relative(dir),
                               fix: "resume it with `learngene run \(job)` or `learngene serve`, or rename this job")
            }
            FileOps.removeTree(dir)
        }
        try FileOps.makeDirectories(dir)
        let info = ClaimInfo(claimId: FileOps.randomHex(), claimedAt: Timestamp.now(), host: FileOps.hostName, pid: getpid())
        try writeInfo(info, to: dir + "/claim.json")
        let target = dir + "/" + Spool.claimedFileName((path as NSString).lastPathComponent, job: job)
        try FileOps.copyFile(path, to: target)
        FileOps.syncDirectory(dir)
        return ClaimedJob(name: job, directory: dir, manifestPath: target, info: info)
    }

    /// An existing claim (the caller holds the job's lock), or nil if there is none.
    public func openClaim(_ job: String) -> ClaimedJob? {
        let dir = layout.claimDirectory(job)
        guard let manifest = manifestPath(inClaim: dir) else { return nil }
        let info = (try? FileOps.read(dir + "/claim.json")).flatMap { try? JSONDecoder().decode(ClaimInfo.self, from: Data($0)) }
            ?? ClaimInfo(claimId: FileOps.randomHex(), claimedAt: Timestamp.now(), host: FileOps.hostName, pid: getpid())
        return ClaimedJob(name: job, directory: dir, manifestPath: manifest, info: info)
    }

    public func saveInfo(_ claim: ClaimedJob) throws { try writeInfo(claim.info, to: claim.infoPath) }

    func writeInfo(_ info: ClaimInfo, to path: String) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileOps.writeDurably(Array(try e.encode(info)), to: path)
    }

    // MARK: Publishing and failing

    /// Whether this claim was already published or failed (a crash after the publishing rename
    /// but before the claim folder was removed): then only the cleanup remains.
    public func finishedCopy(of claim: ClaimedJob) -> String? {
        for dir in [layout.outbox, layout.failed] {
            for name in FileOps.list(dir) where !name.hasPrefix(".") && (name == claim.name || name.hasPrefix(claim.name + "~")) {
                for file in ["job.json", "error.json"] {
                    if let j = FileOps.readString(dir + "/" + name + "/" + file).flatMap({ try? JSONValue.parse($0) }),
                       j["claim_id"]?.stringValue == claim.info.claimId {
                        return dir + "/" + name
                    }
                }
            }
        }
        return nil
    }

    /// Publishes a finished job: `Outbox/.tmp-<job>` (complete, written by the stage and the
    /// runner) is fsynced and renamed to `Outbox/<job>`, then the claim folder is removed.
    @discardableResult
    public func publish(_ claim: ClaimedJob) throws -> String {
        let staging = layout.outboxStaging(claim.name)
        FileOps.syncTree(staging)
        let target = try renameToFreeName(staging, in: layout.outbox, base: claim.name)
        FileOps.syncDirectory(layout.outbox)
        removeClaim(claim)
        return target
    }

    /// Fails a claimed job: the user's manifest, `error.json` and the log go to `Failed/<job>/`,
    /// then the claim folder (checkpoints, work files) is removed.
    @discardableResult
    public func fail(_ claim: ClaimedJob, error: JobError, stage: String?) throws -> String {
        let record = errorRecord(job: claim.name, error: error, stage: stage, claimId: claim.info.claimId, file: claim.manifestFileName)
        // Recorded in the claim first: if we crash below, a restart finishes the failure.
        try FileOps.writeDurably(record.pretty, to: claim.errorPath)
        let staging = layout.failed + "/.tmp-" + claim.name + "-" + claim.info.claimId
        FileOps.removeTree(staging)
        try FileOps.makeDirectories(staging)
        let kept = try FileOps.preserve(claim.manifestPath, to: staging + "/" + claim.manifestFileName)
        try FileOps.copyFile(claim.errorPath, to: staging + "/error.json")
        if FileOps.exists(claim.logPath) { try FileOps.copyFile(claim.logPath, to: staging + "/log.jsonl", limit: FileOps.logCopyLimit) }
        FileOps.syncDirectory(staging)
        let target = try renameToFreeName(staging, in: layout.failed, base: claim.name)
        FileOps.syncDirectory(layout.failed)
        if !kept { moveAfterPublishing(claim.manifestPath, to: target + "/" + claim.manifestFileName) }
        removeClaim(claim)
        return target
    }

    /// Fails a manifest still in `Inbox/jobs/` (invalid, duplicate, cycle, failed input). The
    /// caller holds the job's lock. Returns nil if the file is gone.
    @discardableResult
    public func failInboxFile(_ file: String, job: String, error: JobError, stage: String?) throws -> String? {
        let source = layout.jobs + "/" + file
        guard FileOps.exists(source) else { return nil }
        let id = FileOps.randomHex()
        let record = errorRecord(job: job, error: error, stage: stage, claimId: id, file: file)
        let staging = layout.failed + "/.tmp-" + job + "-" + id
        try FileOps.makeDirectories(staging)
        // A link is kept as a link (never read through); a file too large to copy is moved
        // in after publishing, so at every moment it is in Inbox/jobs or in Failed/.
        let kept = try FileOps.preserve(source, to: staging + "/" + file)
        try FileOps.writeDurably(record.pretty, to: staging + "/error.json")
        FileOps.syncDirectory(staging)
        let target = try renameToFreeName(staging, in: layout.failed, base: job)
        FileOps.syncDirectory(layout.failed)
        if kept {
            unlink(source)  // the copy is in Failed/ now
        } else {
            moveAfterPublishing(source, to: target + "/" + file)
        }
        FileOps.syncDirectory(layout.jobs)
        return target
    }

    /// Moves a file the failure could not copy into its published `Failed/` folder.
    func moveAfterPublishing(_ source: String, to target: String) {
        if Foundation.rename(source, target) == 0 {
            FileOps.syncDirectory((target as NSString).deletingLastPathComponent)
        }
    }

    /// Removes a finished claim. The manifest goes first (its copy is in Outbox/ or Failed/):
    /// a crash part-way then leaves a folder without a manifest, which is debris, never a
    /// claim that would run the job a second time.
    public func removeClaim(_ claim: ClaimedJob) {
        unlink(claim.manifestPath)
        FileOps.syncDirectory(claim.directory)
        FileOps.removeTree(claim.directory)
        FileOps.syncDirectory(layout.claimed)
    }

    func errorRecord(job: String, error: JobError, stage: String?, claimId: String, file: String) -> JSONValue {
        var pairs: [(String, JSONValue)] = [("job", .string(job))]
        if let stage { pairs.append(("stage", .string(stage))) }
        if case let .object(e) = error.json { pairs += e }
        pairs += [("manifest", .string(file)), ("failed_at", .string(Timestamp.now())), ("claim_id", .string(claimId)),
                  ("host", .string(FileOps.hostName))]
        return .object(pairs)
    }

    /// Renames `source` to `<dir>/<base>`, or `<base>~2`, `<base>~3`, … if taken (earlier
    /// failures of a job with the same name are kept). rename(2) refuses to replace a
    /// non-empty folder, so two daemons can never overwrite each other's result.
    func renameToFreeName(_ source: String, in dir: String, base: String) throws -> String {
        var n = 1
        while true {
            let target = dir + "/" + (n == 1 ? base : "\(base)~\(n)")
            if !FileOps.exists(target) {
                if Foundation.rename(source, target) == 0 { return target }
                if errno != EEXIST && errno != ENOTEMPTY { throw FileError(operation: "rename to \(target)", path: source, code: errno) }
            }
            n += 1
            if n > 10_000 { throw FileError(operation: "rename", path: source, code: EEXIST) }
        }
    }

    /// Removes temporaries left by a crash: `Outbox/.tmp-<job>` and `Failed/.tmp-<job>-<id>`
    /// whose job nobody holds. Their sources (claim folder or inbox file) still exist, so
    /// nothing of the user's is lost; the work is redone.
    public func sweepTemporaries() {
        for (dir, idLength) in [(layout.outbox, 0), (layout.failed, 17)] {
            for name in FileOps.list(dir) where name.hasPrefix(".tmp-") {
                var job = String(name.dropFirst(5))
                if idLength > 0 {
                    guard job.count > idLength else { continue }
                    job = String(job.dropLast(idLength))
                }
                guard JobName.isValid(job), let lock = lock(job) else { continue }
                FileOps.removeTree(dir + "/" + name)
                lock.unlock()
            }
        }
    }
}

/// ISO 8601 UTC timestamps for files.
enum Timestamp {
    static func now() -> String { string(Date()) }
    static func string(_ d: Date) -> String {
        let t = Int(d.timeIntervalSince1970)
        var tmv = tm()
        var tt = time_t(t)
        gmtime_r(&tt, &tmv)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", tmv.tm_year + 1900, tmv.tm_mon + 1, tmv.tm_mday, tmv.tm_hour, tmv.tm_min, tmv.tm_sec)
    }
}

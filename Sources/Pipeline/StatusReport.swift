import Foundation

/// `learngene status`: every job under a root with its state, read from the folders (and the
/// running jobs' `status.json`) without taking any lock, so it never disturbs a daemon.
public struct JobStatus: Sendable {
    public var job: String
    /// queued, waiting, writing, invalid, running, interrupted, published, failed
    public var state: String
    public var detail: String
    /// `status.json` of a running or interrupted job.
    public var progress: JSONValue?

    public var json: JSONValue {
        var pairs: [(String, JSONValue)] = [("job", .string(job)), ("state", .string(state)), ("detail", .string(detail))]
        if let progress { pairs.append(("progress", progress)) }
        return .object(pairs)
    }
}

public enum StatusReport {
    public static func collect(layout: SpoolLayout, catalog: StageCatalog = .standard, settleSeconds: Double = 3) -> [JobStatus] {
        let spool = Spool(layout: layout, catalog: catalog)
        let now = Date().timeIntervalSince1970
        let snapshot = spool.scan { item in
            switch item {
            case let .manifest(_, m), let .dataset(_, m), let .unparsable(_, m): now - m >= settleSeconds
            }
        }
        var rows: [JobStatus] = []
        let held = heldLockInodes()

        for job in snapshot.claimed.sorted() {
            let dir = layout.claimDirectory(job)
            let status = FileOps.readString(dir + "/status.json").flatMap { try? JSONValue.parse($0) }
            let running = FileOps.identity(layout.lockFile(job)).map { held.contains($0.1) } ?? false
            let ckpts = CheckpointStore(directory: dir + "/checkpoints", configHash: "", keep: 1).completeSteps()
            if running {
                var detail = status?["phase"]?.stringValue ?? "running"
                if let s = status?["step"]?.intValue, let t = status?["total_steps"]?.intValue, t > 0 {
                    detail = "step \(s)/\(t)"
                    if let l = status?["loss"]?.doubleValue { detail += String(format: ", loss %.4f", l) }
                    if let ips = status?["images_per_second"]?.doubleValue, ips > 0 { detail += String(format: ", %.1f images/s", ips) }
                    if let eta = status?["eta_seconds"]?.doubleValue { detail += ", ETA \(ProgressReporter.duration(eta))" }
                }
                rows.append(JobStatus(job: job, state: "running", detail: detail, progress: status))
            } else {
                let at = ckpts.last.map { "checkpoint at step \($0)" } ?? "no checkpoint yet"
                rows.append(JobStatus(job: job, state: "interrupted", detail: "\(at); resumes when a daemon starts", progress: status))
            }
        }
        for decision in Planner.plan(snapshot) {
            switch decision {
            case let .run(job, file):
                rows.append(JobStatus(job: job, state: "queued", detail: "ready (\(file))"))
            case let .wait(job, _, reason):
                rows.append(JobStatus(job: job, state: "waiting", detail: reason))
            case let .fail(job, file, error):
                rows.append(JobStatus(job: job, state: "invalid", detail: "\(file): \(error.what) — fix: \(error.fix)"))
            case let .incomplete(file):
                rows.append(JobStatus(job: JobName.fromFileName(file), state: "writing", detail: "\(file) was modified in the last \(Int(settleSeconds)) s"))
            case .resume: break
            }
        }
        for job in snapshot.published.sorted() {
            let info = FileOps.readString(layout.published(job) + "/job.json").flatMap { try? JSONValue.parse($0) }
            rows.append(JobStatus(job: job, state: "published", detail: "Outbox/\(job)" + (info?["finished_at"]?.stringValue.map { ", finished \($0)" } ?? "")))
        }
        for (job, entry) in spool.failedJobs().sorted(by: { $0.key < $1.key }) where !snapshot.published.contains(job) {
            rows.append(JobStatus(job: job, state: "failed", detail: "\(layout.relative(entry.directory)): \(entry.error.what)"))
        }
        return rows
    }

    /// Inodes of files with a flock held by any process (from /proc/locks), so a running job
    /// is told from an interrupted one without touching its lock.
    static func heldLockInodes() -> Set<UInt64> {
        guard let text = FileOps.readString("/proc/locks") else { return [] }
        var out = Set<UInt64>()
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (blocked waiters have "->")
            guard f.count >= 6, f[1] == "FLOCK" else { continue }
            if let inode = f[5].split(separator: ":").last.flatMap({ UInt64($0) }) { out.insert(inode) }
        }
        return out
    }

    /// A plain table for terminals.
    public static func table(_ rows: [JobStatus]) -> String {
        guard !rows.isEmpty else { return "no jobs (drop manifests into Inbox/jobs/)\n" }
        let w1 = max(3, rows.map(\.job.count).max()!), w2 = max(5, rows.map(\.state.count).max()!)
        func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
        var out = "\(pad("JOB", w1))  \(pad("STATE", w2))  DETAIL\n"
        for r in rows { out += "\(pad(r.job, w1))  \(pad(r.state, w2))  \(r.detail)\n" }
        return out
    }
}

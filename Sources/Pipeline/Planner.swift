/// What the spool looks like at one moment, as the planner needs it (no filesystem access).
public struct SpoolSnapshot: Sendable {
    /// A manifest file in `Inbox/jobs/`.
    public struct InboxFile: Sendable {
        public var fileName: String
        public var jobName: String
        /// nil while the file may still be being written (not yet complete).
        public var parsed: Result<Manifest, JobError>?
        /// Modification time (seconds): older files are taken first.
        public var modified: Double

        public init(fileName: String, jobName: String, parsed: Result<Manifest, JobError>?, modified: Double = 0) {
            self.fileName = fileName
            self.jobName = jobName
            self.parsed = parsed
            self.modified = modified
        }
    }

    public var inbox: [InboxFile] = []
    /// Jobs in the state folder (claimed: running elsewhere, or interrupted and resumable).
    public var claimed: Set<String> = []
    /// Jobs with results in `Outbox/`.
    public var published: Set<String> = []
    /// Jobs in `Failed/`, with the newest reason.
    public var failed: [String: JobError] = [:]
    /// Dataset names present in `Inbox/datasets/`.
    public var datasets: Set<String> = []
    /// `path:` inputs (as written) that exist inside the root.
    public var readyPaths: Set<String> = []

    public init() {}
}

/// What to do with each job.
public enum Decision: Sendable, Equatable {
    /// Resume a claimed job (if no live daemon holds it).
    case resume(job: String)
    /// Claim `Inbox/jobs/<file>` and run it.
    case run(job: String, file: String)
    /// Move `Inbox/jobs/<file>` to `Failed/` with this error.
    case fail(job: String, file: String, error: JobError)
    /// Leave it in the inbox for now.
    case wait(job: String, file: String, reason: String)
    /// Still being written; look again later.
    case incomplete(file: String)
}

/// Turns a snapshot into decisions: duplicates and invalid manifests fail, inputs are checked,
/// failures propagate to dependants, cycles are refused, the rest run when ready or wait.
/// Pure and deterministic, so the DAG rules are tested without a filesystem.
public enum Planner {
    public static func plan(_ s: SpoolSnapshot) -> [Decision] {
        var fails: [Decision] = []
        var waits: [Decision] = []
        var incomplete: [Decision] = []
        var failedNow: [String: JobError] = [:]

        // Files still being written wait; among complete files, one per job name (the oldest).
        var primaries: [SpoolSnapshot.InboxFile] = []
        var seen: [String: String] = [:]
        for f in s.inbox.sorted(by: { ($0.modified, $0.fileName) < ($1.modified, $1.fileName) }) {
            guard let parsed = f.parsed else { incomplete.append(.incomplete(file: f.fileName)); continue }
            if let first = seen[f.jobName] {
                fails.append(.fail(job: f.jobName, file: f.fileName, error: JobError(
                    what: "another manifest, \(first), already names job \(f.jobName)", where: "Inbox/jobs/\(f.fileName)",
                    fix: "give each job its own name (the file name); rename this file and drop it in again")))
                continue
            }
            seen[f.jobName] = f.fileName
            switch parsed {
            case let .failure(e):
                fails.append(.fail(job: f.jobName, file: f.fileName, error: e))
                failedNow[f.jobName] = e
            case .success:
                if s.claimed.contains(f.jobName) {
                    fails.append(.fail(job: f.jobName, file: f.fileName, error: JobError(
                        what: "job \(f.jobName) is already claimed (running, or interrupted and about to resume)",
                        where: "Inbox/jobs/\(f.fileName)",
                        fix: "wait for it to finish and remove Outbox/\(f.jobName) to run it again, or rename this job")))
                } else if s.published.contains(f.jobName) {
                    fails.append(.fail(job: f.jobName, file: f.fileName, error: JobError(
                        what: "job \(f.jobName) already has results in Outbox/\(f.jobName)", where: "Inbox/jobs/\(f.fileName)",
                        fix: "to run it again, move Outbox/\(f.jobName) away first; or rename this job (file name)")))
                } else {
                    primaries.append(f)
                }
            }
        }

        var pending: [String: SpoolSnapshot.InboxFile] = [:]
        var manifests: [String: Manifest] = [:]
        for f in primaries {
            if case let .success(m) = f.parsed! {
                pending[f.jobName] = f
                manifests[f.jobName] = m
            }
        }

        // Dependency cycles among queued jobs: every job on a cycle fails.
        for cycle in cycles(manifests) {
            let path = (cycle + [cycle[0]]).joined(separator: " → ")
            for job in cycle {
                let e = JobError(what: "dependency cycle: \(path)", where: "inputs of \(job)",
                                 fix: "remove one of the `job:` inputs so the jobs form a chain, then drop the manifests in again")
                failedNow[job] = e
                fails.append(.fail(job: job, file: pending[job]!.fileName, error: e))
                pending[job] = nil
            }
        }

        // Failures propagate along inputs until nothing changes.
        var changed = true
        while changed {
            changed = false
            for job in pending.keys.sorted() {
                let m = manifests[job]!
                for dep in m.jobDependencies where !s.published.contains(dep) && !s.claimed.contains(dep) && pending[dep] == nil {
                    guard let why = failedNow[dep] ?? s.failed[dep] else { continue }
                    let role = m.inputs.first { $0.value == .job(dep) }?.key ?? "?"
                    let e = JobError(what: "input job \(dep) failed: \(why.what)", where: "inputs.\(role) of \(job) (job \(dep))",
                                     fix: "fix \(dep) (see Failed/\(dep)/error.json: \(why.fix)), then drop both manifests into Inbox/jobs again")
                    failedNow[job] = e
                    fails.append(.fail(job: job, file: pending[job]!.fileName, error: e))
                    pending[job] = nil
                    changed = true
                    break
                }
            }
        }

        // Ready jobs run, oldest first; the others say what they wait for.
        var runs: [Decision] = []
        for f in pending.values.sorted(by: { ($0.modified, $0.fileName) < ($1.modified, $1.fileName) }) {
            let m = manifests[f.jobName]!
            var reasons: [String] = []
            for role in m.inputs.keys.sorted() {
                switch m.inputs[role]! {
                case let .dataset(n) where !s.datasets.contains(n):
                    reasons.append("inputs.\(role): dataset \(n) is not in Inbox/datasets/ yet")
                case let .path(p) where !s.readyPaths.contains(p):
                    reasons.append("inputs.\(role): \(p) does not exist yet")
                case let .job(j) where !s.published.contains(j):
                    if s.claimed.contains(j) {
                        reasons.append("inputs.\(role): job \(j) is running")
                    } else if pending[j] != nil {
                        reasons.append("inputs.\(role): job \(j) is queued")
                    } else {
                        reasons.append("inputs.\(role): no job \(j) yet (expecting Inbox/jobs/\(j).yaml)")
                    }
                default: break
                }
            }
            if reasons.isEmpty {
                runs.append(.run(job: f.jobName, file: f.fileName))
            } else {
                waits.append(.wait(job: f.jobName, file: f.fileName, reason: reasons.joined(separator: "; ")))
            }
        }
        let resumes = s.claimed.sorted().map { Decision.resume(job: $0) }
        return fails + resumes + runs + waits + incomplete
    }

    /// The dependency cycles among `manifests` (strongly connected components with more than
    /// one job), each listed in a stable order.
    static func cycles(_ manifests: [String: Manifest]) -> [[String]] {
        // Tarjan's algorithm over the queued jobs.
        var index = 0
        var indices: [String: Int] = [:], low: [String: Int] = [:]
        var stack: [String] = [], onStack = Set<String>()
        var out: [[String]] = []
        func connect(_ v: String) {
            indices[v] = index; low[v] = index; index += 1
            stack.append(v); onStack.insert(v)
            for w in manifests[v]!.jobDependencies where manifests[w] != nil {
                if indices[w] == nil {
                    connect(w)
                    low[v] = min(low[v]!, low[w]!)
                } else if onStack.contains(w) {
                    low[v] = min(low[v]!, indices[w]!)
                }
            }
            if low[v] == indices[v] {
                var component: [String] = []
                while let w = stack.popLast() {
                    onStack.remove(w)
                    component.append(w)
                    if w == v { break }
                }
                if component.count > 1 { out.append(orderCycle(component, manifests)) }
            }
        }
        for v in manifests.keys.sorted() where indices[v] == nil { connect(v) }
        return out
    }

    /// A cycle's jobs in dependency order starting from the smallest name.
    static func orderCycle(_ component: [String], _ manifests: [String: Manifest]) -> [String] {
        let members = Set(component)
        var order = [component.min()!]
        while order.count < component.count,
              let next = manifests[order.last!]!.jobDependencies.first(where: { members.contains($0) && !order.contains($0) }) {
            order.append(next)
        }
        if order.count < component.count { order += component.filter { !order.contains($0) }.sorted() }
        return order
    }
}

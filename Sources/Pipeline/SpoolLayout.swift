import Foundation

/// The folders under a root:
///
///     Inbox/jobs/<job>.yaml|yml|json       manifests users drop in
///     Inbox/datasets/<name>/<class>/<img>  datasets (read, never moved)
///     Outbox/<job>/                        published results (Outbox/.tmp-<job> while writing)
///     Failed/<job>/                        failed jobs: the manifest + error.json (+ log)
///     .state/claimed/<job>/                claimed jobs: manifest, claim.json, checkpoints/, work/, log.jsonl, status.json
///     .state/locks/<job>.lock              flock held by the daemon working on <job>
public struct SpoolLayout: Sendable, Equatable {
    public let root: String

    /// `root` made absolute and normalized (relative paths are taken from the current folder).
    public init(root: String) {
        let abs = root.hasPrefix("/") ? root : FileManager.default.currentDirectoryPath + "/" + root
        self.root = RootPaths.normalize(abs)
    }

    public var inbox: String { root + "/Inbox" }
    public var jobs: String { inbox + "/jobs" }
    public var datasets: String { inbox + "/datasets" }
    public var outbox: String { root + "/Outbox" }
    public var failed: String { root + "/Failed" }
    public var state: String { root + "/.state" }
    public var claimed: String { state + "/claimed" }
    public var locks: String { state + "/locks" }

    public func claimDirectory(_ job: String) -> String { claimed + "/" + job }
    public func lockFile(_ job: String) -> String { locks + "/" + job + ".lock" }
    public func published(_ job: String) -> String { outbox + "/" + job }
    /// Where a job's results are assembled before the publishing rename.
    public func outboxStaging(_ job: String) -> String { outbox + "/.tmp-" + job }

    /// Creates any missing folder.
    public func prepare() throws {
        for dir in [jobs, datasets, outbox, failed, claimed, locks] { try FileOps.makeDirectories(dir) }
    }

    /// A path relative to the root, for messages.
    public func relative(_ path: String) -> String {
        path.hasPrefix(root + "/") ? String(path.dropFirst(root.count + 1)) : path
    }
}

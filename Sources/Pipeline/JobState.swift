/// A job's lifecycle as a pure state machine (no filesystem here; the spool and runner carry
/// out the effects):
///
///     queued ──claim──▶ claimed ──start──▶ running ──publish──▶ published
///        │                 │  ▲               │  └──stop──▶ claimed (checkpointed; resumes later)
///        │                 │  └─────crash─────┘
///        └──────fail───────┴──────fail────────┴──▶ failed(reason)
///
/// `published` and `failed` are final.
public enum JobState: Sendable, Equatable, CustomStringConvertible {
    /// In `Inbox/jobs`, waiting for its inputs or for a daemon.
    case queued
    /// Moved into the daemon's state folder; not running (new, or interrupted and resumable).
    case claimed
    /// Training (or sampling) at `step` of `total`.
    case running(step: Int, total: Int)
    /// Results in `Outbox/<job>/`.
    case published
    /// Moved to `Failed/<job>/` with this reason.
    case failed(JobError)

    public enum Event: Sendable, Equatable {
        case claim
        case start(resumeStep: Int, total: Int)
        case progress(step: Int)
        /// Shutdown requested: the stage checkpointed and returned; the job stays claimed.
        case stop
        /// The process died while running (found on restart with no live owner).
        case crash
        case publish
        case fail(JobError)
    }

    public struct IllegalTransition: Error, CustomStringConvertible, Equatable {
        public var from: JobState
        public var event: Event
        public var description: String { "job in state \(from) cannot take event \(event)" }
    }

    public var isFinal: Bool {
        switch self {
        case .published, .failed: true
        default: false
        }
    }

    /// The state after `event`, or an error if the event makes no sense in this state.
    public func applying(_ event: Event) throws(IllegalTransition) -> JobState {
        switch (self, event) {
        case (.queued, .claim): return .claimed
        case let (.claimed, .start(resumeStep, total)):
            guard resumeStep >= 0, resumeStep <= total else { break }
            return .running(step: resumeStep, total: total)
        case let (.running(step, total), .progress(s)):
            guard s >= step, s <= total else { break }
            return .running(step: s, total: total)
        case (.running, .stop), (.running, .crash): return .claimed
        case (.running, .publish): return .published
        case let (.queued, .fail(e)), let (.claimed, .fail(e)), let (.running, .fail(e)): return .failed(e)
        default: break
        }
        throw IllegalTransition(from: self, event: event)
    }

    public var name: String {
        switch self {
        case .queued: "queued"
        case .claimed: "claimed"
        case .running: "running"
        case .published: "published"
        case .failed: "failed"
        }
    }

    public var description: String {
        switch self {
        case let .running(step, total): "running \(step)/\(total)"
        case let .failed(e): "failed: \(e.what)"
        default: name
        }
    }
}

import Testing
@testable import Pipeline

/// The DAG rules without a filesystem.
@Suite struct PlannerTests {
    func file(_ name: String, _ yaml: String, modified: Double = 0) -> SpoolSnapshot.InboxFile {
        let parsed: Result<Manifest, JobError>
        do {
            parsed = .success(try Manifest.parse(Array(yaml.utf8), fileName: "\(name).yaml"))
        } catch {
            parsed = .failure(error.jobError)
        }
        return .init(fileName: "\(name).yaml", jobName: name, parsed: parsed, modified: modified)
    }

    func child(_ name: String, of parent: String) -> SpoolSnapshot.InboxFile {
        file(name, "stage: pretrain\ninputs: {dataset: {job: \(parent)}}\n")
    }

    func kinds(_ d: [Decision]) -> [String: String] {
        var out: [String: String] = [:]
        for x in d {
            switch x {
            case let .run(j, _): out[j] = "run"
            case let .wait(j, _, _): out[j] = "wait"
            case let .fail(j, _, _): out[j] = "fail"
            case let .resume(j): out[j] = "resume"
            case let .incomplete(f): out[f] = "incomplete"
            }
        }
        return out
    }

    @Test func readyJobRunsAndMissingDatasetWaits() {
        var s = SpoolSnapshot()
        s.inbox = [file("a", "stage: pretrain\ninputs: {dataset: fm}\n"), file("b", "stage: pretrain\ninputs: {dataset: other}\n")]
        s.datasets = ["fm"]
        let d = Planner.plan(s)
        #expect(kinds(d) == ["a": "run", "b": "wait"])
        #expect(d.contains { if case let .wait("b", _, reason) = $0 { reason.contains("dataset other") } else { false } })
    }

    @Test func childWaitsForParentThenRunsWhenPublished() {
        var s = SpoolSnapshot()
        s.datasets = ["fm"]
        s.inbox = [file("p", "stage: pretrain\ninputs: {dataset: fm}\n"), child("c", of: "p")]
        #expect(kinds(Planner.plan(s)) == ["p": "run", "c": "wait"])
        s.inbox = [child("c", of: "p")]
        s.claimed = ["p"]
        #expect(kinds(Planner.plan(s)) == ["p": "resume", "c": "wait"])
        s.claimed = []
        s.published = ["p"]
        #expect(kinds(Planner.plan(s)) == ["c": "run"])
    }

    @Test func failedParentFailsChildAndGrandchildWithTheReason() {
        var s = SpoolSnapshot()
        s.inbox = [file("p", "stage: pretrain\ninputs: {dataset: fm}\ntraining: {steps: -1}\n"), child("c", of: "p"), child("g", of: "c")]
        let d = Planner.plan(s)
        #expect(kinds(d) == ["p": "fail", "c": "fail", "g": "fail"])
        let reason = d.compactMap { if case let .fail("c", _, e) = $0 { e } else { nil } }.first
        #expect(reason?.what.contains("input job p failed") == true)
        #expect(reason?.what.contains("invalid manifest") == true)
        #expect(reason?.fix.contains("Failed/p") == true)
    }

    @Test func parentAlreadyInFailedFailsChildUnlessQueuedAgain() {
        var s = SpoolSnapshot()
        s.failed = ["p": JobError(what: "bad image", where: "x", fix: "y")]
        s.inbox = [child("c", of: "p")]
        #expect(kinds(Planner.plan(s)) == ["c": "fail"])
        // The user dropped a fixed parent in again: the child waits for it.
        s.datasets = ["fm"]
        s.inbox.append(file("p", "stage: pretrain\ninputs: {dataset: fm}\n"))
        #expect(kinds(Planner.plan(s)) == ["p": "run", "c": "wait"])
        // A published result wins over an older failure.
        s.inbox = [child("c", of: "p")]
        s.published = ["p"]
        #expect(kinds(Planner.plan(s)) == ["c": "run"])
    }

    @Test func unknownParentWaits() {
        var s = SpoolSnapshot()
        s.inbox = [child("c", of: "nobody")]
        let d = Planner.plan(s)
        #expect(kinds(d) == ["c": "wait"])
        #expect(d.contains { if case let .wait(_, _, r) = $0 { r.contains("Inbox/jobs/nobody.yaml") } else { false } })
    }

    @Test func cyclesAreRefusedAndTheirDependantsFail() {
        var s = SpoolSnapshot()
        s.inbox = [child("a", of: "b"), child("b", of: "c"), child("c", of: "a"), child("d", of: "a"), child("e", of: "e2")]
        let d = Planner.plan(s)
        #expect(kinds(d) == ["a": "fail", "b": "fail", "c": "fail", "d": "fail", "e": "wait"])
        let cycle = d.compactMap { if case let .fail("b", _, e) = $0 { e.what } else { nil } }.first
        #expect(cycle == "dependency cycle: a → b → c → a")
    }

    @Test func duplicatesAndNameClashesFail() {
        var s = SpoolSnapshot()
        s.datasets = ["fm"]
        var a = file("x", "stage: pretrain\ninputs: {dataset: fm}\n", modified: 1)
        var b = file("x", "stage: pretrain\ninputs: {dataset: fm}\n", modified: 2)
        a.fileName = "x.yaml"
        b.fileName = "x.json"
        s.inbox = [b, a]
        let d = Planner.plan(s)
        #expect(d.contains { if case .fail("x", "x.json", _) = $0 { true } else { false } })
        #expect(d.contains { if case .run("x", "x.yaml") = $0 { true } else { false } })

        s.inbox = [file("done", "stage: pretrain\ninputs: {dataset: fm}\n"), file("busy", "stage: pretrain\ninputs: {dataset: fm}\n")]
        s.published = ["done"]
        s.claimed = ["busy"]
        let k = Planner.plan(s).filter { if case .fail = $0 { true } else { false } }
        #expect(k.count == 2)
    }

    @Test func incompleteFilesWaitAndOlderJobsRunFirst() {
        var s = SpoolSnapshot()
        s.datasets = ["fm"]
        s.inbox = [file("new", "stage: pretrain\ninputs: {dataset: fm}\n", modified: 20),
                   file("old", "stage: pretrain\ninputs: {dataset: fm}\n", modified: 10),
                   .init(fileName: "half.yaml", jobName: "half", parsed: nil, modified: 30)]
        let runs = Planner.plan(s).compactMap { if case let .run(j, _) = $0 { j } else { nil } }
        #expect(runs == ["old", "new"])
        #expect(Planner.plan(s).contains(.incomplete(file: "half.yaml")))
    }
}

@Suite struct JobStateTests {
    @Test func happyPath() throws {
        var s = JobState.queued
        s = try s.applying(.claim)
        s = try s.applying(.start(resumeStep: 0, total: 10))
        s = try s.applying(.progress(step: 5))
        #expect(s == .running(step: 5, total: 10))
        s = try s.applying(.publish)
        #expect(s == .published && s.isFinal)
    }

    @Test func stopAndCrashReturnToClaimedAndResume() throws {
        var s = try JobState.claimed.applying(.start(resumeStep: 0, total: 10))
        s = try s.applying(.progress(step: 4))
        s = try s.applying(.stop)
        #expect(s == .claimed)
        s = try s.applying(.start(resumeStep: 4, total: 10))
        s = try s.applying(.crash)
        #expect(s == .claimed)
    }

    @Test func failureFromAnyLiveState() throws {
        let e = JobError(what: "w", where: "x", fix: "f")
        #expect(try JobState.queued.applying(.fail(e)) == .failed(e))
        #expect(try JobState.claimed.applying(.fail(e)) == .failed(e))
        #expect(try JobState.running(step: 1, total: 2).applying(.fail(e)) == .failed(e))
    }

    @Test func illegalTransitionsAreRefused() {
        let e = JobError(what: "w", where: "x", fix: "f")
        #expect(throws: JobState.IllegalTransition.self) { try JobState.queued.applying(.publish) }
        #expect(throws: JobState.IllegalTransition.self) { try JobState.published.applying(.claim) }
        #expect(throws: JobState.IllegalTransition.self) { try JobState.failed(e).applying(.start(resumeStep: 0, total: 1)) }
        #expect(throws: JobState.IllegalTransition.self) { try JobState.running(step: 5, total: 10).applying(.progress(step: 4)) }
        #expect(throws: JobState.IllegalTransition.self) { try JobState.claimed.applying(.start(resumeStep: 11, total: 10)) }
    }
}

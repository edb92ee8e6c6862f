import Foundation
import Testing
@testable import Pipeline

/// The real executable in temporary roots: exit codes, files, signals, sd_notify, two daemons.
@Suite(.serialized) struct ProcessTests {
    @Test func validateReportsFieldsAndExitCodes() throws {
        let root = TempRoot("cli-validate")
        root.dataset("fm")
        root.job("good", "stage: pretrain\ninputs: {dataset: fm}\n")
        root.job("bad", "stage: pretrain\ninputs: {dataset: fm}\ntraining: {steps: -1, batchsize: 3}\n")
        let ok = try Learngene.run(["validate", "--root", root.path, "Inbox/jobs/good.yaml"], root: root)
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("OK (stage pretrain, job good)"))
        let bad = try Learngene.run(["validate", "--root", root.path, "Inbox/jobs/good.yaml", "Inbox/jobs/bad.yaml"], root: root)
        #expect(bad.status == 1)
        #expect(bad.stdout.contains("training.steps") && bad.stdout.contains("training.batchsize") && bad.stdout.contains("did you mean `batch_size`"))
        let resolved = try Learngene.run(["validate", "--resolved", "Inbox/jobs/good.yaml"], root: root)
        #expect(resolved.stdout.contains("recipe: cpu") && resolved.stdout.contains("learning_rate: 0.002"))
        // Validation moves nothing.
        #expect(root.list("Inbox/jobs") == ["bad.yaml", "good.yaml"])
    }

    @Test func onceExitCodes() throws {
        let empty = TempRoot("cli-empty")
        let r0 = try Learngene.run(["serve", "--once", "--root", empty.path], root: empty)
        #expect(r0.status == 0, "\(r0.stderr)")

        let waiting = TempRoot("cli-wait")
        waiting.job("w", "stage: pretrain\ninputs: {dataset: not-yet}\n")
        let r1 = try Learngene.run(["serve", "--once"], root: waiting)  // root = current folder
        #expect(r1.status == 0, "\(r1.stderr)")
        #expect(r1.stderr.contains("waiting") && r1.stderr.contains("not-yet"))
        #expect(waiting.list("Inbox/jobs") == ["w.yaml"])

        let bad = TempRoot("cli-bad")
        bad.job("b", "stage: pretrain\ninputs: {dataset: x}\nmodel: {input_size: 1000000000}\n")
        let r2 = try Learngene.run(["serve", "--once", "--root", bad.path], root: bad)
        #expect(r2.status == 1)
        #expect(r2.stderr.contains("model.input_size"))
        #expect(bad.list("Failed") == ["b"] && bad.list("Inbox/jobs").isEmpty)
        #expect(bad.json("Failed/b/error.json")?["problems"]?.arrayValue?.first?["field"]?.stringValue == "model.input_size")
    }

    @Test func badManifestCorpusFailsEachJobAndKeepsEveryFile() throws {
        let root = TempRoot("cli-corpus")
        let corpus: [String: String] = [
            "negative-steps.yaml": "stage: pretrain\ninputs: {dataset: x}\ntraining: {steps: -5}\n",
            "huge-image.yaml": "stage: pretrain\ninputs: {dataset: x}\nmodel: {input_size: 31623}\n",
            "unknown-field.yaml": "stage: pretrain\ninputs: {dataset: x}\nlearning_rate: 0.1\n",
            "wrong-type.json": #"{"stage": "pretrain", "inputs": {"dataset": "x"}, "seed": "seven"}"#,
            "escape.yaml": "stage: pretrain\ninputs: {dataset: {path: ../../../etc}}\n",
            "absolute.yaml": "stage: pretrain\ninputs: {dataset: {path: /etc}}\n",
            "not-yaml.yaml": "stage: [pretrain\n",
            "not-json.json": "{stage: pretrain",
            "list.yaml": "- a\n- b\n",
            "binary.yaml": "\u{0}\u{1}\u{2}",
            "bad name!.yaml": "stage: pretrain\ninputs: {dataset: x}\n",
            "cycle-a.yaml": "stage: pretrain\ninputs: {dataset: {job: cycle-b}}\n",
            "cycle-b.yaml": "stage: pretrain\ninputs: {dataset: {job: cycle-a}}\n",
        ]
        for (name, text) in corpus { root.write("Inbox/jobs/\(name)", text) }
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(r.status == 1)
        #expect(root.list("Inbox/jobs").isEmpty)
        let failed = root.list("Failed")
        #expect(failed.count == corpus.count, "\(failed)")
        // Every original is kept byte for byte next to an error.json saying what, where and how.
        for dir in failed {
            let files = root.list("Failed/\(dir)")
            #expect(files.contains("error.json"))
            let original = try #require(files.first { $0 != "error.json" && $0 != "log.jsonl" })
            #expect(root.read("Failed/\(dir)/\(original)") == corpus[original], "\(dir)/\(original)")
            let e = try #require(root.json("Failed/\(dir)/error.json"))
            for key in ["what", "where", "fix"] { #expect(e[key]?.stringValue?.isEmpty == false, "\(dir): \(key)") }
        }
        #expect(root.json("Failed/cycle-a/error.json")?["what"]?.stringValue == "dependency cycle: cycle-a → cycle-b → cycle-a")
        #expect(root.json("Failed/bad_name_/error.json")?["problems"]?.arrayValue?.first?["field"]?.stringValue == "name")
    }

    @Test func failingParentFailsItsChildren() throws {
        let root = TempRoot("cli-dag")
        root.job("parent", "stage: pretrain\ninputs: {dataset: x}\ntraining: {steps: 0}\n")
        root.job("child", "stage: pretrain\ninputs: {dataset: {job: parent}}\n")
        root.job("grandchild", "stage: pretrain\ninputs: {dataset: {job: child}}\n")
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(r.status == 1)
        #expect(root.list("Failed") == ["child", "grandchild", "parent"])
        let child = try #require(root.json("Failed/child/error.json"))
        #expect(child["what"]?.stringValue?.hasPrefix("input job parent failed: invalid manifest") == true)
        #expect(child["fix"]?.stringValue?.contains("Failed/parent/error.json") == true)
        #expect(root.json("Failed/grandchild/error.json")?["what"]?.stringValue?.hasPrefix("input job child failed") == true)
    }

    @Test func twoDaemonProcessesHandleEachJobOnce() throws {
        let root = TempRoot("cli-two")
        // Manifests that fail at once: what matters is that each is handled by exactly one daemon.
        let names = (0..<40).map { String(format: "j%02d", $0) }
        for n in names { root.job(n, "stage: pretrain\ninputs: {dataset: x}\ntraining: {steps: -\(n.count)}\n") }
        let a = try Learngene.start(["serve", "--once", "--root", root.path], root: root, label: "a")
        let b = try Learngene.start(["serve", "--once", "--root", root.path], root: root, label: "b")
        let ra = a.wait(), rb = b.wait()
        #expect(ra.status == 1 || rb.status == 1)
        #expect(root.list("Failed") == names)  // no "~2" duplicates
        #expect(root.list("Inbox/jobs").isEmpty)
    }

    @Test func statusShowsEveryState() throws {
        let root = TempRoot("cli-status")
        root.dataset("fm")
        root.job("queued", "stage: pretrain\ninputs: {dataset: fm}\n")
        root.job("waiting", "stage: pretrain\ninputs: {dataset: {job: queued}}\n")
        root.job("invalid", "stage: pretrain\n")
        // Settled: not modified in the last seconds (`status` treats fresher files as being written).
        for p in ["Inbox/jobs/queued.yaml", "Inbox/jobs/waiting.yaml", "Inbox/jobs/invalid.yaml", "Inbox/datasets/fm", "Inbox/datasets/fm/a"] {
            try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -60)], ofItemAtPath: root.path + "/" + p)
        }
        root.write("Outbox/done/job.json", #"{"finished_at": "2025-01-01T00:00:00Z"}"#)
        root.write("Failed/broke/error.json", #"{"job": "broke", "what": "bad image", "where": "x", "fix": "y"}"#)
        let r = try Learngene.run(["status", "--root", root.path, "--json"], root: root)
        #expect(r.status == 0, "\(r.stderr)")
        let rows = try JSONValue.parse(r.stdout).arrayValue ?? []
        var states: [String: String] = [:]
        for row in rows { states[row["job"]?.stringValue ?? ""] = row["state"]?.stringValue }
        #expect(states == ["queued": "queued", "waiting": "waiting", "invalid": "invalid", "done": "published", "broke": "failed"])
        let table = try Learngene.run(["status", "--root", root.path], root: root)
        #expect(table.stdout.hasPrefix("JOB"))
    }

    @Test func sigtermStopsAnIdleDaemonWithSystemdNotifications() throws {
        let root = TempRoot("cli-sigterm")
        let listener = try SystemdNotifierTests.Listener(root.path + "/notify.sock")
        let p = try Learngene.start(["serve", "--root", root.path], root: root,
                                    environment: ["NOTIFY_SOCKET": listener.name, "WATCHDOG_USEC": "20000000"])
        var messages: [String] = []
        while let m = listener.receive() {
            messages.append(m)
            if m.contains("STATUS=idle") { break }  // in the idle wait: after READY and the first WATCHDOG
        }
        #expect(messages.first?.hasPrefix("READY=1") == true)
        p.signal(SIGTERM)
        let r = p.wait(timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        while let m = listener.receive() {
            messages.append(m)
            if m.contains("STOPPING=1") { break }
        }
        #expect(messages.contains { $0.hasPrefix("STOPPING=1") })
        #expect(messages.contains("WATCHDOG=1"))
        #expect(r.stderr.contains("SIGTERM"))
    }

    @Test func manifestDroppedWhileServingIsPickedUp() throws {
        let root = TempRoot("cli-watch")
        let listener = try SystemdNotifierTests.Listener(root.path + "/notify.sock")
        let p = try Learngene.start(["serve", "--root", root.path], root: root, environment: ["NOTIFY_SOCKET": listener.name])
        while let m = listener.receive(), !m.contains("READY=1") {}
        // Written elsewhere and renamed in, as a spool producer should.
        root.write("Inbox/tmp.yaml", "stage: pretrain\ninputs: {dataset: x}\ntraining: {steps: -1}\n")
        try FileManager.default.moveItem(atPath: root.path + "/Inbox/tmp.yaml", toPath: root.path + "/Inbox/jobs/late.yaml")
        let deadline = Date().addingTimeInterval(60)
        while !root.exists("Failed/late/error.json") && Date() < deadline { usleep(50_000) }
        p.signal(SIGTERM)
        let r = p.wait(timeout: 60)
        #expect(r.status == 0)
        #expect(root.exists("Failed/late/late.yaml"))
    }
}

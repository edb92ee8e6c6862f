import Formats
import Foundation
import Testing
@testable import Pipeline

/// Files an attacker (or an accident) can drop into the root, run through the real daemon:
/// each once took the daemon down, hung it, or published what it should not (issue 14).
@Suite(.serialized) struct HostileFilesTests {
    static func lstatMode(_ path: String) -> mode_t? {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode : nil
    }

    /// Every regular file under `dir`, as text.
    static func regularFileTexts(under dir: String) -> [String: String] {
        var out: [String: String] = [:]
        guard let e = FileManager.default.enumerator(atPath: dir) else { return out }
        for case let rel as String in e {
            let p = dir + "/" + rel
            if let m = lstatMode(p), m & S_IFMT == S_IFREG { out[rel] = String(decoding: FileManager.default.contents(atPath: p) ?? Data(), as: UTF8.self) }
        }
        return out
    }

    @Test func symlinkedManifestsAreFailedAsLinksWithoutReadingThem() throws {
        let root = TempRoot("hostile-links")
        // A private file outside the root that parses as a (failing) manifest, and the
        // process's own environment: neither may be read through the link, nor copied out.
        let outside = TempRoot("hostile-outside")
        outside.write("secret.yaml", "stage: pretrain\ninputs: {dataset: x}\ntraining: {steps: -1}\n# SECRET-7f3a\n")
        chmod(outside.path + "/secret.yaml", 0o600)
        #expect(symlink(outside.path + "/secret.yaml", root.path + "/Inbox/jobs/leak.yaml") == 0)
        #expect(symlink("/proc/self/environ", root.path + "/Inbox/jobs/env.yaml") == 0)
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root, environment: ["MARKER_VARIABLE": "ENV-9c1d"])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(root.list("Inbox/jobs").isEmpty)
        #expect(root.list("Failed") == ["env", "leak"])
        for job in ["env", "leak"] {
            let e = try #require(root.json("Failed/\(job)/error.json"))
            #expect(e["what"]?.stringValue?.contains("symbolic link") == true, "\(e)")
            #expect(e["fix"]?.stringValue?.contains("cp -L") == true)
            // The link itself is kept (as a link), so nothing of the user's is lost.
            let mode = try #require(Self.lstatMode(root.path + "/Failed/\(job)/\(job).yaml"))
            #expect(mode & S_IFMT == S_IFLNK)
        }
        for (file, text) in Self.regularFileTexts(under: root.path + "/Failed") {
            #expect(!text.contains("SECRET-7f3a") && !text.contains("ENV-9c1d"), "\(file) holds the linked file's content")
        }
        #expect(FileManager.default.contents(atPath: outside.path + "/secret.yaml") != nil)
    }

    @Test func manifestLargerThanTheCopyLimitIsMovedNotCopied() throws {
        let root = TempRoot("hostile-big")
        // Sparse: 200 MB that cost no disk. The daemon must not copy it (memory and disk):
        // the failure moves the very file into Failed/.
        let path = root.path + "/Inbox/jobs/big.yaml"
        let fd = open(path, O_WRONLY | O_CREAT, 0o644)
        #expect(fd >= 0 && ftruncate(fd, 200 << 20) == 0)
        close(fd)
        let before = try #require(FileOps.identity(path))
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(r.status == 1, "\(r.stderr)")
        #expect(root.list("Failed") == ["big"])
        let after = try #require(FileOps.identity(root.path + "/Failed/big/big.yaml"))
        #expect(after == before, "the manifest was copied instead of moved")
        #expect(root.exists("Failed/big/error.json"))
        #expect(root.list("Inbox/jobs").isEmpty)
    }

    @Test func fifoNamedLikeAnImageDoesNotBlockTheDaemon() throws {
        let root = TempRoot("hostile-fifo")
        try PretrainProcessTests.tinyDataset(root)
        #expect(mkfifo(root.path + "/Inbox/datasets/ds/0_tshirt_top/a.png", 0o644) == 0)
        root.job("j", PretrainProcessTests.tinyJob(steps: 5))
        let r = try Learngene.start(["serve", "--once", "--root", root.path], root: root).wait(timeout: 120)
        #expect(r.status == 1, "\(r.stderr)")
        let e = try #require(root.json("Failed/j/error.json"), "\(r.stderr.suffix(2000))")
        #expect(e["what"]?.stringValue?.contains("a.png") == true, "\(e)")
        #expect(e["what"]?.stringValue?.contains("not a regular file") == true, "\(e)")
    }

    @Test func linkDeeperThanTheOldCheckButWithinTheWalkIsRefused() throws {
        let root = TempRoot("hostile-deep")
        try PretrainProcessTests.tinyDataset(root)
        let outside = TempRoot("hostile-deep-outside")
        let src = try #require(root.list("Inbox/datasets/ds/1_trouser").first)
        try FileManager.default.copyItem(atPath: root.path + "/Inbox/datasets/ds/1_trouser/" + src, toPath: outside.path + "/leak.png")
        // 20 levels below the class folder: ImageFolder walks 32, the link check used to stop at 16.
        let deep = root.path + "/Inbox/datasets/ds/1_trouser/" + (1...20).map { "d\($0)" }.joined(separator: "/")
        try FileManager.default.createDirectory(atPath: deep, withIntermediateDirectories: true)
        #expect(symlink(outside.path + "/leak.png", deep + "/x.png") == 0)
        root.job("j", PretrainProcessTests.tinyJob(steps: 5))
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(r.status == 1, "\(r.stderr.suffix(2000))")
        let e = try #require(root.json("Failed/j/error.json"))
        #expect(e["what"]?.stringValue?.contains("symbolic link") == true, "\(e)")
        #expect(e["what"]?.stringValue?.contains("d20/x.png") == true, "\(e)")
    }

    @Test func numClassesAutoOverTooManyFoldersFailsTheJob() throws {
        let root = TempRoot("hostile-classes")
        try PretrainProcessTests.tinyDataset(root)
        // Empty class folders count as classes: 100 001 of them is one more than a DiT may have.
        for i in 0..<100_001 { mkdir(root.path + "/Inbox/datasets/ds/c\(i)", 0o755) }
        root.job("j", PretrainProcessTests.tinyJob(steps: 5))
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(r.status == 1, "the daemon should fail the job, not die: \(r.status) \(r.stderr.suffix(2000))")
        let e = try #require(root.json("Failed/j/error.json"))
        #expect(e["what"]?.stringValue?.contains("num_classes") == true, "\(e)")
    }

    /// A model file whose `learngene.dit_config` is absurd: the daemon names the file.
    @Test func modelFileWithAHugeConfigFailsTheJobNamingTheFile() throws {
        let root = TempRoot("hostile-config")
        try PretrainProcessTests.tinyDataset(root)
        let huge = #"{"classDropoutProb":0.1,"depth":1,"frequencyEmbeddingSize":256,"hiddenSize":16777216,"inChannels":1,"inputSize":8,"mlpRatio":4,"numClasses":2,"numHeads":2,"patchSize":4}"#
        try FileManager.default.createDirectory(atPath: root.path + "/Outbox/evil", withIntermediateDirectories: true)
        try SafeTensors.write(SafeTensors.File(tensors: ["x": .f32([0], shape: [1])], metadata: ["learngene.dit_config": huge]),
                              to: root.path + "/Outbox/evil/model.safetensors")
        try FileManager.default.createDirectory(atPath: root.path + "/Outbox/evilg", withIntermediateDirectories: true)
        try SafeTensors.write(SafeTensors.File(metadata: ["learngene.method": "fine", "learngene.config": huge,
                                                          "learngene.settings": #"{"initialization":"ancestry"}"#]),
                              to: root.path + "/Outbox/evilg/learngene.safetensors")
        root.job("ft", "stage: finetune\ninputs: {model: {job: evil}, dataset: ds}\ntraining: {steps: 2, batch_size: 4}\nsampling: {count: 2, steps: 2}\n")
        root.job("grow", "stage: init\ninputs: {learngene: {job: evilg}, dataset: ds}\nlearngene: {method: fine, depths: [1]}\ntraining: {steps: 2, batch_size: 4}\n")
        let r = try Learngene.run(["serve", "--once", "--root", root.path], root: root)
        #expect(r.status == 1, "the daemon should fail the jobs, not die: \(r.status) \(r.stderr.suffix(2000))")
        let ft = try #require(root.json("Failed/ft/error.json"))
        #expect(ft["what"]?.stringValue?.contains("Outbox/evil/model.safetensors") == true, "\(ft)")
        #expect(ft["what"]?.stringValue?.contains("hidden_size 16777216") == true, "\(ft)")
        let grow = try #require(root.json("Failed/grow/error.json"))
        #expect(grow["what"]?.stringValue?.contains("Outbox/evilg/learngene.safetensors") == true, "\(grow)")
        #expect(grow["what"]?.stringValue?.contains("hidden_size 16777216") == true, "\(grow)")
    }

    /// Runs the daemon under a umask through /bin/sh.
    static func serveOnce(_ root: TempRoot, umask mask: String) throws -> Learngene.Result {
        let bin = try #require(Learngene.path)
        return try Learngene.run(["-c", "umask \(mask); exec \"$0\" serve --once --root \"$1\"", bin, root.path], root: root, shell: true)
    }

    @Test func newFilesFollowTheUmask() throws {
        for (mask, expected) in [("0002", 0o664), ("0077", 0o600)] as [(String, mode_t)] {
            let root = TempRoot("hostile-umask")
            root.job("b", "stage: pretrain\ninputs: {dataset: x}\ntraining: {steps: -1}\n")
            let r = try Self.serveOnce(root, umask: mask)
            #expect(r.status == 1, "\(r.stderr)")
            for f in ["Failed/b/error.json", "Failed/b/b.yaml"] {
                let mode = try #require(Self.lstatMode(root.path + "/" + f))
                #expect(mode & 0o777 == expected, "\(f) under umask \(mask): \(String(mode & 0o777, radix: 8))")
            }
        }
    }
}

/// The watchdog is fed by progress; a long sampling pass is progress too (issue 14: nothing
/// fed it between the phase lines, so systemd would kill a healthy daemon mid-sampling).
@Suite(.serialized) struct WatchdogFeedingTests {
    @Test func longSamplingKeepsFeedingTheWatchdog() throws {
        let root = TempRoot("watchdog-sampling")
        try PretrainProcessTests.tinyDataset(root)
        root.job("j", """
            stage: pretrain
            inputs: {dataset: ds}
            model: {input_size: 8, patch_size: 4, hidden_size: 16, depth: 1, num_heads: 2}
            training: {steps: 4, batch_size: 4, log_every: 2}
            sampling: {count: 2000, steps: 400, grid_columns: 2}
            evaluation: {samples: 0}
            """)
        let listener = try SystemdNotifierTests.Listener(root.path + "/notify.sock")
        // Pings are due every 0.5 s (half of WATCHDOG_USEC).
        let p = try Learngene.start(["serve", "--once", "--root", root.path], root: root,
                                    environment: ["NOTIFY_SOCKET": listener.name, "WATCHDOG_USEC": "1000000"])
        var pings: [Double] = []
        var samplingStart: Double?, samplingEnd: Double?, lastMessage = 0.0
        while true {
            guard let m = listener.receive() else { if !p.process.isRunning { break } else { continue } }
            let now = SystemdNotifier.monotonic()
            lastMessage = now
            if m.contains("WATCHDOG=1") { pings.append(now) }
            if m.contains("STATUS=j: sampling") { samplingStart = samplingStart ?? now }
            if samplingStart != nil, samplingEnd == nil, m.contains("STATUS="), !m.contains("sampling") { samplingEnd = now }
            if m.contains("STOPPING=1") { break }
        }
        let r = p.wait(timeout: 60)
        #expect(r.status == 0, "\(r.stderr.suffix(2000))")
        let start = try #require(samplingStart), end = samplingEnd ?? lastMessage
        #expect(end - start > 2.5, "sampling took only \(end - start) s; the test needs it longer than the watchdog period")
        let during = pings.filter { $0 >= start && $0 <= end }
        var gaps: [Double] = []
        var last = start
        for t in during + [end] { gaps.append(t - last); last = t }
        #expect((gaps.max() ?? .infinity) < 1.5, "longest time without WATCHDOG=1 while sampling: \(gaps.max() ?? -1) s (\(during.count) pings in \(end - start) s)")
    }
}

import Foundation
import Testing
@testable import Pipeline

/// Runs the real `learngene` executable, built beside the test bundle (debug or release).
enum Learngene {
    /// The executable: next to the test binary (`.build*/debug|release/`), or named by
    /// `$LEARNGENE_BINARY`.
    static let path: String? = {
        if let p = ProcessInfo.processInfo.environment["LEARNGENE_BINARY"], FileManager.default.isExecutableFile(atPath: p) { return p }
        var candidates: [String] = []
        for start in [RootPaths.realPath("/proc/self/exe"), Bundle.main.executablePath, Bundle.main.bundlePath].compactMap({ $0 }) {
            var dir = (start as NSString).deletingLastPathComponent
            for _ in 0..<4 {
                candidates.append(dir + "/learngene")
                dir = (dir as NSString).deletingLastPathComponent
            }
        }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) && !FileManager.default.fileExists(atPath: $0 + "/Contents") }
    }()

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// A started process with its output collected into files (no pipe can fill up).
    final class Running: @unchecked Sendable {
        let process: Process
        let out: String
        let err: String
        init(process: Process, out: String, err: String) {
            self.process = process
            self.out = out
            self.err = err
        }
        var pid: Int32 { process.processIdentifier }
        func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }
        /// Waits for the exit (the test fails rather than hangs after `timeout` seconds).
        func wait(timeout: Double = 600) -> Result {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning {
                Issue.record("learngene did not exit within \(timeout) s; killing it")
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
            process.waitUntilExit()
            return Result(status: process.terminationStatus, stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                          stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
        }
        var stderrSoFar: String { (try? String(contentsOfFile: err, encoding: .utf8)) ?? "" }
    }

    /// `shell: true` runs `/bin/sh` with `args` instead (a test that must set the umask).
    static func start(_ args: [String], root: TempRoot, environment: [String: String] = [:], label: String = "p", shell: Bool = false) throws -> Running {
        guard let path else {
            throw JobError(what: "the learngene executable was not found beside the test binary", where: "PipelineTests",
                           fix: "build it first (swift build), or set LEARNGENE_BINARY")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: shell ? "/bin/sh" : path)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = nil
        env["LEARNGENE_ROOT"] = nil
        // Hermetic metrics: only weights under the test root's models/ count (not the
        // developer's ~/.local/share/learngene).
        env["LEARNGENE_EFFNET_WEIGHTS"] = nil
        env["XDG_DATA_HOME"] = root.path + "/.xdg"
        for (k, v) in environment { env[k] = v }
        p.environment = env
        p.currentDirectoryURL = URL(fileURLWithPath: root.path)
        let tag = "\(label)-\(UInt32.random(in: 0...UInt32.max))"
        let out = root.path + "/.out-\(tag)", err = root.path + "/.err-\(tag)"
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: err, contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: out)
        p.standardError = FileHandle(forWritingAtPath: err)
        try p.run()
        return Running(process: p, out: out, err: err)
    }

    static func run(_ args: [String], root: TempRoot, environment: [String: String] = [:], shell: Bool = false) throws -> Result {
        try start(args, root: root, environment: environment, shell: shell).wait()
    }
}

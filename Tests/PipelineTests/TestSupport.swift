import Foundation
import Logging
@testable import Pipeline

/// A fresh temporary root folder, removed when the value is released.
final class TempRoot: @unchecked Sendable {
    let path: String
    var layout: SpoolLayout { SpoolLayout(root: path) }

    init(_ label: String = "root") {
        let base = FileManager.default.temporaryDirectory.path + "/learngene-tests-\(getpid())-\(label)-\(UInt32.random(in: 0...UInt32.max))"
        try! FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        path = RootPaths.realPath(base) ?? base
        try! layout.prepare()
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ relative: String, _ text: String) {
        let full = path + "/" + relative
        try! FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try! Data(text.utf8).write(to: URL(fileURLWithPath: full))
    }

    /// Writes a manifest into Inbox/jobs with an old modification time (settled).
    func job(_ name: String, _ yaml: String) {
        write("Inbox/jobs/\(name).yaml", yaml)
    }

    /// Creates a dataset folder with one class and a placeholder file.
    func dataset(_ name: String) {
        write("Inbox/datasets/\(name)/a/0.txt", "placeholder")
    }

    func exists(_ relative: String) -> Bool { FileManager.default.fileExists(atPath: path + "/" + relative) }
    func read(_ relative: String) -> String? { try? String(contentsOfFile: path + "/" + relative, encoding: .utf8) }
    func list(_ relative: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path + "/" + relative)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }
    func json(_ relative: String) -> JSONValue? { read(relative).flatMap { try? JSONValue.parse($0) } }
}

/// A logger that discards everything (tests check files, not log text).
let quietLogger: Logger = {
    var l = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    l.logLevel = .critical
    return l
}()

/// Parses a manifest for a test, failing loudly.
func manifest(_ yaml: String, file: String = "job.yaml", catalog: StageCatalog = .standard) throws -> Manifest {
    try Manifest.parse(Array(yaml.utf8), fileName: file, catalog: catalog)
}

/// The problems a manifest has (empty if valid).
func problems(_ text: String, file: String = "job.yaml", catalog: StageCatalog = .standard) -> [Problem] {
    do {
        _ = try Manifest.parse(Array(text.utf8), fileName: file, catalog: catalog)
        return []
    } catch {
        return error.problems
    }
}

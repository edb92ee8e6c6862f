import ArgumentParser
import Foundation
import Pipeline

/// `learngene validate MANIFEST...`: checks manifests without running them: every problem with
/// its field and fix, then whether the inputs are there yet.
struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check manifests without running them.",
        discussion: "Exits 0 when every manifest is valid (inputs may still be missing: they are reported), 1 otherwise.")

    @Argument(help: ArgumentHelp("Manifest files (.yaml, .yml, .json).", valueName: "manifest"))
    var manifests: [String]

    @Option(name: .long, help: ArgumentHelp("Root folder (default: $LEARNGENE_ROOT, else the current folder).", valueName: "dir"))
    var root: String?

    @Flag(name: .long, help: "Print each valid manifest in its resolved form (every default filled in).")
    var resolved = false

    func run() throws {
        let layout = PipelineSetup.root(root)
        let spool = Spool(layout: layout, catalog: PipelineSetup.registry.catalog)
        var bad = 0
        for path in manifests {
            switch spool.readManifest(path) {
            case let .failure(e):
                bad += 1
                if e.problems.isEmpty {
                    print("\(path): INVALID — \(e.what) [\(e.where)] — fix: \(e.fix)")
                } else {
                    print("\(path): INVALID (\(e.problems.count) problem\(e.problems.count == 1 ? "" : "s"))")
                    for p in e.problems { print("  - \(p)") }
                }
            case let .success(m):
                print("\(path): OK (stage \(m.stage), job \(m.name))")
                var snapshot = spool.scan()
                snapshot.inbox = [SpoolSnapshot.InboxFile(fileName: (path as NSString).lastPathComponent, jobName: m.name, parsed: .success(m))]
                for decision in Planner.plan(snapshot) {
                    if case let .wait(_, _, reason) = decision { print("  note: would wait: \(reason)") }
                    if case let .fail(_, _, e) = decision { print("  note: would fail: \(e.what) — fix: \(e.fix)") }
                }
                if PipelineSetup.registry[m.stage] == nil {
                    print("  note: stage \(m.stage) is not available in this build, so the job would fail when run")
                }
                if resolved { print(m.yaml()) }
            }
        }
        if bad > 0 { throw ExitCode(1) }
    }
}

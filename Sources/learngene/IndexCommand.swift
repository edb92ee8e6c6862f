import ArgumentParser
import Formats
import Foundation
import Metrics
import Pipeline

/// `learngene index`: (re)writes `Outbox/index.html` from the published job folders (and the failed ones in Failed/). The
/// daemon does this after every publish; this is for an Outbox copied elsewhere, or edited.
struct IndexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "index", abstract: "Rewrite Outbox/index.html from the published jobs.")

    @Option(name: .long, help: ArgumentHelp("Root folder (default: $LEARNGENE_ROOT, else the current folder).", valueName: "dir"))
    var root: String?

    func run() throws {
        let layout = PipelineSetup.root(root)
        let path = try OutboxIndex.write(outbox: layout.outbox, failures: Spool(layout: layout).indexFailures())
        print(path)
    }
}

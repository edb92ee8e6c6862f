import ArgumentParser
import Foundation
import Pipeline

/// `learngene status`: every job under the root and its state (queued, waiting, running with
/// step/loss/ETA, interrupted, published, failed), read from the folders.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show jobs and their state and progress.")

    @Option(name: .long, help: ArgumentHelp("Root folder (default: $LEARNGENE_ROOT, else the current folder).", valueName: "dir"))
    var root: String?

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        let layout = PipelineSetup.root(root)
        let rows = StatusReport.collect(layout: layout, catalog: PipelineSetup.registry.catalog)
        if json {
            print(JSONValue.array(rows.map(\.json)).pretty, terminator: "")
        } else {
            print(StatusReport.table(rows), terminator: "")
        }
    }
}

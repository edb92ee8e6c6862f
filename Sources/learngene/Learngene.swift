import ArgumentParser
import Logging
import Tensors

/// The `learngene` command: the daemon, its one-shot modes and the tools around it.
@available(macOS 10.15, *)
struct Learngene: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "learngene",
        abstract: "Train small diffusion transformers on the CPU from an inbox of datasets and job manifests.",
        subcommands: [ServeCommand.self, RunCommand.self, ValidateCommand.self, StatusCommand.self, IndexCommand.self, CheckReferenceCommand.self, BlasInfoCommand.self, ImportCommand.self])
}

/// Prints the OpenBLAS kernel in use (and why), for checking a machine's set-up.
struct BlasInfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "blas-info", abstract: "Show the OpenBLAS kernel in use.")
    func run() throws {
        print("kernel: \(Blas.coreName)")
        print("config: \(Blas.config)")
        print("threads: \(Blas.threads)")
    }
}

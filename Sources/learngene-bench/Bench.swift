import ArgumentParser

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "learngene-bench",
        abstract: "Benchmarks (not tests): print one JSON object per measurement.",
        subcommands: [TrainBench.self, SgemmBench.self, DecodeBench.self, InceptionBench.self])
}

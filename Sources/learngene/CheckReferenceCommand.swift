import ArgumentParser
import DiT
import Formats

/// `learngene check-reference FIXTURE.safetensors`: runs the model, loss, gradients, AdamW and
/// p_mean_variance of a DiT reference fixture (any config made by make_dit_fixtures.py) and
/// prints the largest differences per tensor group; exits non-zero past float32 tolerance.
struct CheckReferenceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-reference",
        abstract: "Compare learngene's DiT with tensors produced by DiT's own PyTorch code.")

    @Argument(help: "Reference fixture(s) (.safetensors) made by make_dit_fixtures.py.")
    var fixtures: [String]

    @Flag(name: .long, help: "Print every tensor, not just the per-group summary.")
    var verbose = false

    func run() throws {
        var failed = 0
        for path in fixtures {
            let file: SafeTensors.File
            do { file = try SafeTensors.read(contentsOf: path) } catch {
                print("\(path): \(error)")
                failed += 1
                continue
            }
            do {
                let config = try ReferenceCheck.config(of: file)
                print("== \(path)  (input \(config.inputSize), patch \(config.patchSize), C \(config.inChannels), D \(config.hiddenSize), depth \(config.depth), heads \(config.numHeads), classes \(config.numClasses))")
                let items = try ReferenceCheck.run(file)
                if verbose {
                    for i in items {
                        print("  \(i.passed ? "ok  " : "FAIL") \(i.name.padding(toLength: 52, withPad: " ", startingAt: 0)) max|Δ| \(String(format: "%.3e", i.maxAbs))  max rel \(String(format: "%.3e", i.maxRel))  max|ref| \(String(format: "%.3e", i.refMax))")
                    }
                }
                for line in ReferenceCheck.summary(items) { print("  " + line) }
                let bad = items.filter { !$0.passed }.count
                print(bad == 0 ? "  PASS (\(items.count) tensors)" : "  FAIL (\(bad) of \(items.count) tensors past tolerance)")
                if bad > 0 { failed += 1 }
            } catch {
                print("\(path): \(error)")
                failed += 1
            }
        }
        if failed > 0 { throw ExitCode(1) }
    }
}

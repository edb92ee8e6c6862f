import ArgumentParser
import Tensors

// Refuse a CPU this build cannot run on, then pick the fast OpenBLAS kernel, before anything
// else runs (see BlasKernel).
BlasKernel.requireAVX2()
let blasDecision = BlasKernel.reexecIfNeeded()

// ArgumentParser's own `main()` resolves to its synchronous overload from top-level code,
// so parse and dispatch here (this is what its async `main` does).
do {
    var command = try Learngene.parseAsRoot()
    if var asyncCommand = command as? any AsyncParsableCommand {
        try await asyncCommand.run()
    } else {
        try command.run()
    }
} catch {
    Learngene.exit(withError: error)
}

import ArgumentParser
import Tensors

// learngene-bench: measurements, never pass/fail. One JSON object per measurement on stdout.
BlasKernel.requireAVX2()
BlasKernel.reexecIfNeeded()
do {
    var command = try Bench.parseAsRoot()
    try command.run()
} catch {
    Bench.exit(withError: error)
}

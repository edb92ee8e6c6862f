import Dispatch
import Foundation

/// Splits loops over both cores. Called only between BLAS calls, never at the same time as
/// one, so our threads and OpenBLAS's own two never fight for the cores.
public enum Parallel {
    /// Worker count: the number of cores (2 on the target machine). LEARNGENE_THREADS overrides.
    public static let workers: Int = {
        if let s = ProcessInfo.processInfo.environment["LEARNGENE_THREADS"], let n = Int(s), n >= 1 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Calls `body(range)` on disjoint ranges covering `0..<count`, in parallel when the work is
    /// large enough (`count * costPerItem` above ~32k operations) to repay a thread hand-off.
    /// The split depends only on `count` and the worker count, and every index is processed by
    /// exactly one call, so results that are per-index do not depend on the thread count.
    @inlinable
    public static func forRanges(_ count: Int, costPerItem: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = min(workers, max(1, count * costPerItem / 32_768))
        if chunks <= 1 { body(0..<count); return }
        let per = (count + chunks - 1) / chunks
        withoutActuallyEscaping(body) { body in
            // The ranges are disjoint, so sharing the closure across workers is safe; Swift cannot
            // see that through raw pointers, hence the unchecked box.
            let box = UncheckedBox(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = c * per, hi = min(count, lo + per)
                if lo < hi { box.value(lo..<hi) }
            }
        }
    }

    /// Per-item parallel loop (`body(i)` for every i), chunked as in `forRanges`.
    @inlinable
    public static func forEach(_ count: Int, costPerItem: Int = 1, _ body: (Int) -> Void) {
        forRanges(count, costPerItem: costPerItem) { r in for i in r { body(i) } }
    }
}

/// Carries a non-Sendable value into a concurrent closure whose accesses are known disjoint.
public struct UncheckedBox<T>: @unchecked Sendable {
    public let value: T
    @inlinable public init(_ value: T) { self.value = value }
}

import Dispatch
import Foundation

/// Splits loops over the cores.
///
/// Two kinds of threads share the machine's two cores: OpenBLAS's own (two by default, busy
/// inside a BLAS call) and ours (`WorkerPool`, busy inside `forRanges` and for a spin after it). The rule
/// that keeps them from fighting: never run a `Parallel` loop and a multi-threaded BLAS call
/// at the same time. Kernels call BLAS, then `Parallel`, then BLAS, one after the other from
/// one thread. Where many small products must run at once (attention heads),
/// `Blas.stridedBatched` drops OpenBLAS to one thread and spreads the products over
/// `Parallel` instead.
///
/// One thing the rule cannot prevent: after a multi-threaded call, OpenBLAS 0.3.21's helper
/// thread polls for more work (a sched_yield loop) for about 2²⁸ cycles (~0.1 s) before it
/// sleeps, so it competes, politely, with a `Parallel` loop that follows. Measured here: ~33 ms
/// of CPU burnt per call while the caller slept 400 ms, on a loaded machine. If that shows up
/// in profiles, the remedy is one pool: OpenBLAS on one thread and large products split over
/// `Parallel` (the last bits of some elements then change with the split, see `Blas`).
///
/// Determinism: the way a loop is split depends only on the element count and the worker
/// count, and every index is handled by exactly one call. So any result computed per index
/// is bit-identical for every worker count. Reductions (sums) must not combine per-worker
/// partial results, because those depend on the split; `reduceBlocks` fixes the blocks
/// independently of the worker count instead.
public enum Parallel {
    /// The worker count used when no `withWorkers` is in effect: the number of cores the
    /// process may use (2 on the target machine). The LEARNGENE_THREADS variable overrides it.
    public static let defaultWorkers: Int = {
        if let s = ProcessInfo.processInfo.environment["LEARNGENE_THREADS"], let n = Int(s), n >= 1 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// A scoped override of the worker count. A task-local rather than a global, so that
    /// tests running concurrently (Swift Testing runs them in parallel) each see their own.
    /// Dispatch worker threads do not inherit it: a `Parallel` loop nested inside another
    /// one's body uses `defaultWorkers` (nesting is not something kernels should do anyway).
    @TaskLocal static var workerOverride: Int?

    /// How many pieces a large loop is split into at most (see `withWorkers`).
    public static var workers: Int { workerOverride ?? defaultWorkers }

    /// Runs `body` with loops split for `n` workers (`n >= 1`; 1 runs every loop inline on the
    /// calling thread). Meant for tests that check results do not depend on the thread count,
    /// and for callers that want to leave cores to someone else.
    public static func withWorkers<R>(_ n: Int, _ body: () throws -> R) rethrows -> R {
        precondition(n >= 1, "worker count must be at least 1, got \(n)")
        return try $workerOverride.withValue(n, operation: body)
    }

    /// `withWorkers` for async code.
    public static func withWorkers<R>(
        _ n: Int, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> R
    ) async rethrows -> R {
        precondition(n >= 1, "worker count must be at least 1, got \(n)")
        return try await $workerOverride.withValue(n, operation: body)
    }

    /// Work (in "operations", roughly one cheap arithmetic op each) below which a thread
    /// hand-off (a few microseconds) does not pay for itself.
    public static let grain = 32_768

    /// How many chunks `forRanges` cuts `count` items into. Depends only on `count`,
    /// `costPerItem` and `workers`. With more than one worker, each worker gets about four
    /// chunks, so that when another process holds one core for a while, the other core picks
    /// up the slack (Dispatch hands chunks out dynamically).
    @inlinable
    public static func chunkCount(_ count: Int, costPerItem: Int = 1) -> Int {
        let w = workers
        if w <= 1 || count <= 1 { return 1 }
        let byWork = count.multipliedReportingOverflow(by: max(1, costPerItem))
        let work = byWork.overflow ? Int.max : byWork.partialValue
        return min(count, min(w * 4, max(1, work / grain)))
    }

    /// Calls `body(range)` on disjoint ranges covering `0..<count`, in parallel when the work
    /// (`count * costPerItem`) is large enough to repay the hand-off. `body` may run on
    /// several threads at once, so it must only write to memory owned by its range.
    @inlinable
    public static func forRanges(_ count: Int, costPerItem: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = chunkCount(count, costPerItem: costPerItem)
        if chunks <= 1 { body(0..<count); return }
        // Even split: the first `count % chunks` chunks get one extra item.
        let base = count / chunks, extra = count % chunks
        WorkerPool.shared.run(chunks: chunks, slots: workers) { _, c in
            let lo = c * base + min(c, extra)
            let hi = lo + base + (c < extra ? 1 : 0)
            body(lo..<hi)
        }
    }

    /// Runs `body(worker, task)` for every task in `0..<tasks` on at most `maxWorkers` threads
    /// at once; `worker` (below that bound and `workers`) names the thread's slot, so the body
    /// may use per-worker scratch memory. Which worker runs a task varies from run to run, so
    /// a task's result must depend only on the task.
    public static func forTasks(_ tasks: Int, maxWorkers: Int = .max, _ body: (_ worker: Int, _ task: Int) -> Void) {
        if tasks <= 0 { return }
        WorkerPool.shared.run(chunks: tasks, slots: min(workers, maxWorkers), body)
    }

    /// Per-item parallel loop (`body(i)` for every i in `0..<count`), chunked as `forRanges`.
    @inlinable
    public static func forEach(_ count: Int, costPerItem: Int = 1, _ body: (Int) -> Void) {
        forRanges(count, costPerItem: costPerItem) { r in for i in r { body(i) } }
    }

    /// A deterministic parallel reduction. `0..<count` is cut into blocks of `blockSize`
    /// (the last one shorter); `partial` reduces one block, and the block results are then
    /// combined left to right on the calling thread. The blocks and the combination order do
    /// not depend on the worker count, so neither does the result, bit for bit.
    /// Returns `identity` when `count` is 0.
    @inlinable
    public static func reduceBlocks<T>(
        _ count: Int, blockSize: Int = 8192, costPerItem: Int = 1, identity: T,
        partial: (Range<Int>) -> T, combine: (T, T) -> T
    ) -> T {
        precondition(blockSize >= 1)
        if count <= 0 { return identity }
        let blocks = (count + blockSize - 1) / blockSize
        if blocks == 1 { return combine(identity, partial(0..<count)) }
        let results = UnsafeMutableBufferPointer<T>.allocate(capacity: blocks)
        defer {
            _ = results.deinitialize()
            results.deallocate()
        }
        let out = UncheckedBox(results)
        forRanges(blocks, costPerItem: blockSize * costPerItem) { r in
            for b in r {
                let lo = b * blockSize
                (out.value.baseAddress! + b).initialize(to: partial(lo..<min(count, lo + blockSize)))
            }
        }
        var total = identity
        for b in 0..<blocks { total = combine(total, results[b]) }
        return total
    }
}

/// Carries a non-Sendable value into a concurrent closure whose accesses are known disjoint.
public struct UncheckedBox<T>: @unchecked Sendable {
    public let value: T
    @inlinable public init(_ value: T) { self.value = value }
}

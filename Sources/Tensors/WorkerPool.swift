import Foundation
import Synchronization

/// The threads behind `Parallel`: the calling thread plus `Parallel.defaultWorkers − 1`
/// helpers that live for the whole process.
///
/// Why not Dispatch: a training step of the example's model makes about 150 parallel loops of
/// 0.1–1 ms each. `DispatchQueue.concurrentPerform` wakes its workers through the kernel for
/// each one (tens of µs, and `__schedule` was 10% of a sampling profile). These helpers spin
/// for a while after each loop (`spinLimit`), so the next loop, microseconds later, starts at
/// once; a helper that has spun that long without work sleeps on a condition variable and is
/// woken by the next loop. While spinning it yields the core every few iterations, so an
/// OpenBLAS thread that wants it gets it.
///
/// One loop at a time: a loop started while another runs (a nested loop inside a body, or a
/// second thread, as when tests run concurrently) runs inline on its own thread. That changes
/// nothing in the results: every chunk is computed by exactly one call, whichever thread runs it.
@usableFromInline
final class WorkerPool: @unchecked Sendable {
    @usableFromInline static let shared = WorkerPool(helpers: Parallel.defaultWorkers - 1)

    /// Spin iterations (each a few ns, with a yield every 64) before a helper sleeps: ~0.2 ms.
    static let spinLimit = 20_000

    let helpers: Int
    private let generation = Atomic<Int>(0)
    private let nextChunk = Atomic<Int>(0)
    private let unfinished = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let condition = NSCondition()
    /// The current loop, written before `generation` is bumped (release) and read after it is
    /// seen (acquire).
    private let job = UnsafeMutablePointer<Job?>.allocate(capacity: 1)

    struct Job {
        let chunks: Int
        let slots: Int
        let body: UncheckedBox<(_ slot: Int, _ chunk: Int) -> Void>
    }

    init(helpers: Int) {
        self.helpers = max(0, helpers)
        job.initialize(to: nil)
        for slot in 0..<self.helpers {
            let thread = Thread { [unowned self] in self.helperLoop(slot: slot + 1) }
            thread.name = "learngene-worker-\(slot + 1)"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// Calls `body(slot, chunk)` once for every chunk in `0..<chunks`, spread over at most
    /// `slots` threads (slot 0 is the caller; each slot runs on one thread at a time, so a
    /// body may use per-slot scratch memory). Returns when all chunks are done.
    @usableFromInline func run(chunks: Int, slots: Int, _ body: (_ slot: Int, _ chunk: Int) -> Void) {
        let usable = min(slots, helpers + 1, chunks)
        guard usable > 1, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for c in 0..<chunks { body(0, c) }
            return
        }
        withoutActuallyEscaping(body) { body in
            job.pointee = Job(chunks: chunks, slots: usable, body: UncheckedBox(body))
            nextChunk.store(0, ordering: .relaxed)
            unfinished.store(helpers, ordering: .relaxed)
            generation.add(1, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                condition.lock()
                condition.broadcast()
                condition.unlock()
            }
            work(slot: 0)
            // Helpers may still be inside a chunk, and must have left this job before the
            // next one is written.
            var spins = 0
            while unfinished.load(ordering: .acquiring) > 0 {
                spins += 1
                if spins & 63 == 0 { sched_yield() }
            }
            job.pointee = nil
        }
        busy.store(false, ordering: .releasing)
    }

    /// Takes chunks of the current job until none is left.
    private func work(slot: Int) {
        guard let j = job.pointee, slot < j.slots else { return }
        while true {
            let c = nextChunk.add(1, ordering: .relaxed).oldValue
            if c >= j.chunks { return }
            j.body.value(slot, c)
        }
    }

    private func helperLoop(slot: Int) {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins & 63 == 0 { sched_yield() }
                if spins > Self.spinLimit {
                    condition.lock()
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    while generation.load(ordering: .sequentiallyConsistent) == seen { condition.wait() }
                    sleepers.subtract(1, ordering: .sequentiallyConsistent)
                    condition.unlock()
                }
            }
            seen = generation.load(ordering: .acquiring)
            work(slot: slot)
            unfinished.subtract(1, ordering: .releasing)
        }
    }
}

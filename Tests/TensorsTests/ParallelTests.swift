import Synchronization
import Testing
@testable import Tensors

@Suite struct ParallelTests {
    /// Every index is visited exactly once, for any count and worker count.
    @Test(arguments: [0, 1, 2, 5, 4095, 100_001])
    func forRangesCoversEachIndexOnce(_ count: Int) {
        for workers in [1, 2, 3, 7] {
            var hits = [UInt8](repeating: 0, count: count)
            hits.withUnsafeMutableBufferPointer { h in
                let p = UncheckedBox(h.baseAddress)
                Parallel.withWorkers(workers) {
                    Parallel.forRanges(count, costPerItem: 1000) { r in for i in r { p.value![i] += 1 } }
                }
            }
            #expect(hits.allSatisfy { $0 == 1 }, "count \(count), \(workers) workers")
        }
    }

    @Test func chunking() {
        Parallel.withWorkers(1) { #expect(Parallel.chunkCount(1_000_000) == 1) }
        Parallel.withWorkers(2) {
            #expect(Parallel.chunkCount(100) == 1)                  // too little work to split
            #expect(Parallel.chunkCount(100, costPerItem: 1000) == 3)    // 100 000 ops: 3 grains
            #expect(Parallel.chunkCount(100, costPerItem: 100_000) == 8)  // at most 4 per worker
            #expect(Parallel.chunkCount(3, costPerItem: 1_000_000) == 3)  // never more chunks than items
            #expect(Parallel.chunkCount(.max, costPerItem: .max) == 8)    // no overflow
        }
    }

    /// `withWorkers` is scoped (a task-local): it nests, restores, and does not leak.
    @Test func withWorkersScopes() async {
        let outside = Parallel.workers
        Parallel.withWorkers(3) {
            #expect(Parallel.workers == 3)
            Parallel.withWorkers(1) { #expect(Parallel.workers == 1) }
            #expect(Parallel.workers == 3)
        }
        #expect(Parallel.workers == outside)
        let inner = await Parallel.withWorkers(5) { () async -> Int in
            await Task.yield()
            return Parallel.workers
        }
        #expect(inner == 5)
        #expect(Parallel.defaultWorkers >= 1)
    }

    @Test func forRangesRunsInParallelOnlyAboveTheGrain() {
        let calls = Atomic<Int>(0)
        Parallel.withWorkers(2) {
            Parallel.forRanges(10) { _ in calls.add(1, ordering: .relaxed) }
        }
        #expect(calls.load(ordering: .relaxed) == 1)
    }

    @Test func reduceBlocksIsOrdered() {
        // Concatenation is not commutative: the result shows the combination order.
        let parts = perWorkerCount([1, 2, 3]) {
            Parallel.reduceBlocks(10, blockSize: 3, costPerItem: 100_000, identity: "", partial: { r in
                "[\(r.lowerBound)-\(r.upperBound)]"
            }, combine: +)
        }
        #expect(parts.allSatisfy { $0 == "[0-3][3-6][6-9][9-10]" })
        #expect(Parallel.reduceBlocks(0, identity: 7, partial: { _ in 1 }, combine: +) == 7)
    }
}

@Suite struct TensorTests {
    @Test func basics() {
        let t = Tensor(shape: [2, 3, 4])
        #expect(t.count == 24)
        #expect(t.toArray().allSatisfy { $0 == 0 })
        #expect(Int(bitPattern: UnsafeRawPointer(t.data)) % 64 == 0)
        t[5] = 3
        #expect(t.data[5] == 3)
        let c = t.clone()
        t.fill(1)
        #expect(c[5] == 3 && c[0] == 0 && t[5] == 1)
        c.copy(from: t)
        #expect(c.toArray() == t.toArray())
        t.zero()
        #expect(t.buffer.allSatisfy { $0 == 0 })
        let v = Tensor(shape: [2, 2], values: [1, 2, 3, 4])
        #expect(v.toArray() == [1, 2, 3, 4])
        #expect(Tensor(shape: [0, 5]).count == 0)
        #expect(Tensor(shape: [0], values: []).toArray() == [])
        #expect(Tensor(shape: []).count == 1)  // a scalar
    }
}

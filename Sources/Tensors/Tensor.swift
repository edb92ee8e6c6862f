/// A dense Float32 array with a shape, stored row-major in one 64-byte-aligned allocation.
///
/// Kernels work on raw pointers (`data`), llm.c style; `Tensor` only owns the memory and
/// remembers the shape. It is a class so that a buffer is allocated once and reused by
/// every training step (no allocation inside the step).
///
/// `data` is valid only while the tensor is alive: keep a reference (a stored property, or
/// `withExtendedLifetime`) for as long as a kernel uses the pointer. The class is Sendable so
/// that buffers can be handed to worker threads; who writes which part is the kernels' job
/// (see `Parallel`), not the type system's.
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let count: Int
    public let data: UnsafeMutablePointer<Float>

    /// A zero-filled tensor.
    public init(shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.count = shape.reduce(1) { n, d in
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            precondition(!overflow, "shape \(shape) has too many elements")
            return p
        }
        // 64-byte alignment: a cache line, and what AVX-512 loads like best.
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        data = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        data.initialize(repeating: 0, count: max(count, 1))
    }

    /// A tensor holding `values` (which must have the shape's element count).
    public convenience init(shape: [Int], values: [Float]) {
        self.init(shape: shape)
        precondition(values.count == count, "\(values.count) values for shape \(shape)")
        if count > 0 { values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) } }
    }

    deinit { UnsafeMutableRawPointer(data).deallocate() }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }

    public subscript(i: Int) -> Float {
        get { data[i] }
        set { data[i] = newValue }
    }

    /// Sets every element to 0 (on both cores when large).
    public func zero() { Ops.fill(data, with: 0, count: count) }

    /// Sets every element to `value`.
    public func fill(_ value: Float) { Ops.fill(data, with: value, count: count) }

    /// Copies `other`'s elements (same element count; the shapes may differ).
    public func copy(from other: Tensor) {
        precondition(other.count == count, "copy: \(other.shape) into \(shape)")
        Ops.copy(other.data, to: data, count: count)
    }

    public func toArray() -> [Float] { Array(buffer) }

    /// A deep copy with the same shape.
    public func clone() -> Tensor {
        let t = Tensor(shape: shape)
        t.copy(from: self)
        return t
    }
}

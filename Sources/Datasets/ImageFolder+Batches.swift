import Tensors

/// Where a batch stream stands: everything a checkpoint must store to resume the data
/// order exactly (Codable; a few integers).
public struct BatchPosition: Sendable, Codable, Equatable {
    /// The random stream as it was before this epoch's order was drawn: the order (and the
    /// flips) are redrawn from it on resume rather than stored.
    public var epochStream: RandomStream
    /// Epochs completed.
    public var epoch: Int
    /// Samples of this epoch already handed out.
    public var cursor: Int
    /// The dataset size the order was drawn for: resuming on a dataset of another size is
    /// an error, not a silent new order.
    public var sampleCount: Int
}

/// Seeded, reproducible mini-batches of an `ImageSet`, as (N, C, H, W) floats in [-1, 1]
/// and labels.
///
/// - Each epoch visits every image once in an order drawn from `RandomStream`
///   (`permutation(count)`, then one word per image for the optional horizontal flip:
///   drawn whether or not flips are on, so turning flips on does not change the order).
///   The stream carries on from epoch to epoch, so the same seed gives the same batches.
/// - Batches run across epoch boundaries: every batch is full (even with fewer images
///   than the batch size), and over k epochs each image is seen exactly k times.
/// - `position` is the whole state; `init(images:batchSize:resumingFrom:)` with a stored
///   position gives exactly the batches the uninterrupted run would have given.
public struct ImageBatches: Sendable {
    public let images: ImageSet
    public let batchSize: Int
    /// Mirror each image left-right with probability ½ (DiT's `RandomHorizontalFlip`).
    public let horizontalFlip: Bool
    public private(set) var position: BatchPosition
    private var order: [Int] = []
    private var flips: [Bool] = []
    private var nextEpochStream: RandomStream

    /// Starts at epoch 0 of the order drawn from `stream` (e.g. `RandomStream(seed: s, stream: k)`).
    public init(images: ImageSet, batchSize: Int, stream: RandomStream, horizontalFlip: Bool = false) throws(ImageFolderError) {
        try self.init(images: images, batchSize: batchSize,
                      resumingFrom: BatchPosition(epochStream: stream, epoch: 0, cursor: 0, sampleCount: images.count),
                      horizontalFlip: horizontalFlip)
    }

    /// Resumes at a stored position.
    public init(images: ImageSet, batchSize: Int, resumingFrom position: BatchPosition, horizontalFlip: Bool = false) throws(ImageFolderError) {
        guard images.count > 0 else { throw ImageFolderError(path: "<images>", problem: .badSettings("no images to make batches of")) }
        guard batchSize >= 1 else { throw ImageFolderError(path: "<images>", problem: .badSettings("batch size must be at least 1, not \(batchSize)")) }
        guard position.sampleCount == images.count else {
            throw ImageFolderError(path: "<images>", problem: .incompatibleState(
                "it was made for \(position.sampleCount) images, this dataset has \(images.count)"))
        }
        guard position.cursor >= 0 && position.cursor <= images.count && position.epoch >= 0 else {
            throw ImageFolderError(path: "<images>", problem: .incompatibleState("cursor \(position.cursor) of \(images.count)"))
        }
        self.images = images
        self.batchSize = batchSize
        self.horizontalFlip = horizontalFlip
        self.position = position
        self.nextEpochStream = position.epochStream
        drawEpoch()
    }

    /// Draws the current epoch's order and flips from `position.epochStream`.
    private mutating func drawEpoch() {
        var stream = position.epochStream
        order = stream.permutation(images.count)
        flips = (0..<images.count).map { _ in stream.nextUInt32() & 1 == 1 }
        nextEpochStream = stream
    }

    /// The indices (into `images`) and flips of the next `batchSize` samples; advances.
    public mutating func nextIndices() -> [(index: Int, flip: Bool)] {
        var picked: [(index: Int, flip: Bool)] = []
        picked.reserveCapacity(batchSize)
        for _ in 0..<batchSize {
            if position.cursor == images.count {
                position = BatchPosition(epochStream: nextEpochStream, epoch: position.epoch + 1, cursor: 0,
                                         sampleCount: images.count)
                drawEpoch()
            }
            let c = position.cursor
            picked.append((order[c], horizontalFlip && flips[c]))
            position.cursor += 1
        }
        return picked
    }

    /// Fills `x` (shape [batchSize, C, H, W]) and `labels` with the next batch.
    public mutating func next(into x: Tensor, labels: inout [Int]) {
        let per = images.bytesPerImage
        precondition(x.count == batchSize * per,
                     "batch tensor \(x.shape) does not hold \(batchSize)×\(images.channels)×\(images.resolution)²")
        let picked = nextIndices()
        let set = images, data = UncheckedBox(x.data)
        labels = picked.map { set.labels[$0.index] }
        Parallel.forEach(picked.count, costPerItem: per * 2) { b in
            set.writeFloats(picked[b].index, flip: picked[b].flip, into: data.value + b * per)
        }
    }

    /// The next batch in a new tensor of shape [batchSize, C, H, W].
    public mutating func next() -> (images: Tensor, labels: [Int]) {
        let x = Tensor(shape: [batchSize, images.channels, images.resolution, images.resolution])
        var labels: [Int] = []
        next(into: x, labels: &labels)
        return (x, labels)
    }
}

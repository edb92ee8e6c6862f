import Foundation
import Testing
import Images
import Tensors
@testable import Datasets

/// A temporary folder removed at the end of the test.
final class TempFolder {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("lg-imagefolder-\(getpid())-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ relative: String, _ bytes: [UInt8]) throws {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: full, contents: Data(bytes)))
    }

    func png(_ relative: String, _ image: Image) throws { try write(relative, try ImageCodec.encodePNG(image)) }
}

/// A w×h image whose every sample is `value` (plus `x` when `ramp`).
func flat(_ w: Int, _ h: Int, _ c: Int, _ value: UInt8) -> Image {
    Image(width: w, height: h, channels: c, pixels: [UInt8](repeating: value, count: w * h * c))
}

func gray(_ w: Int, _ h: Int, _ values: [UInt8]) -> Image { Image(width: w, height: h, channels: 1, pixels: values) }

@Suite struct ImageFolderReadingTests {
    /// Classes sorted by code point, files sorted by code point, bad files collected with
    /// reasons, other files listed as ignored, hidden files skipped.
    @Test func readsLayoutOrderAndFailures() throws {
        let t = try TempFolder()
        try t.png("b/img2.png", flat(8, 8, 3, 20))
        try t.png("b/img10.png", flat(8, 8, 3, 10))
        try t.png("a/x.PNG", flat(8, 8, 1, 30))
        try t.png("C/deep/nested.png", flat(8, 8, 4, 40))
        try t.write("C/photo.jpg", try ImageCodec.encodeJPEG(flat(16, 16, 3, 50)))
        try t.write("é/bad.png", Array("not a png".utf8))
        let jpeg = try ImageCodec.encodeJPEG(flat(32, 32, 3, 60))
        try t.write("a/cut.jpeg", Array(jpeg[..<(jpeg.count / 2)]))
        try t.write("a/.DS_Store", [0])
        try t.write("a/notes.txt", Array("hi".utf8))
        try t.write("README.md", Array("readme".utf8))

        let folder = try ImageFolder(root: t.path, channels: 3, resolution: 4)
        #expect(folder.classes == ["C", "a", "b", "é"])
        #expect(folder.samples.map { String($0.path.dropFirst(t.path.count + 1)) }
                == ["C/deep/nested.png", "C/photo.jpg", "a/x.PNG", "b/img10.png", "b/img2.png"])
        #expect(folder.samples.map(\.label) == [0, 0, 1, 2, 2])
        #expect(folder.countsPerClass == [2, 1, 2, 0])
        #expect(folder.images.count == 5 && folder.images.labels == [0, 0, 1, 2, 2])
        #expect(folder.ignored == ["README.md", "a/notes.txt"])

        #expect(folder.failures.map { String($0.path.dropFirst(t.path.count + 1)) } == ["a/cut.jpeg", "é/bad.png"])
        #expect(folder.failures[0].error.reason.isTruncated)
        #expect(folder.failures[1].error.reason == .notAnImage)
        #expect(folder.failures[1].description.contains("é/bad.png"))
        do {
            try folder.requireNoFailures()
            Issue.record("requireNoFailures passed with two bad files")
        } catch {
            guard case .badFiles(let count, let first) = error.problem else { Issue.record("\(error)"); return }
            #expect(count == 2 && first.file.hasSuffix("a/cut.jpeg"))
        }

        // The cached pixels are the prepared images: gray 30 repeated to RGB, RGBA 40 over white.
        #expect(folder.images.image(at: 2).pixels == [UInt8](repeating: 30, count: 48))
        let a: Double = 40.0 / 255
        let white = UInt8((40 * a + 255 * (1 - a)).rounded())
        #expect(folder.images.image(at: 0).pixels == [UInt8](repeating: white, count: 48))
    }

    @Test func folderLevelProblemsThrow() throws {
        let t = try TempFolder()
        #expect(throws: ImageFolderError(path: t.path + "/missing", problem: .notAFolder)) {
            try ImageFolder(root: t.path + "/missing", channels: 3, resolution: 8)
        }
        #expect(throws: ImageFolderError(path: t.path, problem: .noClasses)) {
            try ImageFolder(root: t.path, channels: 3, resolution: 8)
        }
        try t.write("cats/readme.txt", [1])
        #expect(throws: ImageFolderError(path: t.path, problem: .noImages(classes: ["cats"]))) {
            try ImageFolder(root: t.path, channels: 3, resolution: 8)
        }
        #expect(throws: ImageFolderError.self) { try ImageFolder(root: t.path, channels: 2, resolution: 8) }
    }

    /// The pixel limit reaches the decoder: a bomb-sized image is a per-file failure.
    @Test func limitsApplyPerFile() throws {
        let t = try TempFolder()
        try t.png("a/small.png", flat(4, 4, 1, 1))
        try t.png("a/large.png", flat(64, 64, 1, 1))
        let folder = try ImageFolder(root: t.path, channels: 1, resolution: 4, limits: ImageLimits(maxPixels: 1000))
        #expect(folder.samples.count == 1)
        #expect(folder.failures.first?.error.reason == .tooLarge(width: 64, height: 64, limit: 1000))
    }

    /// Decoding in parallel gives the same bytes as decoding on one thread.
    @Test func resultDoesNotDependOnThreads() throws {
        let t = try TempFolder()
        for i in 0..<12 {
            let px = (0..<(30 * 20 * 3)).map { UInt8(truncatingIfNeeded: $0 &* (i + 7) >> 2) }
            try t.png("k\(i % 3)/f\(i).png", Image(width: 30, height: 20, channels: 3, pixels: px))
        }
        let one = try Parallel.withWorkers(1) { try ImageFolder(root: t.path, channels: 3, resolution: 7) }
        let two = try Parallel.withWorkers(2) { try ImageFolder(root: t.path, channels: 3, resolution: 7) }
        #expect(one.images == two.images)
    }
}

@Suite struct ImagePreparationTests {
    /// 6×4 → res 2: center square is columns 1...4; each output is a 2×2 block mean.
    @Test func centerCropThenAreaAverage() {
        let px: [UInt8] = (0..<24).map { UInt8($0 * 10) }   // value = 10 · (y·6 + x)
        let out = ImagePreparation(channels: 1, resolution: 2).prepare(gray(6, 4, px))
        func mean(_ x: Int, _ y: Int) -> UInt8 {
            let v = [(x, y), (x + 1, y), (x, y + 1), (x + 1, y + 1)].map { Double(px[$0.1 * 6 + $0.0]) }
            return UInt8((v.reduce(0, +) / 4).rounded())
        }
        #expect(out == [mean(1, 0), mean(3, 0), mean(1, 2), mean(3, 2)])
    }

    /// A non-integer factor (3 → 2) weights partly covered pixels by their covered fraction.
    @Test func fractionalAreaWeights() {
        let px: [UInt8] = [0, 30, 90, 0, 30, 90, 0, 30, 90]   // columns 0, 30, 90
        let out = ImagePreparation(channels: 1, resolution: 2).prepare(gray(3, 3, px))
        // Output column 0 covers [0, 1.5): (1·0 + 0.5·30) / 1.5 = 10; column 1: (0.5·30 + 1·90) / 1.5 = 70.
        #expect(out == [10, 70, 10, 70])
    }

    /// Upscaling (2 → 4) is bilinear at half-pixel centers, clamped at the edges.
    @Test func bilinearUpscale() {
        let out = ImagePreparation(channels: 1, resolution: 4).prepare(gray(2, 2, [0, 100, 0, 100]))
        #expect(Array(out[0..<4]) == [0, 25, 75, 100])
        #expect(Array(out[4..<8]) == [0, 25, 75, 100])
    }

    /// A tall image keeps its middle rows; an odd surplus leaves the extra column on the right.
    @Test func cropPlacement() {
        let tall: [UInt8] = (0..<32).map { UInt8($0) }   // 4 wide, 8 high
        #expect(ImagePreparation(channels: 1, resolution: 4).prepare(gray(4, 8, tall)) == Array(tall[8..<24]))
        let wide: [UInt8] = (0..<20).map { UInt8($0) }   // 5 wide, 4 high: surplus 1
        let out = ImagePreparation(channels: 1, resolution: 4).prepare(gray(5, 4, wide))
        #expect(out == (0..<4).flatMap { y in (0..<4).map { UInt8(y * 5 + $0) } })
    }

    @Test func channelConversions() {
        let rgb = Image(width: 1, height: 1, channels: 3, pixels: [200, 100, 50])
        let weighted: Double = 0.299 * 200 + 0.587 * 100 + 0.114 * 50
        let luma = UInt8(weighted.rounded())
        #expect(ImagePreparation(channels: 1, resolution: 1).prepare(rgb) == [luma])
        #expect(ImagePreparation(channels: 3, resolution: 1).prepare(gray(1, 1, [77])) == [77, 77, 77])
        #expect(ImagePreparation(channels: 3, resolution: 1).prepare(rgb) == [200, 100, 50])   // planar: R, G, B

        let rgba = Image(width: 1, height: 1, channels: 4, pixels: [0, 100, 200, 51])   // alpha 0.2
        #expect(ImagePreparation(channels: 3, resolution: 1).prepare(rgba) == [204, 224, 244])
        #expect(ImagePreparation(channels: 3, resolution: 1, alpha: .drop).prepare(rgba) == [0, 100, 200])
        let la = Image(width: 1, height: 1, channels: 2, pixels: [0, 0])   // fully transparent black
        #expect(ImagePreparation(channels: 1, resolution: 1).prepare(la) == [255])
        #expect(ImagePreparation(channels: 1, resolution: 1, alpha: .drop).prepare(la) == [0])
    }

    /// Resampling a flat image gives the same flat image at any size (weights sum to 1).
    @Test(arguments: [(7, 5, 3), (100, 37, 16), (3, 9, 32), (64, 64, 64)])
    func flatStaysFlat(_ w: Int, _ h: Int, _ res: Int) {
        let out = ImagePreparation(channels: 3, resolution: res).prepare(flat(w, h, 3, 173))
        #expect(out == [UInt8](repeating: 173, count: 3 * res * res))
    }
}

@Suite struct ImageBatchTests {
    /// n gray 2×2 images whose pixels all equal their index; label = index % 3.
    static func numbered(_ n: Int) -> ImageSet {
        ImageSet(channels: 1, resolution: 2, classes: ["a", "b", "c"], labels: (0..<n).map { $0 % 3 },
                 pixels: (0..<n).flatMap { [UInt8](repeating: UInt8($0), count: 4) })
    }

    static func ids(_ x: Tensor) -> [Int] {
        (0..<x.shape[0]).map { Int(((x[$0 * 4] + 1) * 127.5).rounded()) }
    }

    @Test func scalesToMinusOneOne() throws {
        let set = ImageSet(channels: 1, resolution: 2, classes: ["x"], labels: [0], pixels: [0, 255, 127, 128])
        var batches = try ImageBatches(images: set, batchSize: 1, stream: RandomStream(seed: 1))
        let (x, labels) = batches.next()
        #expect(x.shape == [1, 1, 2, 2] && labels == [0])
        let expected: [Float] = [-1, 1, Float(127) / 127.5 - 1, Float(128) / 127.5 - 1]
        #expect(x.toArray() == expected)
    }

    @Test func sameSeedSameBatchesAndEveryEpochIsAPermutation() throws {
        let set = Self.numbered(10)
        var a = try ImageBatches(images: set, batchSize: 4, stream: RandomStream(seed: 42, stream: 3))
        var b = try ImageBatches(images: set, batchSize: 4, stream: RandomStream(seed: 42, stream: 3))
        var c = try ImageBatches(images: set, batchSize: 4, stream: RandomStream(seed: 43, stream: 3))
        var seenA: [Int] = [], seenC: [Int] = []
        for _ in 0..<5 {   // 20 samples = 2 epochs exactly
            let (xa, la) = a.next(), (xb, lb) = b.next(), (xc, _) = c.next()
            #expect(xa.toArray() == xb.toArray() && la == lb)
            #expect(la == Self.ids(xa).map { $0 % 3 })
            seenA += Self.ids(xa)
            seenC += Self.ids(xc)
        }
        #expect(Set(seenA[0..<10]) == Set(0..<10) && Set(seenA[10..<20]) == Set(0..<10))
        #expect(seenA[0..<10] != seenA[10..<20], "two epochs drew the same order")
        #expect(seenA != seenC, "another seed gave the same order")
        #expect(a.position.epoch == 1 && a.position.cursor == 10)
    }

    /// A stored position (through JSON, as a checkpoint stores it) resumes the exact batches.
    @Test func resumesFromAStoredPosition() throws {
        let set = Self.numbered(7)
        var run = try ImageBatches(images: set, batchSize: 3, stream: RandomStream(seed: 9), horizontalFlip: true)
        for _ in 0..<4 { _ = run.next() }   // 12 samples: mid second epoch
        let saved = try JSONEncoder().encode(run.position)
        var expected: [[Float]] = []
        for _ in 0..<6 { expected.append(run.next().images.toArray()) }

        let position = try JSONDecoder().decode(BatchPosition.self, from: saved)
        var resumed = try ImageBatches(images: set, batchSize: 3, resumingFrom: position, horizontalFlip: true)
        for e in expected { #expect(resumed.next().images.toArray() == e) }

        #expect(throws: ImageFolderError.self) {
            try ImageBatches(images: Self.numbered(8), batchSize: 3, resumingFrom: position)
        }
    }

    /// Flips mirror rows and do not change the order; batches larger than the dataset fill up.
    @Test func flipsAndSmallDatasets() throws {
        let set = ImageSet(channels: 1, resolution: 2, classes: ["x"], labels: [0, 0], pixels: [0, 255, 0, 255, 10, 20, 30, 40])
        var plain = try ImageBatches(images: set, batchSize: 5, stream: RandomStream(seed: 5))
        var flipped = try ImageBatches(images: set, batchSize: 5, stream: RandomStream(seed: 5), horizontalFlip: true)
        let p = plain.nextIndices(), f = flipped.nextIndices()
        #expect(p.map(\.index) == f.map(\.index))
        #expect(p.allSatisfy { !$0.flip } && f.contains { $0.flip } && f.contains { !$0.flip })
        #expect(plain.position.epoch == 2 && plain.position.cursor == 1)

        // Two identical flipping streams: one makes the floats, the other says what they must be.
        var maker = try ImageBatches(images: set, batchSize: 1, stream: RandomStream(seed: 0), horizontalFlip: true)
        var oracle = try ImageBatches(images: set, batchSize: 1, stream: RandomStream(seed: 0), horizontalFlip: true)
        let x = Tensor(shape: [1, 1, 2, 2])
        var labels: [Int] = []
        var mirrored = false
        for _ in 0..<8 {
            maker.next(into: x, labels: &labels)
            let pick = oracle.nextIndices()[0]
            let b = (0..<4).map { set.pixels[pick.index * 4 + ($0 / 2) * 2 + (pick.flip ? 1 - $0 % 2 : $0 % 2)] }
            #expect(x.toArray() == b.map { Float($0) / 127.5 - 1 })
            mirrored = mirrored || pick.flip
        }
        #expect(mirrored)
    }

    @Test func badSettingsThrow() {
        #expect(throws: ImageFolderError.self) { try ImageBatches(images: Self.numbered(3), batchSize: 0, stream: RandomStream(seed: 0)) }
        #expect(throws: ImageFolderError.self) { try ImageBatches(images: Self.numbered(0), batchSize: 2, stream: RandomStream(seed: 0)) }
    }
}

extension ImageError.Reason {
    var isTruncated: Bool { if case .truncated = self { true } else { false } }
}

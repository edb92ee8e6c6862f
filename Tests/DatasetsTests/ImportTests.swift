import Foundation
import Testing
import Formats
import Images
@testable import Datasets

/// A fresh temporary folder, removed by the caller's `defer`.
private func scratchFolder() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("import-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// Tiny synthetic Fashion-MNIST files: `n` 4×3 images whose pixels encode their index,
/// label i % 10.
private func writeTinyFashionMNIST(in dir: String, prefix: String = "train", n: Int = 25, gzip: Bool = true) throws {
    let labels = IDXArray(type: .uint8, dimensions: [n], data: (0..<n).map { UInt8($0 % 10) })
    let images = IDXArray(type: .uint8, dimensions: [n, 3, 4], data: (0..<n).flatMap { tinyPixels(item: $0) })
    for (name, idx) in [("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)] {
        let bytes = IDX.serialize(idx)
        let path = "\(dir)/\(prefix)-\(name)" + (gzip ? ".gz" : "")
        try Data(gzip ? Gzip.compress(bytes) : bytes).write(to: URL(fileURLWithPath: path))
    }
}

/// The 12 pixels of tiny item `item`: (7·item + k) mod 256.
private func tinyPixels(item: Int) -> [UInt8] {
    (0..<12).map { (k: Int) -> UInt8 in UInt8((item * 7 + k) % 256) }
}

/// Pixel k of synthetic MNIST row `seed`: (31·k + seed) mod 256.
private func mnistPixels(seed: Int) -> [UInt8] {
    (0..<784).map { (k: Int) -> UInt8 in UInt8((k * 31 + seed) % 256) }
}

/// Collects what the importer would write, keyed by path relative to the output.
private final class Captured: @unchecked Sendable {
    var images: [String: Image] = [:]
}

private func listing(_ root: String) -> [String] {
    (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).sorted()
}

@Suite struct FashionMNISTImportTests {
    @Test func importsEveryImageWithLabelFoldersThatSortInOrder() throws {
        let dir = try scratchFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeTinyFashionMNIST(in: dir)
        let source = try FashionMNIST.load(directory: dir, split: .train)
        #expect(source.count == 25 && source.width == 4 && source.height == 3)
        #expect(source.itemNames(7) == "train-00007")

        let out = dir + "/out"
        let captured = Captured()
        let report = try DatasetImport.write(source, options: ImportOptions(output: out)) { image, path in
            captured.images[URL(fileURLWithPath: path).pathComponents.suffix(2).joined(separator: "/")] = image
            try ImageCodec.writePNG(image, to: path)
        }
        #expect(report.written == [3, 3, 3, 3, 3, 2, 2, 2, 2, 2] && report.total == 25)
        #expect(report.available == report.written)
        // Folder names sort in label order, and each holds the items of its label.
        let classes = try FileManager.default.contentsOfDirectory(atPath: out).filter { !$0.hasSuffix(".md") }
        #expect(classes.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) } == FashionMNIST.classNames)
        #expect(try FileManager.default.contentsOfDirectory(atPath: out + "/3_dress").sorted() == ["train-00003.png", "train-00013.png", "train-00023.png"])
        // The pixels written are the item's own, row-major, gray.
        let img = try #require(captured.images["3_dress/train-00013.png"])
        #expect(img.width == 4 && img.height == 3 && img.channels == 1)
        #expect(img.pixels == tinyPixels(item: 13))
        // ... and the PNG on disk decodes to the same.
        let decoded = try ImageCodec.decode(contentsOf: out + "/3_dress/train-00013.png")
        #expect(decoded.pixels == img.pixels && decoded.channels == 1)
        // Nothing but the finished folder is left in the parent (no staging folder).
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["out", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"])
        let readme = try String(contentsOfFile: out + "/README.md", encoding: .utf8)
        #expect(readme.contains("Fashion-MNIST train split") && readme.contains("Zalando SE") && readme.contains("`3_dress`: 3 of 3 images"))
    }

    @Test func readsUncompressedFilesAndTheTestSplit() throws {
        let dir = try scratchFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeTinyFashionMNIST(in: dir, prefix: "t10k", n: 10, gzip: false)
        let source = try FashionMNIST.load(directory: dir, split: .test)
        #expect(source.count == 10 && source.labels == Array(0..<10) && source.itemNames(3) == "test-00003")
        #expect { try FashionMNIST.load(directory: dir, split: .train) } throws: {
            "\($0)".contains("\(dir)/train-images-idx3-ubyte.gz: not found") && "\($0)".contains("--source")
        }
    }

    @Test func perClassAndSeedPickAStableSubset() throws {
        let dir = try scratchFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeTinyFashionMNIST(in: dir, n: 200)
        let source = try FashionMNIST.load(directory: dir, split: .train)
        func names(_ seed: UInt64, _ out: String) throws -> [String] {
            try DatasetImport.write(source, options: ImportOptions(output: dir + "/" + out, perClass: 4, seed: seed))
            return listing(dir + "/" + out).filter { $0.hasSuffix(".png") }
        }
        let a = try names(1, "a"), b = try names(1, "b"), c = try names(2, "c")
        #expect(a.count == 40)
        #expect(a == b, "the same seed must take the same images")
        #expect(a != c, "another seed should take other images")
        for name in a {  // every file is in its own label's folder
            let label = Int(String(name.first!))!
            let index = Int(name.split(separator: "-").last!.dropLast(4))!
            #expect(index % 10 == label)
        }
    }

    @Test func selectionIsPerClassAndIndependentOfOtherClasses() {
        let labels = (0..<100).map { $0 % 2 }
        let s1 = DatasetImport.select(labels: labels, classes: 2, perClass: 5, seed: 9)
        let s2 = DatasetImport.select(labels: labels + [0, 0, 0], classes: 2, perClass: 5, seed: 9)
        #expect(s1[0].count == 5 && s1[1].count == 5)
        #expect(s1[1] == s2[1], "adding items to class 0 changed class 1's choice")
        #expect(s1[0].allSatisfy { $0 % 2 == 0 } && s1[0] == s1[0].sorted())
        #expect(DatasetImport.select(labels: labels, classes: 3, perClass: 500, seed: 9)[2] == [])
        #expect(DatasetImport.select(labels: labels, classes: 2, perClass: nil, seed: 9)[1].count == 50)
    }

    @Test func existingOutputNeedsForceAndIsReplacedWhole() throws {
        let dir = try scratchFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeTinyFashionMNIST(in: dir)
        let source = try FashionMNIST.load(directory: dir, split: .train)
        let out = dir + "/out"
        try FileManager.default.createDirectory(atPath: out + "/stale", withIntermediateDirectories: true)
        #expect { try DatasetImport.write(source, options: ImportOptions(output: out)) } throws: {
            "\($0)" == "\(out): already exists (pass --force to replace it, or choose another --output)"
        }
        try DatasetImport.write(source, options: ImportOptions(output: out, perClass: 1, replace: true))
        #expect(!FileManager.default.fileExists(atPath: out + "/stale"))
        #expect(listing(out).filter { $0.hasSuffix(".png") }.count == 10)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(".") } == [])
    }

    @Test func aFailedWriteLeavesNothingBehind() throws {
        let dir = try scratchFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeTinyFashionMNIST(in: dir)
        let source = try FashionMNIST.load(directory: dir, split: .train)
        struct DiskFull: Error, CustomStringConvertible { var description: String { "disk full" } }
        var calls = 0
        #expect {
            try DatasetImport.write(source, options: ImportOptions(output: dir + "/out")) { _, _ in
                calls += 1
                if calls == 5 { throw DiskFull() }
            }
        } throws: { "\($0)".contains("cannot write the image: disk full") && "\($0)".contains("/1_trouser/train-00011.png") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"])
    }

    @Test func badFilesAreErrorsNamingTheFile() throws {
        let dir = try scratchFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeTinyFashionMNIST(in: dir)
        let images = dir + "/train-images-idx3-ubyte.gz", labels = dir + "/train-labels-idx1-ubyte.gz"

        // Truncated gzip.
        let good = try Data(contentsOf: URL(fileURLWithPath: images))
        try good.prefix(good.count - 10).write(to: URL(fileURLWithPath: images))
        #expect { try FashionMNIST.load(directory: dir, split: .train) } throws: {
            "\($0)".hasPrefix(images + ": compressed byte ") && "\($0)".contains("truncated")
        }
        // Wrong magic: the labels file where the images should be.
        try FileManager.default.removeItem(atPath: images)
        try FileManager.default.copyItem(atPath: labels, toPath: images)
        #expect { try FashionMNIST.load(directory: dir, split: .train) } throws: {
            "\($0)".hasPrefix(images + ": byte 0: expected uint8 images")
        }
        // Not IDX at all.
        try Data(Gzip.compress(Array("<html>404</html>".utf8))).write(to: URL(fileURLWithPath: images))
        #expect { try FashionMNIST.load(directory: dir, split: .train) } throws: {
            "\($0)".hasPrefix(images + ": byte 0: wrong magic number 0x3c68746d")
        }
        // Label out of range, and counts that disagree.
        let imgs = IDXArray(type: .uint8, dimensions: [2, 1, 1], data: [0, 0])
        #expect { try FashionMNIST.source(images: imgs, labels: IDXArray(type: .uint8, dimensions: [2], data: [3, 12]),
                                          imagesName: "i", labelsName: "l", split: .train) } throws: {
            "\($0)" == "l: item 1 (byte 9): label 12 is outside 0...9 (this is not a Fashion-MNIST labels file)"
        }
        #expect { try FashionMNIST.source(images: imgs, labels: IDXArray(type: .uint8, dimensions: [3], data: [3, 1, 2]),
                                          imagesName: "i", labelsName: "l", split: .train) } throws: { "\($0)".hasPrefix("l: 3 labels for the 2 images in i") }
    }
}

@Suite struct CSVDigitsImportTests {
    private func mlxtendRow(_ label: Int, _ seed: Int) -> String {
        (mnistPixels(seed: seed).map(String.init) + [String(label)]).joined(separator: ",")
    }

    @Test func mlxtendLayout() throws {
        let csv = (0..<20).map { mlxtendRow($0 % 10, $0) }.joined(separator: "\n") + "\n"
        let source = try CSVDigits.source(CSV.parseNumeric(Array(csv.utf8), name: "mnist_5k.csv"), name: "mnist_5k.csv")
        #expect(source.width == 28 && source.height == 28 && source.count == 20)
        #expect(source.labels == (0..<20).map { $0 % 10 })
        #expect(source.image(3).pixels == mnistPixels(seed: 3))
        #expect(source.itemNames(3) == "line-00004")
        #expect(source.classNames == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"])
    }

    @Test func sklearnLayoutStretchesSixteenLevels() throws {
        let rows = ["0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16" + String(repeating: ",0", count: 47) + ",7",
                    "16" + String(repeating: ",16", count: 63) + ",0"]
        let source = try CSVDigits.source(CSV.parseNumeric(Array(rows.joined(separator: "\r\n").utf8), name: "digits.csv"), name: "digits.csv")
        #expect(source.width == 8 && source.labels == [7, 0])
        #expect(Array(source.image(0).pixels[0..<17]) == [0, 16, 32, 48, 64, 80, 96, 112, 128, 143, 159, 175, 191, 207, 223, 239, 255])
        #expect(source.image(1).pixels.allSatisfy { $0 == 255 })
    }

    @Test func importsEndToEndFromAGzippedFile() throws {
        let dir = try scratchFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let csv = (0..<30).map { mlxtendRow($0 % 10, $0) }.joined(separator: "\n") + "\n"
        try Data(Gzip.compress(Array(csv.utf8))).write(to: URL(fileURLWithPath: dir + "/mnist_5k.csv.gz"))
        let report = try DatasetImport.write(CSVDigits.load(path: dir + "/mnist_5k.csv.gz"),
                                             options: ImportOptions(output: dir + "/digits", perClass: 2, seed: 5))
        #expect(report.written == Array(repeating: 2, count: 10) && report.available == Array(repeating: 3, count: 10))
        let files = listing(dir + "/digits").filter { $0.hasSuffix(".png") }
        #expect(files.count == 20 && files.allSatisfy { $0.hasPrefix("\($0.first!)/line-000") })
        let first = files[0]
        let line = Int(first.split(separator: "-").last!.dropLast(4))!
        let decoded = try ImageCodec.decode(contentsOf: dir + "/digits/" + first)
        #expect(decoded.width == 28 && decoded.pixels == mnistPixels(seed: line - 1))
    }

    @Test func badRowsNameFileLineAndColumn() throws {
        let good = mlxtendRow(1, 0)
        func load(_ text: String) throws -> ImportSource {
            try CSVDigits.source(CSV.parseNumeric(Array(text.utf8), name: "d.csv"), name: "d.csv")
        }
        let short = good.split(separator: ",").dropLast().joined(separator: ",")
        #expect { try load(good + "\n" + good + "\n" + short + "\n") } throws: { "\($0)".hasPrefix("d.csv: line 3: 784 fields, but line 1 has 785") }
        #expect { try load("1,2,3\n") } throws: { "\($0)".hasPrefix("d.csv: line 1: 3 columns; csv-digits reads 785") }
        #expect { try load(good + "\n" + good.dropLast() + "12\n") } throws: { "\($0)" == "d.csv: line 2, column 785: label 12.0 is not a digit 0-9 (the label is the last column)" }
        #expect { try load("300" + good.dropFirst(1) + "\n") } throws: { "\($0)".hasPrefix("d.csv: line 1, column 1: pixel 300.0 is not a whole number in 0...255") }
        #expect { try load("17" + String(repeating: ",0", count: 63) + ",1\n") } throws: { "\($0)".contains("line 1, column 1: pixel 17.0 is not a whole number in 0...16") }
        #expect { try load("0.5" + String(repeating: ",0", count: 63) + ",1\n") } throws: { "\($0)".contains("pixel 0.5") }
        #expect { try load("") } throws: { "\($0)".contains("has no data rows") }
        #expect { try CSVDigits.load(path: "/nonexistent/digits.csv.gz") } throws: { "\($0)".contains("/nonexistent/digits.csv.gz: cannot be opened") }
    }
}

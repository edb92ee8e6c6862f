import Foundation
import Testing
@testable import Formats

@Suite struct IDXTests {
    /// Two 2×3 "images", as Fashion-MNIST's idx3 files store them.
    let images = IDXArray(type: .uint8, dimensions: [2, 2, 3], data: [0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255])

    @Test func serializesTheDocumentedLayout() {
        let b = IDX.serialize(images)
        #expect(Array(b[0..<4]) == [0x00, 0x00, 0x08, 0x03])  // magic 0x00000803
        #expect(Array(b[4..<16]) == [0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3])  // big-endian dimensions
        #expect(Array(b[16...]) == images.data)
    }

    @Test func parsesWhatItWritesAndOtherTypes() throws {
        #expect(try IDX.parse(IDX.serialize(images), name: "x") == images)
        let labels = IDXArray(type: .uint8, dimensions: [3], data: [9, 0, 5])
        #expect(try IDX.parse([0, 0, 8, 1, 0, 0, 0, 3, 9, 0, 5], name: "labels") == labels)
        let ints = IDXArray(type: .int32, dimensions: [1, 2], data: [0, 0, 1, 0, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(try IDX.parse(IDX.serialize(ints), name: "ints") == ints)
        let empty = IDXArray(type: .uint8, dimensions: [0, 28, 28], data: [])
        #expect(try IDX.parse(IDX.serialize(empty), name: "empty").count == 0)
    }

    @Test func readsGzippedAndPlainFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("idx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let gz = dir.appendingPathComponent("train-images-idx3-ubyte.gz"), raw = dir.appendingPathComponent("train-images-idx3-ubyte")
        try Data(Gzip.compress(IDX.serialize(images))).write(to: gz)
        try Data(IDX.serialize(images)).write(to: raw)
        #expect(try IDX.read(contentsOf: gz.path) == images)
        #expect(try IDX.read(contentsOf: raw.path) == images)
    }

    @Test func badInputsNameTheFileAndPlace() {
        let good = IDX.serialize(images)
        #expect { try IDX.parse([0x1F, 0x8B, 8, 0, 0, 0, 0, 0], name: "labels.gz") } throws: {
            "\($0)".hasPrefix("labels.gz: byte 0: wrong magic number 0x1f8b0800")
        }
        #expect { try IDX.parse([0, 0, 0x07, 1, 0, 0, 0, 0], name: "t") } throws: { "\($0)".contains("wrong magic number 0x00000701") }
        #expect { try IDX.parse([0, 0, 8, 0], name: "t") } throws: { "\($0)".contains("byte 3") && "\($0)".contains("0 dimensions") }
        #expect { try IDX.parse([0, 0], name: "t") } throws: { "\($0)".contains("only 2 bytes") }
        #expect { try IDX.parse(Array(good[0..<10]), name: "t") } throws: { "\($0)".contains("truncated header") }
        #expect { try IDX.parse(Array(good.dropLast()), name: "imgs") } throws: {
            "\($0)".hasPrefix("imgs: byte 27: truncated: 11 bytes of data after the header, but 2×2×3 uint8 elements need 12")
        }
        #expect { try IDX.parse(good + [0], name: "t") } throws: { "\($0)".contains("1 bytes after the 12 bytes") }
        let huge: [UInt8] = [0, 0, 0x0E, 3] + [UInt8](repeating: 0xFF, count: 12)
        #expect { try IDX.parse(huge, name: "t") } throws: { "\($0)".contains("past Int.max") || "\($0)".contains("too large") }
    }
}

import Foundation
import Testing
@testable import Formats

@Suite struct TensorBoardEventsTests {
    @Test func crc32cKnownValue() {
        // The check value of CRC-32C (RFC 3720, B.4): "123456789" → 0xE3069283.
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
    }

    /// Writes scalars, an image and text, then reads the file back record by record.
    @Test func writeAndReadBack() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tb-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = try TensorBoardEventWriter(directory: dir, wallTime: 1000, host: "testhost")
        w.scalar("train/loss", 0.25, step: 10, wallTime: 1001)
        w.scalar("train/loss", 0.125, step: 20, wallTime: 1002)
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]
        w.image("samples", png: png, width: 56, height: 28, channels: 1, step: 20, wallTime: 1003)
        w.text("manifest", "stage: pretrain", step: 0, wallTime: 1004)
        w.close()
        #expect(w.path.hasSuffix("/events.out.tfevents.1000.testhost"))

        let records = try TFRecord.records(Array(try Data(contentsOf: URL(fileURLWithPath: w.path))), path: w.path)
        #expect(records.count == 5)
        let first = try ProtoMessage(records[0])
        #expect(first.string(3) == "brain.Event:2")
        #expect(first.double(1) == 1000)

        let events = try records.dropFirst().map { try ProtoMessage($0) }
        #expect(events.map { $0.varint(2) } == [10, 20, 20, 0])
        let values = try events.map { try $0.messages(5)[0].messages(1)[0] }
        #expect(values[0].string(1) == "train/loss" && values[0].float(2) == 0.25)
        #expect(values[1].float(2) == 0.125)
        let image = try values[2].messages(4)[0]
        #expect(image.varint(1) == 28 && image.varint(2) == 56 && image.varint(3) == 1 && image.bytes(4) == png)
        let tensor = try values[3].messages(8)[0]
        #expect(tensor.varint(1) == 7 && tensor.string(8) == "stage: pretrain")
        #expect(try values[3].messages(9)[0].messages(1)[0].string(1) == "text")
    }

    @Test func corruptRecordsAreRefused() throws {
        var framed = TFRecord.frame(Array("hello".utf8))
        #expect(try TFRecord.records(framed).count == 1)
        framed[13] ^= 1
        #expect(throws: DataFileError.self) { try TFRecord.records(framed) }
        #expect(throws: DataFileError.self) { try TFRecord.records(Array(framed.prefix(10))) }
    }
}

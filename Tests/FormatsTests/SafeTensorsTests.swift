import Foundation
import Testing
import Tensors
@testable import Formats

/// A file's bytes from a header string and a data buffer, with the header length either
/// right or as given (to forge hostile lengths).
private func forge(_ header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    var n = declaredLength ?? UInt64(h.count)
    var out: [UInt8] = []
    for _ in 0..<8 { out.append(UInt8(n & 0xFF)); n >>= 8 }
    return out + h + data
}

/// Checks that `bytes` are refused with a FormatError whose message contains `fragment`.
private func expectRejected(_ bytes: [UInt8], mentioning fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        _ = try SafeTensors.parse(bytes, name: "hostile.safetensors")
        Issue.record("accepted a malformed file; expected an error mentioning \"\(fragment)\"", sourceLocation: sourceLocation)
    } catch let e as SafeTensors.FormatError {
        #expect(e.description.contains("hostile.safetensors"), "error does not name the file: \(e)", sourceLocation: sourceLocation)
        #expect(e.description.contains(fragment), "error \"\(e)\" does not mention \"\(fragment)\"", sourceLocation: sourceLocation)
    } catch {
        Issue.record("wrong error type \(type(of: error)): \(error)", sourceLocation: sourceLocation)
    }
}

/// One tensor of every dtype we write plus the edge shapes (scalar, empty), with metadata.
private func sampleFile() -> SafeTensors.File {
    var f = SafeTensors.File(metadata: ["note": "quote \" backslash \\ newline \n tab \t ctl \u{1} naïve ✓", "ours.step": "2000"])
    f["blocks.0.attn.qkv.weight"] = .f32((0..<12).map { Float($0) * 0.5 - 3 }, shape: [3, 4])
    f["half"] = .f16([0, 1, -2, 0.5, 65504, 0x1p-14, 0x1p-24, .infinity], shape: [8])
    f["brain"] = .bf16([1, -1.5, 3.140625, 256, -0.0078125, 0], shape: [2, 3])
    f["sched"] = .f64([0.1, -2.5, 1e-300, 12345.678901234567], shape: [2, 2])
    f["t"] = .i64([-3, 0, 7, 1 << 40], shape: [4])
    f["scalar"] = .f32([42.5], shape: [])
    f["empty"] = .f32([], shape: [0, 3])
    f["mask"] = SafeTensors.Entry(dtype: .bool, shape: [3], bytes: [1, 0, 1])
    return f
}

@Suite struct SafeTensorsRoundTrip {
    @Test func swiftToSwiftKeepsEveryTensorAndMetadata() throws {
        let f = sampleFile()
        let bytes = SafeTensors.serialize(f)
        let g = try SafeTensors.parse(bytes, name: "roundtrip")
        #expect(g.tensors == f.tensors)
        var meta = f.metadata
        meta["format"] = "pt"
        #expect(g.metadata == meta)
        #expect(g["half"]!.floats() == [0, 1, -2, 0.5, 65504, 0x1p-14, 0x1p-24, .infinity])
        #expect(g["brain"]!.floats() == [1, -1.5, 3.140625, 256, -0.0078125, 0])
        #expect(g["sched"]!.doubles() == [0.1, -2.5, 1e-300, 12345.678901234567])
        #expect(g["t"]!.ints() == [-3, 0, 7, 1 << 40])
        #expect(g["scalar"]!.count == 1 && g["scalar"]!.floats() == [42.5])
        #expect(g["empty"]!.floats().isEmpty && g["empty"]!.shape == [0, 3])
        #expect(g["mask"]!.ints() == [1, 0, 1])
    }

    @Test func layoutFollowsTheReferenceWriter() throws {
        let bytes = SafeTensors.serialize(sampleFile())
        let n = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect(n % 8 == 0, "header length \(n) is not padded to a multiple of 8")
        #expect(bytes[8] == UInt8(ascii: "{"))
        let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
        #expect(header.hasSuffix("}") || header.hasSuffix(" "))
        #expect(header.trimmingCharacters(in: .whitespaces).hasSuffix("}"))
        // 8-byte types first (I64 before F64, as the reference's dtype order has it), then by name.
        let order = ["t", "sched", "blocks.0.attn.qkv.weight", "empty", "scalar", "brain", "half", "mask"]
        let positions = order.map { header.range(of: "\"\($0)\"")!.lowerBound }
        #expect(positions == positions.sorted(), "tensor order in header: \(header)")
        #expect(header.contains("\"format\":\"pt\""))
    }

    @Test func readsTheFileWrittenByPythonSafetensors() throws {
        let url = try #require(Bundle.module.url(forResource: "python-written", withExtension: "safetensors", subdirectory: "Fixtures"),
                               "Fixtures/python-written.safetensors is missing; regenerate it with Tools/make_safetensors_fixture.py")
        let f = try SafeTensors.read(contentsOf: url.path)
        #expect(Set(f.tensors.keys) == ["f32", "f16", "bf16", "f64", "i64", "i32", "u8", "bool", "scalar", "empty"])
        #expect(f.metadata == ["format": "pt", "made_by": "Tools/make_safetensors_fixture.py",
                               "unicode": "naïve ✓", "json_like": "{\"a\": [1, 2]}"])
        #expect(f["f32"]!.shape == [3, 4] && f["f32"]!.dtype == .f32)
        #expect(f["f32"]!.floats() == (0..<12).map { Float($0) * 0.25 - 1 })
        #expect(f["f16"]!.floats() == [0, 1, -2, 0.5, 65504, 0x1p-14, 0x1p-24, .infinity])
        #expect(f["bf16"]!.shape == [2, 3] && f["bf16"]!.floats() == [1, -1.5, 3.140625, 256, -0.0078125, 0])
        #expect(f["f64"]!.doubles() == [0.1, -2.5, 1e-300, 12345.678901234567])
        #expect(f["i64"]!.ints() == [-3, 0, 7, 1 << 40])
        #expect(f["i32"]!.ints() == [Int(Int32.min), 5])
        #expect(f["u8"]!.ints() == [0, 128, 255])
        #expect(f["bool"]!.ints() == [1, 0, 1])
        #expect(f["scalar"]!.shape == [] && f["scalar"]!.floats() == [42.5])
        #expect(f["empty"]!.shape == [0, 3] && f["empty"]!.bytes.isEmpty)
        // Our writer, given the same tensors, lays out the same data buffer as Python did.
        var mine = f
        mine.metadata = ["format": "pt"]
        let ours = try SafeTensors.parse(SafeTensors.serialize(mine), name: "ours")
        #expect(ours.tensors == f.tensors)
        let pythonBytes = try [UInt8](Data(contentsOf: url))
        let ourBytes = SafeTensors.serialize(mine)
        let pyN = pythonBytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let ourN = ourBytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect(Array(pythonBytes[(8 + pyN)...]) == Array(ourBytes[(8 + ourN)...]), "data buffer differs from the reference writer's")
    }

    @Test func readsTheDiTReferenceFixtures() throws {
        // They live in DiTTests' resources; reach them through the source tree.
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("DiTTests/Fixtures")
        for name in ["dit-ref-a.safetensors", "dit-ref-b.safetensors"] {
            let path = dir.appendingPathComponent(name).path
            guard FileManager.default.fileExists(atPath: path) else {
                print("skipping \(name): not found at \(path)")
                continue
            }
            let f = try SafeTensors.read(contentsOf: path)
            #expect(f.metadata["format"] == "pt")
            #expect(Set(f.tensors.values.map(\.dtype)) == [.f32, .f64, .i64])
            let t = try #require(f["input/t"])
            #expect(t.dtype == .i64 && t.ints().allSatisfy { (0..<1000).contains($0) })
        }
    }

    @Test func tensorConversionKeepsShapeAndValues() {
        let e = SafeTensors.Entry.f64([1.5, -2, 3.25, 4, 5, 6], shape: [2, 3])
        let t = e.tensor()
        #expect(t.shape == [2, 3])
        #expect(t.toArray() == [1.5, -2, 3.25, 4, 5, 6])
        let back = SafeTensors.Entry.f32(t)
        #expect(back.floats() == e.floats())
    }

    @Test func writeIsAtomicAndRefusesInvalidEntries() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.safetensors").path
        try SafeTensors.write(sampleFile(), to: path)
        #expect(try SafeTensors.read(contentsOf: path).tensors == sampleFile().tensors)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["m.safetensors"], "temporary file left behind")

        var bad = SafeTensors.File()
        bad["w"] = SafeTensors.Entry(dtype: .f32, shape: [3], bytes: [0, 0, 0, 0])
        #expect { try SafeTensors.write(bad, to: path) } throws: { "\($0)".contains("tensor \"w\" has 4 bytes, but shape [3] of F32 needs 12") }
        var reserved = SafeTensors.File()
        reserved["__metadata__"] = .f32([1], shape: [1])
        #expect { try SafeTensors.write(reserved, to: path) } throws: { "\($0)".contains("__metadata__") }
        // The failed writes left the earlier file as it was.
        #expect(try SafeTensors.read(contentsOf: path).tensors == sampleFile().tensors)
    }

    @Test func halfPrecisionConversionIsExactAndRoundsToEven() {
        // Every half bit pattern survives half -> Float -> half (NaNs stay NaN).
        for h in 0...UInt16.max {
            let f = SafeTensors.halfToFloat(h)
            if f.isNaN { #expect(SafeTensors.halfToFloat(SafeTensors.floatToHalf(f)).isNaN); continue }
            let back = SafeTensors.floatToHalf(f)
            if back != h { Issue.record("half 0x\(String(h, radix: 16)) -> \(f) -> 0x\(String(back, radix: 16))"); break }
        }
        #expect(SafeTensors.floatToHalf(65520) == 0x7C00)             // rounds up past the largest half: inf
        #expect(SafeTensors.floatToHalf(65519) == 0x7BFF)             // 65504
        #expect(SafeTensors.floatToHalf(1 + 0x1p-11) == 0x3C00)        // tie goes to even (1.0)
        #expect(SafeTensors.floatToHalf(1 + 3 * 0x1p-11) == 0x3C02)    // tie goes to even (1 + 2^-9)
        #expect(SafeTensors.floatToHalf(0x1p-25) == 0)                 // tie between 0 and the least subnormal
        #expect(SafeTensors.floatToHalf(0x1.8p-25) == 1)
        #expect(SafeTensors.floatToBF16(1 + 0x1p-8) == 0x3F80)         // tie to even
        #expect(SafeTensors.floatToBF16(1 + 0x1.8p-8) == 0x3F81)
        #expect(SafeTensors.e4m3ToFloat(0x7E) == 448)                  // largest F8_E4M3
        #expect(SafeTensors.e4m3ToFloat(0x7F).isNaN)
        #expect(SafeTensors.e4m3ToFloat(0x01) == 0x1p-9)
        #expect(SafeTensors.e4m3ToFloat(0xB8) == -1)
    }

    @Test func intsOfHostileFloatsDoNotTrap() {
        let e = SafeTensors.Entry.f32([.nan, .infinity, -.infinity, 1e30, -2.7], shape: [5])
        #expect(e.ints() == [0, Int.max, Int.min, Int.max, -2])
        // A hand-built entry with too few bytes converts what is there instead of over-reading.
        let short = SafeTensors.Entry(dtype: .f32, shape: [4], bytes: [0, 0, 0x80, 0x3F])
        #expect(short.floats() == [1])
    }
}

@Suite struct SafeTensorsHostileFiles {
    let okHeader = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
    let eight = [UInt8](repeating: 0, count: 8)

    @Test func aWellFormedForgedFileParses() throws {
        let f = try SafeTensors.parse(forge(okHeader, data: eight), name: "ok")
        #expect(f["w"]?.floats() == [0, 0])
        // Trailing spaces (the padding), and a header without metadata, are fine.
        _ = try SafeTensors.parse(forge(okHeader + "     ", data: eight), name: "ok")
    }

    @Test func lengthAndFramingErrors() {
        expectRejected([1, 2, 3], mentioning: "only 3 bytes")
        expectRejected(forge(okHeader, data: eight, declaredLength: 10_000), mentioning: "runs past the end")
        expectRejected(forge(okHeader, data: eight, declaredLength: UInt64.max), mentioning: "exceeds")
        expectRejected(forge(okHeader, data: eight, declaredLength: 100_000_001), mentioning: "exceeds")
        expectRejected(forge("[" + okHeader.dropFirst(), data: eight), mentioning: "does not start with '{'")
        expectRejected(forge(okHeader + "x", data: eight), mentioning: "after the end of the JSON object")
        expectRejected(forge(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, data: eight), mentioning: "header JSON")
        expectRejected(forge(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],}}"#, data: eight), mentioning: "quoted key")
    }

    @Test func truncatedFilesAreErrorsAtEveryLength() throws {
        let full = SafeTensors.serialize(sampleFile())
        for n in 0..<full.count {
            #expect(throws: SafeTensors.FormatError.self, "a \(n)-byte prefix was accepted") {
                try SafeTensors.parse(Array(full[0..<n]), name: "cut")
            }
        }
    }

    @Test func corruptedBytesNeverCrash() {
        // Deterministic single-byte corruptions over the whole file: each must parse or throw
        // a FormatError naming the file. A flip in the tensor data parses to the same names
        // and shapes (the format has no checksum); anything that parses is a valid file:
        // it passes `validate` and survives a write and read unchanged.
        let original = sampleFile()
        let full = SafeTensors.serialize(original)
        let headerEnd = 8 + full[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        var state: UInt64 = 7
        var parsed = 0, refused = 0
        for i in 0..<full.count {
            var b = full
            b[i] ^= UInt8(1 + lcg(&state) % 255)
            do {
                let f = try SafeTensors.parse(b, name: "flip")
                parsed += 1
                #expect(throws: Never.self, "byte \(i): parsed but invalid") { try SafeTensors.validate(f) }
                let again = try? SafeTensors.parse(SafeTensors.serialize(f), name: "again")
                #expect(again.map { Set($0.tensors.keys) } == Set(f.tensors.keys), "byte \(i): not stable through a write")
                if i >= headerEnd {
                    #expect(Set(f.tensors.keys) == Set(original.tensors.keys), "byte \(i) (data): other names")
                    for (k, e) in original.tensors { #expect(f[k]?.shape == e.shape && f[k]?.dtype == e.dtype, "byte \(i): \(k) changed shape") }
                }
            } catch let e as SafeTensors.FormatError {
                refused += 1
                #expect(e.file == "flip" && !e.reason.isEmpty)
                #expect(i < headerEnd, "byte \(i) is tensor data, yet the file was refused: \(e)")
            } catch {
                Issue.record("byte \(i): \(type(of: error)) instead of SafeTensors.FormatError: \(error)")
            }
        }
        #expect(parsed >= full.count - headerEnd && refused > 0, "parsed \(parsed), refused \(refused)")
    }

    @Test func duplicateKeys() {
        expectRejected(forge(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: eight),
                       mentioning: "duplicate key \"w\"")
        expectRejected(forge(#"{"__metadata__":{"a":"1","a":"2"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: eight),
                       mentioning: "duplicate key \"a\"")
        expectRejected(forge(#"{"w":{"dtype":"F32","dtype":"F64","shape":[2],"data_offsets":[0,8]}}"#, data: eight),
                       mentioning: "duplicate key \"dtype\"")
    }

    @Test func dtypesAndShapes() {
        expectRejected(forge(#"{"w":{"dtype":"F4","shape":[2],"data_offsets":[0,8]}}"#, data: eight), mentioning: "unsupported dtype \"F4\"")
        expectRejected(forge(#"{"w":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}"#, data: eight), mentioning: "unsupported dtype")
        expectRejected(forge(#"{"w":{"dtype":32,"shape":[2],"data_offsets":[0,8]}}"#, data: eight), mentioning: "no dtype string")
        expectRejected(forge(#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, data: eight), mentioning: "too many elements")
        expectRejected(forge(#"{"w":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}}"#, data: eight), mentioning: "not an integer")
        expectRejected(forge(#"{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: eight), mentioning: "not an integer")
        expectRejected(forge(#"{"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}"#, data: eight), mentioning: "not an integer")
        expectRejected(forge(#"{"w":{"dtype":"F32","shape":[true,2],"data_offsets":[0,8]}}"#, data: eight), mentioning: "not an integer")
        expectRejected(forge(#"{"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}"#, data: eight), mentioning: "no shape list")
        expectRejected(forge(#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: eight), mentioning: "needs 12")
        expectRejected(forge(#"{"w":[1,2]}"#, data: eight), mentioning: "is an array, not an object")
    }

    @Test func offsets() {
        expectRejected(forge(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,80]}}"#, data: eight), mentioning: "outside the 8-byte data buffer")
        expectRejected(forge(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, data: eight), mentioning: "outside")
        expectRejected(forge(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}}"#, data: eight), mentioning: "data_offsets [begin, end]")
        expectRejected(forge(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,-8]}}"#, data: eight), mentioning: "data_offsets [begin, end]")
        expectRejected(forge(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: eight),
                       mentioning: "overlaps")
        expectRejected(forge(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, data: eight + [0, 0, 0, 0]),
                       mentioning: "belong to no tensor")
        expectRejected(forge(okHeader, data: eight + [1]), mentioning: "last 1 bytes of the data buffer belong to no tensor")
    }

    @Test func metadata() {
        expectRejected(forge(#"{"__metadata__":{"step":2000},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: eight),
                       mentioning: "__metadata__[\"step\"] is a number")
        expectRejected(forge(#"{"__metadata__":{"x":{"y":"z"}},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: eight),
                       mentioning: "is an object; metadata values must be strings")
        expectRejected(forge(#"{"__metadata__":["a"],"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: eight),
                       mentioning: "__metadata__ is an array")
        expectRejected(forge(#"{"__metadata__":null,"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: eight),
                       mentioning: "__metadata__ is null")
    }

    @Test func hostileJSON() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        expectRejected(forge(#"{"w":"# + deep + "}"), mentioning: "nested deeper")
        var badUTF8 = forge(okHeader, data: eight)
        badUTF8[10] = 0xFF  // inside the key "w"
        expectRejected(badUTF8, mentioning: "not valid UTF-8")
        expectRejected(forge(#"{"w\u0001":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#.replacingOccurrences(of: "\\u0001", with: "\u{1}"), data: eight),
                       mentioning: "raw control character")
        expectRejected(forge(#"{"w\ud800":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: eight), mentioning: "surrogate")
        expectRejected(forge(#"{"w":{"dtype":"F32","shape":[02],"data_offsets":[0,8]}}"#, data: eight), mentioning: "leading zeros")
        // Escapes that are legal decode to the right key.
        let f = try? SafeTensors.parse(forge(#"{"w\u00e9\ud83d\ude00\/":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: eight), name: "ok")
        #expect(f?.tensors.keys.first == "wé😀/")
    }

    @Test func missingAndUnreadableFiles() {
        #expect { try SafeTensors.read(contentsOf: "/nonexistent/model.safetensors") } throws: {
            "\($0)".contains("/nonexistent/model.safetensors") && "\($0)".contains("No such file")
        }
        #expect { try SafeTensors.read(contentsOf: NSTemporaryDirectory()) } throws: { "\($0)".contains("not a regular file") }
    }

    /// `read` holds the whole file: one larger than the limit (by default half the memory)
    /// is refused before any byte is read, instead of ending in the OOM killer.
    @Test func readRefusesFilesOverTheLimit() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("big-\(UUID().uuidString).safetensors").path
        defer { unlink(path) }
        try SafeTensors.write(sampleFile(), to: path)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(throws: Never.self) { _ = try SafeTensors.read(contentsOf: path, maxBytes: size) }
        #expect { try SafeTensors.read(contentsOf: path, maxBytes: size - 1) } throws: { "\($0)".contains("limit") }
        // Sparse, so it costs no disk: as large as the machine's memory.
        let fd = open(path, O_WRONLY)
        #expect(ftruncate(fd, off_t(ProcessInfo.processInfo.physicalMemory)) == 0)
        close(fd)
        #expect { try SafeTensors.read(contentsOf: path) } throws: { "\($0)".contains("limit") }
    }
}

@Suite struct AtomicFileTests {
    @Test func replacesWholeAndLeavesNoTemporaryFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atomic-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try AtomicFile.write([1, 2, 3], to: dir + "/f")
        try AtomicFile.write([4, 5], to: dir + "/f")
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/f"))) == [4, 5])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["f"])
    }

    @Test func failuresNameThePathAndCleanUp() throws {
        #expect { try AtomicFile.write([1], to: "/nonexistent-dir/f") } throws: {
            "\($0)".hasPrefix("cannot write /nonexistent-dir/f: cannot create a temporary file in /nonexistent-dir: No such file or directory")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atomic-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/taken/inner", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Renaming a file over a non-empty folder fails; the temporary file must not stay.
        #expect { try AtomicFile.write([1], to: dir + "/taken") } throws: { "\($0)".contains("cannot rename the finished temporary file into place") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["taken"])
    }
}

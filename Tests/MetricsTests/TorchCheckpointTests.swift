import Foundation
import Testing
@testable import Formats

/// The torch checkpoint reader against files torch itself wrote (Tools/make_torch_fixtures.py),
/// and against hostile and damaged ones.
@Suite struct TorchCheckpointTests {
    static let folder: String = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.path + "/torch"

    static func path(_ name: String) -> String { folder + "/" + name }

    struct Expected: Decodable {
        var dtype: String
        var shape: [Int]
        var values: [Double]
    }

    static func expected() throws -> [String: Expected] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path("expected.json")))
        return try JSONDecoder().decode([String: Expected].self, from: data)
    }

    static let dtypes: [String: SafeTensors.DType] = [
        "float32": .f32, "float64": .f64, "float16": .f16, "bfloat16": .bf16, "int64": .i64, "int32": .i32,
        "int16": .i16, "int8": .i8, "uint8": .u8, "bool": .bool,
    ]

    @Test(arguments: ["state-zip.pt", "state-legacy.pt"])
    func readsEveryTensorAsTorchLoadDoes(file: String) throws {
        let contents = try TorchCheckpoint.read(contentsOf: Self.path(file))
        #expect(contents.layout == (file.contains("zip") ? .zip : .legacy))
        let expected = try Self.expected()
        #expect(contents.tensors.map(\.name).sorted() == expected.keys.sorted())
        // The pickle's order is the state dict's order.
        #expect(contents.tensors.first?.name == "f32")
        for t in contents.tensors {
            let e = try #require(expected[t.name])
            #expect(t.entry.dtype == Self.dtypes[e.dtype], "\(t.name)")
            #expect(t.entry.shape == e.shape, "\(t.name)")
            // Integers compared as integers: `doubles()` goes through Float for 32-bit ones.
            let values = e.dtype.hasPrefix("float") || e.dtype == "bfloat16" ? t.entry.doubles() : t.entry.ints().map(Double.init)
            #expect(values == e.values, "\(t.name): values differ from torch.load's")
        }
    }

    @Test func writesSafeTensorsThatReadBack() throws {
        let contents = try TorchCheckpoint.read(contentsOf: Self.path("state-zip.pt"))
        let file = try contents.safeTensorsFile(source: "state-zip.pt")
        let back = try SafeTensors.parse(SafeTensors.serialize(file), name: "round trip")
        #expect(back.tensors == file.tensors)
        #expect(back.metadata["source_layout"] == "torch zip")
        #expect(back["view.transposed"]?.shape == [5, 4])
    }

    @Test func nestedCheckpointSelectsASubDictAndKeepsValuesAsMetadata() throws {
        let contents = try TorchCheckpoint.read(contentsOf: Self.path("nested-zip.pt"))
        #expect(contents.tensors.map(\.name) == ["model.w", "model.b", "ema.w", "ema.b"])
        #expect(contents.topLevelKeys == ["model", "ema"])
        let ema = try contents.safeTensorsFile(select: "ema", source: "nested-zip.pt")
        #expect(ema.tensors.keys.sorted() == ["b", "w"])
        #expect(ema["w"]?.floats() == [0, 0.5, 1, 1.5, 2, 2.5])
        let all = try contents.safeTensorsFile(source: "nested-zip.pt")
        #expect(all.metadata["torch.step"] == "7")
        #expect(all.metadata["torch.name"] == "DiT-tiny")
        #expect(throws: DataFileError.self) { try contents.safeTensorsFile(select: "opt", source: "nested-zip.pt") }
        do throws(DataFileError) {
            _ = try contents.safeTensorsFile(select: "opt", source: "nested-zip.pt")
        } catch {
            #expect(error.hint?.contains("model, ema") == true, "the message lists the keys there are: \(error)")
        }
    }

    /// A checkpoint that names code is refused at the GLOBAL, before anything could run.
    /// (Protocol 2 spells Python 3's `builtins` as `__builtin__`.)
    @Test(arguments: [("hostile-global-legacy.pt", "posix.system"), ("hostile-global-zip.pt", "__builtin__.eval")])
    func refusesCodeReferences(file: String, callable: String) throws {
        do throws(DataFileError) {
            _ = try TorchCheckpoint.read(contentsOf: Self.path(file))
            Issue.record("\(file) was read")
        } catch {
            #expect(error.reason.contains(callable), "\(error)")
            #expect(error.reason.contains("refused"), "\(error)")
            #expect(error.location?.hasPrefix("byte ") == true, "the message says where: \(error)")
            #expect(error.hint?.contains("state_dict") == true, "\(error)")
        }
    }

    @Test func refusesATensorReachingPastItsStorage() throws {
        do throws(DataFileError) {
            _ = try TorchCheckpoint.read(contentsOf: Self.path("hostile-bounds-legacy.pt"))
            Issue.record("read")
        } catch {
            #expect(error.reason.contains("tensor `x`"), "\(error)")
            #expect(error.reason.contains("only 6 elements"), "\(error)")
        }
    }

    @Test func refusesACompressedZip() throws {
        do throws(DataFileError) {
            _ = try TorchCheckpoint.read(contentsOf: Self.path("deflated-zip.pt"))
            Issue.record("read")
        } catch {
            #expect(error.reason.contains("compressed"), "\(error)")
        }
    }

    /// Every cut of a good file is an error, never a crash or a partial result.
    @Test(arguments: ["state-zip.pt", "state-legacy.pt"])
    func refusesEveryTruncation(file: String) throws {
        let bytes = try DataFile.bytes(atPath: Self.path(file))
        var cuts = Set(stride(from: 0, to: bytes.count, by: max(1, bytes.count / 97)))
        cuts.formUnion([1, 2, 14, 20, bytes.count - 1, bytes.count - 8, bytes.count - 22])
        for cut in cuts.sorted() where cut < bytes.count {
            #expect(throws: DataFileError.self, "cut at \(cut) of \(bytes.count)") {
                try TorchCheckpoint.parse(Array(bytes[..<cut]), name: "\(file)[..<\(cut)]")
            }
        }
    }

    /// Flipping any byte of the zip is caught (CRC, structure) or yields the same names;
    /// it never crashes. Same for the legacy layout, where only the structure is checked.
    @Test(arguments: ["state-zip.pt", "state-legacy.pt"])
    func survivesCorruptedBytes(file: String) throws {
        let bytes = try DataFile.bytes(atPath: Self.path(file))
        let good = try TorchCheckpoint.parse(bytes, name: file)
        let names = good.tensors.map(\.name)
        var seed: UInt64 = 1
        var refused = 0, same = 0
        for _ in 0..<300 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            var copy = bytes
            let at = Int(seed >> 33) % copy.count
            copy[at] ^= UInt8(truncatingIfNeeded: (seed >> 13) | 1)
            do throws(DataFileError) {
                let c = try TorchCheckpoint.parse(copy, name: "corrupted")
                // Parsed: in the zip layout every member is CRC-checked, so only bytes the
                // names do not depend on can have changed; the legacy layout keeps its
                // structure, so the same number of tensors.
                if file.contains("zip") {
                    #expect(c.tensors.map(\.name) == names, "byte \(at): parsed with other names")
                } else {
                    #expect(c.tensors.count == names.count, "byte \(at): parsed with \(c.tensors.count) tensors")
                }
                same += 1
            } catch {
                #expect(error.file == "corrupted" && !error.reason.isEmpty, "byte \(at): \(error)")
                refused += 1
            }
        }
        #expect(refused > 0 && refused + same == 300)
    }

    /// Found by fuzzing (Tools/fuzz): a legacy file whose "protocol version" is a list nested
    /// 100 000 deep. Loading it is iterative, but the error message printed the value (its
    /// description recursed until the stack overflowed), and freeing it recursed as deep.
    @Test func deeplyNestedProtocolVersionIsAnErrorNotAStackOverflow() {
        let magic: [UInt8] = [0x80, 0x02, 0x8A, 10, 108, 252, 156, 70, 249, 32, 106, 168, 80, 25, 0x2E]
        let depth = 100_000
        let nested: [UInt8] = [0x80, 0x02] + [UInt8](repeating: 0x5D, count: depth) + [UInt8](repeating: 0x61, count: depth - 1) + [0x2E]
        do throws(DataFileError) {
            _ = try TorchCheckpoint.parse(magic + nested, name: "nested")
            Issue.record("parsed")
        } catch {
            #expect(error.reason.contains("deeper than 100 levels"), "\(error)")
        }
    }

    /// The same through the memo: a chain of dicts built top-down (each filled after it was
    /// placed in its parent), and 2⁴⁰ paths through one tuple shared by DUP: refused or read
    /// without recursion or an exponential walk.
    @Test func deepChainsThroughTheMemoAndSharedTuplesAreRefused() {
        let magic: [UInt8] = [0x80, 0x02, 0x8A, 10, 108, 252, 156, 70, 249, 32, 106, 168, 80, 25, 0x2E]
        var chain: [UInt8] = [0x80, 0x02, 0x7D, 0x94, 0x30]  // {} memoized as 0, popped
        for i in 0..<50_000 {
            // get memo[i]; key 0; {} memoized as i+1; SETITEM; pop
            chain += [0x6A] + withUnsafeBytes(of: UInt32(i).littleEndian, Array.init) + [0x4B, 0, 0x7D, 0x94, 0x73, 0x30]
        }
        chain += [0x68, 0, 0x2E]
        do throws(DataFileError) {
            _ = try TorchCheckpoint.parse(magic + chain, name: "chain")
            Issue.record("parsed")
        } catch {
            #expect(error.reason.contains("deeper than 100 levels"), "\(error)")
        }
        var dag: [UInt8] = [0x80, 0x02, 0x29]
        for _ in 0..<40 { dag += [0x32, 0x86] }  // DUP, TUPLE2: (t, t)
        dag += [0x2E]
        do throws(DataFileError) {
            _ = try TorchCheckpoint.parse(magic + dag, name: "dag")
            Issue.record("parsed")
        } catch {
            #expect(error.reason.contains("protocol version is a tuple"), "\(error)")
        }
    }

    @Test func refusesOtherFiles() throws {
        #expect(throws: DataFileError.self) { try TorchCheckpoint.parse([], name: "empty") }
        #expect(throws: DataFileError.self) { try TorchCheckpoint.parse(Array("hello".utf8), name: "text") }
        // A plain pickle (not torch.save): protocol 2, the int 1, STOP.
        do throws(DataFileError) {
            _ = try TorchCheckpoint.parse([0x80, 0x02, 0x4B, 0x01, 0x2E], name: "plain")
            Issue.record("read")
        } catch {
            #expect(error.reason.contains("magic"), "\(error)")
        }
    }

    /// Opcodes a state dict never needs (INST, OBJ, NEWOBJ, ...) are refused by name.
    @Test func refusesUnneededOpcodes() throws {
        // legacy prefix: magic, 1001, {} then a pickle using NEWOBJ (0x81).
        var bytes: [UInt8] = [0x80, 0x02, 0x8A, 0x0A] + TorchCheckpoint.legacyMagic + [0x2E]
        bytes += [0x80, 0x02, 0x4D, 0xE9, 0x03, 0x2E]
        bytes += [0x80, 0x02, 0x7D, 0x2E]
        bytes += [0x80, 0x02, 0x29, 0x29, 0x81, 0x2E]
        do throws(DataFileError) {
            _ = try TorchCheckpoint.parse(bytes, name: "newobj")
            Issue.record("read")
        } catch {
            #expect(error.reason.contains("NEWOBJ"), "\(error)")
        }
    }

    // MARK: - TorchScript archives (torch.jit.save)

    /// Pickle bytes: protocol 2, `body`, STOP.
    static func pickle(_ body: [UInt8]) -> [UInt8] { [0x80, 0x02] + body + [0x2E] }
    static func global(_ module: String, _ name: String) -> [UInt8] { [0x63] + Array("\(module)\n\(name)\n".utf8) }
    static func unicode(_ s: String) -> [UInt8] { [0x58] + withUnsafeBytes(of: UInt32(s.utf8.count).littleEndian, Array.init) + Array(s.utf8) }

    static func load(_ bytes: [UInt8]) throws(Pickle.Failure) -> Pickle.Value {
        try bytes.withUnsafeBytes { raw in Result { () throws(Pickle.Failure) in try Pickle.load(raw, from: 0).0 } }.get()
    }

    /// `__torch__.m.Conv` built as torch.jit.save writes a module: NEWOBJ with no arguments,
    /// then BUILD with its attributes (a typed int list among them). Read as a dict.
    @Test func readsTorchScriptModuleObjectsAsDicts() throws {
        let bytes = Self.pickle(Self.global("__torch__.m", "Conv") + [0x29, 0x81, 0x7D, 0x28]
            + Self.unicode("stride") + [0x4B, 0x02]
            + Self.unicode("padding") + Self.global("torch.jit._pickle", "build_intlist") + [0x5D, 0x28, 0x4B, 0x00, 0x4B, 0x03, 0x65, 0x85, 0x52]
            + [0x75, 0x62])
        let v = try Self.load(bytes)
        guard case .module(let type, _) = v else { Issue.record("read as \(v.kind)"); return }
        #expect(type == "__torch__.m.Conv")
        let contents = try TorchCheckpoint.contents(of: v, layout: .zip, storages: [:], raw: UnsafeRawBufferPointer(start: nil, count: 0), name: "ts")
        #expect(contents.values.map { "\($0.name)=\($0.value)" } == ["stride=2", "padding.0=0", "padding.1=3"])
    }

    /// A TorchScript class is only ever instantiated empty; nothing else may be NEWOBJ'd, and
    /// neither it nor a non-identifier `__torch__` name may be called.
    @Test(arguments: [
        (global("collections", "OrderedDict") + [0x29, 0x81], "NEWOBJ of a collections.OrderedDict"),
        (global("__torch__.m", "Conv") + [0x4B, 0x01, 0x85, 0x81], "with arguments"),
        (global("__torch__.m", "Conv") + [0x29, 0x52], "REDUCE of the TorchScript class"),
        (global("__torch__.m;x", "Conv"), "refused"),
        (global("torch.jit._pickle", "restore_type_tag"), "refused"),
        (global("__torch__.m", "Conv") + [0x29, 0x81, 0x4B, 0x01, 0x62], "not a dict"),
    ] as [([UInt8], String)])
    func refusesTorchScriptMisuse(body: [UInt8], message: String) {
        do throws(Pickle.Failure) {
            _ = try Self.load(Self.pickle(body))
            Issue.record("read")
        } catch {
            #expect(error.reason.contains(message), "\(error.reason)")
        }
    }
}

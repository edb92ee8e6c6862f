import Datasets
import Formats
import Foundation
import Images
import Pipeline

// Coverage-guided fuzzing of the readers that take outside bytes (issue 14). Built with
// `-sanitize=fuzzer -DFUZZING` (Tools/fuzz/run.sh), libFuzzer drives
// `LLVMFuzzerTestOneInput`; built normally (as `swift build` does), the same binary replays
// files: `learngene-fuzz <target> FILE...`, which is how a crash a fuzzer found is rerun.
//
// Each target states the documented outcome and traps when it does not hold: a reader
// returns a value or throws its own error type, never crashes, and what it returns is sound.

/// The targets, by the name `LEARNGENE_FUZZ_TARGET` (or the replay's first argument) gives.
enum FuzzTarget: String, CaseIterable {
    case safetensors, torch, idx, manifestYAML = "manifest-yaml", manifestJSON = "manifest-json", png, jpeg

    func run(_ bytes: [UInt8]) {
        switch self {
        case .safetensors:
            do {
                let f = try SafeTensors.parse(bytes, name: "fuzz")
                // Sound: what parsed is a valid file, and a write and read gives it back.
                do { try SafeTensors.validate(f) } catch { fatalError("parsed but invalid: \(error)") }
                var metadata = f.metadata
                if metadata["format"] == nil { metadata["format"] = "pt" }  // serialize adds it, as the reference writer does
                guard let again = try? SafeTensors.parse(SafeTensors.serialize(f), name: "again"),
                      Set(again.tensors.keys) == Set(f.tensors.keys), again.metadata == metadata else {
                    fatalError("parsed file does not survive a write and read")
                }
                for (name, e) in f.tensors where again[name]?.bytes != e.bytes { fatalError("\(name) changed through a write") }
            } catch is SafeTensors.FormatError {
            } catch {
                fatalError("SafeTensors.parse threw \(type(of: error)), not FormatError: \(error)")
            }
        case .torch:
            do throws(DataFileError) {
                let c = try TorchCheckpoint.parse(bytes, name: "fuzz")
                // Sound: every tensor converted is a valid safetensors entry.
                var file = SafeTensors.File()
                for t in c.tensors { file.tensors[t.name] = t.entry }
                do { try SafeTensors.validate(file) } catch { fatalError("converted tensors are invalid: \(error)") }
            } catch {
                if error.reason.isEmpty { fatalError("an error without a reason") }
            }
        case .idx:
            do {
                let raw = Gzip.isGzip(bytes) ? try Gzip.decompress(bytes, name: "fuzz", maxOutputBytes: 64 << 20) : bytes
                let a = try IDX.parse(raw, name: "fuzz")
                if a.data.count != a.count * a.type.size { fatalError("IDX dimensions \(a.dimensions) with \(a.data.count) bytes") }
            } catch is DataFileError {
            } catch {
                fatalError("IDX threw \(type(of: error)), not DataFileError: \(error)")
            }
        case .manifestYAML, .manifestJSON:
            do throws(ManifestError) {
                let m = try Manifest.parse(bytes, fileName: self == .manifestYAML ? "fuzz.yaml" : "fuzz.json")
                // Sound: a manifest that parsed has the bounds validation promises.
                if m.training.steps < 0 || m.training.batchSize < 1 { fatalError("accepted steps \(m.training.steps), batch \(m.training.batchSize)") }
            } catch {
                if error.problems.isEmpty { fatalError("a manifest error without problems") }
            }
        case .png, .jpeg:
            do throws(ImageError) {
                let limits = ImageLimits(maxPixels: 4_000_000)
                let img = try ImageCodec.decode(bytes: bytes, name: "fuzz", limits: limits)
                if img.width * img.height > limits.maxPixels || img.pixels.count != img.width * img.height * img.channels {
                    fatalError("decoded \(img.width)×\(img.height)×\(img.channels) with \(img.pixels.count) bytes")
                }
            } catch {
                _ = error.description
            }
        }
    }
}

nonisolated(unsafe) var selected: FuzzTarget?

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    if selected == nil {
        let name = ProcessInfo.processInfo.environment["LEARNGENE_FUZZ_TARGET"] ?? ""
        guard let t = FuzzTarget(rawValue: name) else {
            fatalError("set LEARNGENE_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        selected = t
    }
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    selected!.run(bytes)
    return 0
}

#if FUZZING
/// libFuzzer's entry (in libclang_rt.fuzzer), called with the program's arguments. SwiftPM
/// links executables with `main` renamed to `<module>_main`, so libFuzzer's own `main` is
/// not used: this one hands over to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("learngene_fuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var c = argc, v = argv
    return LLVMFuzzerRunDriver(&c, &v) { data, size in fuzzOne(data, size) }
}
#else
/// Replays files through a target (no libFuzzer): `learngene-fuzz <target> FILE...`.
@main struct Replay {
    static func main() {
        let args = CommandLine.arguments.dropFirst()
        guard let name = args.first, let target = FuzzTarget(rawValue: name) else {
            FileHandle.standardError.write(Data("usage: learngene-fuzz <\(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|"))> FILE...\n".utf8))
            exit(2)
        }
        var n = 0
        for path in args.dropFirst() {
            let files = FileManager.default.isDirectory(path)
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 } : [path]
            for f in files {
                guard let d = FileManager.default.contents(atPath: f) else { continue }
                target.run(Array(d))
                n += 1
            }
        }
        print("\(name): \(n) inputs replayed, no crash")
    }
}

extension FileManager {
    func isDirectory(_ p: String) -> Bool {
        var d: ObjCBool = false
        return fileExists(atPath: p, isDirectory: &d) && d.boolValue
    }
}
#endif

import Foundation
import Testing
@testable import Formats

/// Runs `python3` with arguments; nil when python3 cannot be started at all.
private func runPython(_ arguments: [String]) -> (status: Int32, output: String)? {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3"] + arguments
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    do { try p.run() } catch { return nil }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Why the Python check cannot run here, or nil when it can. CI machines have no
/// `safetensors` Python package; there the committed fixture is the interop check.
private let pythonUnavailableReason: String? = {
    guard let r = runPython(["-c", "import safetensors, numpy"]), r.status != 127 else { return "python3 is not installed" }
    return r.status == 0 ? nil : "python3 lacks the safetensors or numpy package: \(r.output.split(separator: "\n").last ?? "")"
}()

/// Loads the Swift-written file with the reference implementation and checks every value.
private let checkScript = #"""
import sys, json, numpy as np
from safetensors import deserialize, safe_open, serialize, TensorSpec
path = sys.argv[1]
raw = open(path, "rb").read()
got = {k: v for k, v in deserialize(raw)}   # the Rust validator: offsets, holes, sizes, header
def arr(name, dt):
    return np.frombuffer(bytes(got[name]["data"]), dtype=dt).reshape(got[name]["shape"])
assert arr("blocks.0.attn.qkv.weight", "<f4").tolist() == (np.arange(12, dtype="<f4") * 0.5 - 3).reshape(3, 4).tolist()
assert arr("half", "<f2").tolist() == [0, 1, -2, 0.5, 65504, 2.0**-14, 2.0**-24, float("inf")]
bf = (arr("brain", "<u2").astype("<u4") << 16).view("<f4")
assert bf.tolist() == [[1, -1.5, 3.140625], [256, -0.0078125, 0]], bf
assert arr("sched", "<f8").tolist() == [[0.1, -2.5], [1e-300, 12345.678901234567]]
assert arr("t", "<i8").tolist() == [-3, 0, 7, 2**40]
assert got["scalar"]["shape"] == [] and arr("scalar", "<f4").tolist() == 42.5
assert got["empty"]["shape"] == [0, 3] and len(bytes(got["empty"]["data"])) == 0
assert got["mask"]["dtype"] == "BOOL" and arr("mask", "bool").tolist() == [True, False, True]
with safe_open(path, framework="numpy") as f:
    meta = f.metadata()
    assert f.get_tensor("t").tolist() == [-3, 0, 7, 2**40]
assert meta == {"format": "pt", "ours.step": "2000",
                "note": "quote \" backslash \\ newline \n tab \t ctl \u0001 na\u00efve \u2713"}, meta
# The reference writer, given the same tensors, produces the same header entries and data buffer.
keep = {k: np.frombuffer(bytes(v["data"]), dtype="u1").copy() for k, v in got.items()}
names = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64", "I64": "int64", "BOOL": "bool"}
specs = {k: TensorSpec(dtype=names[v["dtype"]], shape=v["shape"], data_ptr=keep[k].ctypes.data, data_len=keep[k].nbytes)
         for k, v in got.items()}
ref = bytes(serialize(specs, metadata=meta))
def split(b):
    n = int.from_bytes(b[:8], "little")
    assert n % 8 == 0, n
    return json.loads(b[8:8 + n]), b[8 + n:]
(h1, d1), (h2, d2) = split(raw), split(ref)
assert h1 == h2, (h1, h2)
assert d1 == d2
print("ok")
"""#

@Suite struct SafeTensorsPythonInterop {
    @Test(.enabled(if: pythonUnavailableReason == nil, Comment(rawValue: pythonUnavailableReason ?? "")))
    func pythonSafetensorsLoadsWhatSwiftWrites() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-py-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("swift-written.safetensors").path

        var f = SafeTensors.File(metadata: ["note": "quote \" backslash \\ newline \n tab \t ctl \u{1} naïve ✓", "ours.step": "2000"])
        f["blocks.0.attn.qkv.weight"] = .f32((0..<12).map { Float($0) * 0.5 - 3 }, shape: [3, 4])
        f["half"] = .f16([0, 1, -2, 0.5, 65504, 0x1p-14, 0x1p-24, .infinity], shape: [8])
        f["brain"] = .bf16([1, -1.5, 3.140625, 256, -0.0078125, 0], shape: [2, 3])
        f["sched"] = .f64([0.1, -2.5, 1e-300, 12345.678901234567], shape: [2, 2])
        f["t"] = .i64([-3, 0, 7, 1 << 40], shape: [4])
        f["scalar"] = .f32([42.5], shape: [])
        f["empty"] = .f32([], shape: [0, 3])
        f["mask"] = SafeTensors.Entry(dtype: .bool, shape: [3], bytes: [1, 0, 1])
        try SafeTensors.write(f, to: path)

        let r = try #require(runPython(["-c", checkScript, path]))
        #expect(r.status == 0 && r.output.contains("ok"), "Python safetensors rejected or misread \(path):\n\(r.output)")
    }
}

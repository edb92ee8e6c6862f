import ArgumentParser
import Dispatch
import Foundation
import Images

/// `learngene-bench decode`: milliseconds per decode of a 256×256 RGB PNG and a q90 JPEG
/// with our decoders (libpng classic API, libjpeg through the C shim), and with Pillow on
/// the same files in the same run when python3 has PIL (`Image.open(f).convert('RGB').load()`,
/// the loader torchvision and ADM use).
///
/// The images are a noisy gradient (the content of swift-ground.md §7), written with our
/// own encoders unless `--png` / `--jpeg` name files to use instead. Both sides read the
/// file from disk on every call, on one thread.
///
/// Output: one JSON object per measurement on stdout, then one `decode-ratio` object per
/// file: Pillow's median over ours (above 1: ours is faster).
struct DecodeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "PNG and JPEG decode ms per image: ours vs Pillow, same files, same run.")

    @Option(help: "A PNG to decode instead of the generated 256×256 one.")
    var png: String?

    @Option(help: "A JPEG to decode instead of the generated 256×256 q90 one.")
    var jpeg: String?

    @Option(help: "Seconds of timed decodes per measurement (at least 5 decodes).")
    var seconds: Double = 1.0

    @Option(help: "The python interpreter to run Pillow with.")
    var python = "python3"

    @Flag(help: "Skip the Pillow measurement.")
    var noPillow = false

    struct Measurement: Codable {
        var bench = "decode"
        var file: String
        var path: String
        var bytes: Int
        var width: Int
        var height: Int
        var decoder: String
        var calls: Int
        var best_ms: Double
        var median_ms: Double
    }

    struct Ratio: Codable {
        var bench = "decode-ratio"
        var file: String
        var ours_median_ms: Double
        var pillow_median_ms: Double
        var pillow_over_ours: Double
    }

    struct Skipped: Codable {
        var bench = "decode"
        var decoder = "pillow"
        var skipped: String
    }

    func run() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("learngene-decode-bench-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        let source = Self.noisyGradient(width: 256, height: 256)
        let pngPath = try png ?? { let p = dir + "/bench.png"; try ImageCodec.writePNG(source, to: p); return p }()
        let jpegPath = try jpeg ?? {
            let p = dir + "/bench.jpg"
            try ImageCodec.writeFile(ImageCodec.encodeJPEG(source, quality: 90), to: p)
            return p
        }()
        let files = [("png", pngPath, "learngene-libpng"), ("jpeg", jpegPath, "learngene-libjpeg")]

        var ours: [String: Double] = [:]
        for (kind, path, decoder) in files {
            let image = try ImageCodec.decode(contentsOf: path)
            let times = try Self.time(seconds: seconds) { _ = try ImageCodec.decode(contentsOf: path) }
            let m = Measurement(file: kind, path: path, bytes: Self.size(path), width: image.width, height: image.height,
                                decoder: decoder, calls: times.count, best_ms: times.min()!, median_ms: Self.median(times))
            ours[kind] = m.median_ms
            try Self.emit(m)
        }
        if noPillow { return }
        let pillow: [Measurement]
        do {
            pillow = try runPillow(files.map { ($0.0, $0.1) })
        } catch {
            try Self.emit(Skipped(skipped: "\(error)"))
            return
        }
        for m in pillow {
            try Self.emit(m)
            if let o = ours[m.file] {
                try Self.emit(Ratio(file: m.file, ours_median_ms: o, pillow_median_ms: m.median_ms,
                                    pillow_over_ours: m.median_ms / o))
            }
        }
    }

    /// A smooth RGB gradient plus uniform noise of ±24 levels (deterministic LCG), so that
    /// PNG has something to compress and JPEG something to quantize.
    static func noisyGradient(width: Int, height: Int) -> Image {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        for y in 0..<height {
            for x in 0..<width {
                let base = [x * 255 / max(width - 1, 1), y * 255 / max(height - 1, 1), (x + y) * 255 / max(width + height - 2, 1)]
                for c in 0..<3 {
                    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    let noise = Int(state >> 58) - 32   // -32...31
                    pixels[(y * width + x) * 3 + c] = UInt8(min(255, max(0, base[c] + noise * 3 / 4)))
                }
            }
        }
        return Image(width: width, height: height, channels: 3, pixels: pixels)
    }

    /// Milliseconds per call: 3 warm-up calls, then calls until `seconds` have passed (≥ 5).
    static func time(seconds: Double, _ body: () throws -> Void) throws -> [Double] {
        for _ in 0..<3 { try body() }
        var times: [Double] = []
        let start = DispatchTime.now().uptimeNanoseconds
        while times.count < 5 || Double(DispatchTime.now().uptimeNanoseconds - start) < seconds * 1e9 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        return times
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    static func size(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? Int) ?? 0
    }

    static func emit<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
        fflush(nil)
    }

    struct PillowUnavailable: Error, CustomStringConvertible {
        var description: String
    }

    /// Times Pillow in a python3 child with the same protocol (warm-up, ≥ 5 calls, `seconds`).
    func runPillow(_ files: [(String, String)]) throws -> [Measurement] {
        let script = """
            import json, os, sys, time
            try:
                from PIL import Image
                import PIL
            except ImportError as e:
                print(json.dumps({"error": "PIL not importable: %s" % e})); sys.exit(0)
            seconds = float(sys.argv[1])
            for kind, path in zip(sys.argv[2::2], sys.argv[3::2]):
                def once():
                    with Image.open(path) as im:
                        return im.convert('RGB').load(), im.size
                for _ in range(3): once()
                times = []
                start = time.perf_counter()
                while len(times) < 5 or time.perf_counter() - start < seconds:
                    t0 = time.perf_counter(); _, size = once(); times.append((time.perf_counter() - t0) * 1e3)
                times.sort()
                n = len(times)
                median = times[n // 2] if n % 2 else (times[n // 2 - 1] + times[n // 2]) / 2
                print(json.dumps(dict(bench="decode", file=kind, path=path, bytes=os.path.getsize(path),
                    width=size[0], height=size[1], decoder="pillow-" + PIL.__version__, calls=n,
                    best_ms=times[0], median_ms=median)))
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, "-c", script, String(seconds)] + files.flatMap { [$0.0, $0.1] }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { throw PillowUnavailable(description: "cannot run \(python): \(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        if process.terminationStatus != 0 { throw PillowUnavailable(description: "\(python) exited with \(process.terminationStatus)") }
        var out: [Measurement] = []
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let bytes = Data(line.utf8)
            if let m = try? JSONDecoder().decode(Measurement.self, from: bytes) {
                out.append(m)
            } else if let e = try? JSONDecoder().decode([String: String].self, from: bytes), let why = e["error"] {
                throw PillowUnavailable(description: why)
            }
        }
        return out
    }
}

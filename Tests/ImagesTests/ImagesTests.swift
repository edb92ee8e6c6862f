import Foundation
import Testing
@testable import Images

/// The fixtures made by Tools/make_image_fixtures.py, described by their fixtures.json.
struct Fixture: Decodable, Sendable {
    var file: String
    var expect: String
    var width: Int?
    var height: Int?
    var channels: Int?
    var golden: String?
    var tolerance: Int?
    var note: String
}

enum Fixtures {
    static let folder: String = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.path

    static let all: [String: Fixture] = {
        struct Manifest: Decodable { var fixtures: [Fixture] }
        let data = FileManager.default.contents(atPath: folder + "/fixtures.json")!
        let manifest = try! JSONDecoder().decode(Manifest.self, from: data)
        return Dictionary(uniqueKeysWithValues: manifest.fixtures.map { ($0.file, $0) })
    }()

    static func path(_ name: String) -> String { folder + "/" + name }

    static func bytes(_ name: String) -> [UInt8] {
        [UInt8](FileManager.default.contents(atPath: path(name))!)
    }

    /// Every variant the decoders must read, with its golden.
    static let good = [
        "png_gray1.png", "png_gray2.png", "png_gray4.png", "png_gray8.png", "png_gray16.png", "png_gray8_trns.png",
        "png_graya8.png", "png_graya16.png", "png_rgb8.png", "png_rgb16.png", "png_rgb8_trns.png",
        "png_rgba8.png", "png_rgba16.png", "png_palette8.png", "png_palette4_trns.png",
        "png_rgb8_interlaced.png", "png_rgba16_interlaced.png", "png_palette8_interlaced.png",
        "png_rgb8_gamma1.png", "png_rgb16_gamma1.png", "png_pillow_rgb.png",
        "jpeg_baseline.jpg", "jpeg_baseline444.jpg", "jpeg_progressive.jpg", "jpeg_gray.jpg", "jpeg_gray_progressive.jpg",
    ]

    /// Every file the decoders must refuse, with the reason kind in fixtures.json.
    static let broken = [
        "empty.png", "junk.png", "text.jpg", "png_signature_only.png", "png_truncated.png", "png_no_iend.png",
        "png_bad_crc.png", "png_bad_zlib.png", "png_bomb.png",
        "jpeg_truncated.jpg", "jpeg_progressive_truncated.jpg", "jpeg_no_eoi.jpg", "jpeg_header_only.jpg",
        "jpeg_bad_marker.jpg", "jpeg_bomb.jpg", "jpeg_cmyk.jpg", "image.gif",
    ]
}

/// The reason's case name, as fixtures.json spells it.
func kind(_ reason: ImageError.Reason) -> String {
    switch reason {
    case .notAnImage: "notAnImage"
    case .corrupt: "corrupt"
    case .truncated: "truncated"
    case .tooLarge: "tooLarge"
    case .fileTooLarge: "fileTooLarge"
    case .unsupported: "unsupported"
    case .io: "io"
    }
}

/// Decodes and returns the typed error (or nil when decoding succeeded).
func decodeError(_ path: String, limits: ImageLimits = .init()) -> ImageError? {
    do {
        _ = try ImageCodec.decode(contentsOf: path, limits: limits)
        return nil
    } catch {
        return error
    }
}

@Suite struct DecodeGoldenTests {
    @Test func everyFixtureIsListed() {
        #expect(Set(Fixtures.good + Fixtures.broken) == Set(Fixtures.all.keys))
    }

    @Test(arguments: Fixtures.good)
    func decodesLikeTheGolden(_ name: String) throws {
        let f = try #require(Fixtures.all[name])
        let image = try ImageCodec.decode(contentsOf: Fixtures.path(name))
        #expect(image.width == f.width && image.height == f.height && image.channels == f.channels, "\(f.note)")
        let golden = Fixtures.bytes(try #require(f.golden))
        try #require(golden.count == image.pixels.count)
        var worst = 0, differing = 0
        for (a, b) in zip(image.pixels, golden) where a != b {
            worst = max(worst, abs(Int(a) - Int(b)))
            differing += 1
        }
        #expect(worst <= (f.tolerance ?? 0), "\(name): \(differing) samples differ, worst by \(worst) (\(f.note))")
    }

    /// The same bytes through the in-memory entry point give the same pixels.
    @Test func bytesAndFileEntryPointsAgree() throws {
        for name in ["png_rgba16_interlaced.png", "jpeg_progressive.jpg"] {
            let a = try ImageCodec.decode(contentsOf: Fixtures.path(name))
            let b = try ImageCodec.decode(bytes: Fixtures.bytes(name), name: name)
            #expect(a == b)
        }
    }

    /// A PNG saved under a .jpg name still decodes: the signature decides, not the name.
    @Test func formatComesFromTheBytesNotTheName() throws {
        let image = try ImageCodec.decode(bytes: Fixtures.bytes("png_rgb8.png"), name: "photo.jpg")
        #expect(image.channels == 3)
        #expect(try ImageCodec.sniff(Fixtures.bytes("jpeg_gray.jpg"), name: "x") == .jpeg)
    }
}

@Suite struct BrokenFileTests {
    @Test(arguments: Fixtures.broken)
    func refusesWithATypedErrorNamingTheFile(_ name: String) throws {
        let f = try #require(Fixtures.all[name])
        let path = Fixtures.path(name)
        let error = try #require(decodeError(path), "\(name) decoded but should fail: \(f.note)")
        #expect(kind(error.reason) == f.expect, "\(name): \(error) (\(f.note))")
        #expect(error.file == path)
        #expect(error.description.hasPrefix(path + ": "))
        #expect(error.description.contains("Hint: "))
        if case .tooLarge(let w, let h, let limit) = error.reason {
            #expect(w == f.width && h == f.height && limit == ImageLimits().maxPixels)
        }
    }

    /// libjpeg only warns about a truncated file and pads it with gray: that must surface.
    @Test func truncatedJPEGSaysSo() throws {
        let error = try #require(decodeError(Fixtures.path("jpeg_truncated.jpg")))
        guard case .truncated(let text) = error.reason else { Issue.record("got \(error)"); return }
        #expect(text.contains("Premature end of JPEG file"))
    }

    @Test func cmykIsRefusedWithAClearMessage() throws {
        let error = try #require(decodeError(Fixtures.path("jpeg_cmyk.jpg")))
        #expect(error.description.contains("CMYK"))
        #expect(error.description.contains("convert it to RGB"))
    }

    /// The pixel limit is configurable and checked on the declared size.
    @Test func pixelLimitIsConfigurable() throws {
        let limits = ImageLimits(maxPixels: 37 * 23 - 1)
        let error = try #require(decodeError(Fixtures.path("png_rgb8.png"), limits: limits))
        #expect(error.reason == .tooLarge(width: 37, height: 23, limit: 37 * 23 - 1))
        let jpegError = try #require(decodeError(Fixtures.path("jpeg_baseline.jpg"), limits: ImageLimits(maxPixels: 100)))
        #expect(jpegError.reason == .tooLarge(width: 45, height: 29, limit: 100))
        #expect(decodeError(Fixtures.path("png_rgb8.png"), limits: ImageLimits(maxPixels: 37 * 23)) == nil)
    }

    /// A progressive JPEG with more scans than allowed is refused (a CPU bomb guard).
    @Test func jpegScanLimit() throws {
        let path = Fixtures.path("jpeg_progressive.jpg")
        let error = try #require(decodeError(path, limits: ImageLimits(maxJPEGScans: 2)))
        #expect(kind(error.reason) == "unsupported" && error.description.contains("more than 2 scans"))
        #expect(decodeError(path, limits: ImageLimits(maxJPEGScans: 100)) == nil)
    }

    @Test func fileSizeLimitIsCheckedBeforeReading() throws {
        let path = Fixtures.path("png_rgb8.png")
        let size = Fixtures.bytes("png_rgb8.png").count
        let error = try #require(decodeError(path, limits: ImageLimits(maxFileBytes: 100)))
        #expect(error.reason == .fileTooLarge(bytes: size, limit: 100))
    }

    @Test func missingFileAndDirectoryAreIOErrors() throws {
        let missing = try #require(decodeError(Fixtures.folder + "/no-such-file.png"))
        #expect(kind(missing.reason) == "io")
        let folder = try #require(decodeError(Fixtures.folder))
        #expect(folder.reason == .io("not a regular file"))
    }

    @Test func errorsNameTheGivenName() throws {
        do {
            _ = try ImageCodec.decode(bytes: [1, 2, 3], name: "upload #7")
            Issue.record("decoded junk")
        } catch {
            #expect(error.file == "upload #7")
            #expect(error.reason == .notAnImage)
        }
    }

    /// A file cut at any point fails with a typed error: never a crash, never pixels.
    @Test(arguments: ["png_rgb8.png", "png_rgba16_interlaced.png", "jpeg_baseline.jpg", "jpeg_progressive.jpg"])
    func everyPrefixIsRefused(_ name: String) {
        let bytes = Fixtures.bytes(name)
        var accepted: [Int] = []
        for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 150)) {
            do {
                _ = try ImageCodec.decode(bytes: Array(bytes[..<cut]), name: name)
                accepted.append(cut)
            } catch {
                let k = kind(error.reason)
                #expect(k == "truncated" || k == "corrupt", "cut at \(cut): \(error)")
            }
        }
        #expect(accepted.isEmpty, "\(name) decoded when cut at \(accepted)")
    }

    /// Flipped bytes either decode (the damage hit something harmless) or fail with a typed error.
    @Test(arguments: ["png_palette4_trns.png", "jpeg_baseline.jpg", "jpeg_progressive.jpg"])
    func flippedBytesNeverCrash(_ name: String) {
        let bytes = Fixtures.bytes(name)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33)
        }
        for _ in 0..<200 {
            var damaged = bytes
            for _ in 0..<3 { damaged[next() % damaged.count] = UInt8(truncatingIfNeeded: next()) }
            do {
                let image = try ImageCodec.decode(bytes: damaged, name: name, limits: ImageLimits(maxPixels: 1 << 20))
                #expect(image.pixels.count == image.width * image.height * image.channels)
            } catch {
                #expect(error.file == name)
            }
        }
    }
}

@Suite struct EncodeTests {
    static func pattern(_ w: Int, _ h: Int, _ c: Int) -> Image {
        var pixels = [UInt8](repeating: 0, count: w * h * c)
        for i in pixels.indices { pixels[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 7 ^ i) }
        return Image(width: w, height: h, channels: c, pixels: pixels)
    }

    @Test(arguments: 1...4)
    func pngRoundTripsExactly(_ channels: Int) throws {
        let image = Self.pattern(19, 7, channels)
        let bytes = try ImageCodec.encodePNG(image)
        #expect(try ImageCodec.decode(bytes: bytes, name: "roundtrip") == image)
        #expect(try ImageCodec.decode(bytes: try ImageCodec.encodePNG(image, compressionLevel: 0), name: "level0") == image)
    }

    @Test func writePNGWritesAtomicallyAndReadsBack() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lg-images-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("out.png").path
        let image = Self.pattern(33, 17, 3)
        try ImageCodec.writePNG(image, to: path)
        #expect(try ImageCodec.decode(contentsOf: path) == image)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.png"])
        do {
            try ImageCodec.writePNG(image, to: dir.path + "/missing-folder/out.png")
            Issue.record("wrote into a missing folder")
        } catch {
            #expect(kind(error.reason) == "io")
        }
    }

    @Test func jpegRoundTripsClosely() throws {
        // A smooth image: JPEG at q95 stays within a few levels of it.
        var pixels = [UInt8]()
        for y in 0..<24 { for x in 0..<40 { pixels += [UInt8(x * 6), UInt8(y * 10), UInt8(128)] } }
        let image = Image(width: 40, height: 24, channels: 3, pixels: pixels)
        for progressive in [false, true] {
            let decoded = try ImageCodec.decode(bytes: ImageCodec.encodeJPEG(image, quality: 95, progressive: progressive), name: "q95")
            #expect(decoded.width == 40 && decoded.height == 24 && decoded.channels == 3)
            let worst = zip(decoded.pixels, pixels).map { abs(Int($0) - Int($1)) }.max()!
            #expect(worst <= 8)
        }
        let gray = Image(width: 40, height: 24, channels: 1, pixels: stride(from: 0, to: 960, by: 1).map { UInt8($0 % 40 * 6) })
        #expect(try ImageCodec.decode(bytes: ImageCodec.encodeJPEG(gray), name: "gray").channels == 1)
    }

    @Test func encodersRefuseWhatTheyCannotWrite() {
        #expect(throws: ImageError.self) { try ImageCodec.encodeJPEG(Self.pattern(4, 4, 4)) }
        #expect(throws: ImageError.self) { try ImageCodec.encodePNG(Image(width: 0, height: 0, channels: 3, pixels: [])) }
    }
}

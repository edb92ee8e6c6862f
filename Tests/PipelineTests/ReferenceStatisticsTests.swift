import Foundation
import Formats
import Metrics
import Testing
@testable import Pipeline

/// Reference statistics as `.npz` (`mu`, `sigma`: clean-fid's and pytorch-fid's layout),
/// written and read back, stored and deflated, and refused when they cannot be the
/// statistics asked for.
@Suite struct ReferenceStatisticsTests {
    static func temp(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("refstats-\(getpid())-\(UInt32.random(in: 0...UInt32.max))-\(name)").path
    }

    static let stats = FrechetStatistics(count: 7, dimension: 3, mean: [0.5, -1.25, 3e-12],
                                         covariance: [2, 0.1, 0, 0.1, 1, -0.3, 0, -0.3, 4])

    @Test func roundTripsAsNumpyWritesIt() throws {
        let path = Self.temp("a.npz")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(Self.stats.npzArchive).write(to: URL(fileURLWithPath: path))
        let back = try FrechetStatistics(npzAt: path, expectedDimension: 3)
        #expect(back == Self.stats)
        let arrays = try NumpyArchive.read(contentsOf: path)
        #expect(arrays["mu"]?.descr == "<f8" && arrays["sigma"]?.shape == [3, 3])
    }

    /// A zip with one deflated entry, as `numpy.savez_compressed` writes (raw deflate: the
    /// gzip member's body without its 10-byte header and 8-byte trailer).
    static func deflatedArchive(_ entries: [(String, [UInt8])]) -> [UInt8] {
        var out: [UInt8] = [], central: [UInt8] = []
        func u16(_ v: Int, _ b: inout [UInt8]) { b += [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
        func u32(_ v: Int, _ b: inout [UInt8]) { for i in 0..<4 { b.append(UInt8((v >> (8 * i)) & 0xFF)) } }
        for (name, data) in entries {
            let gz = Gzip.compress(data)
            let raw = Array(gz[10..<(gz.count - 8)])
            let crc = Int(NumpyArchive.crc32(data)), n = Array(name.utf8), offset = out.count
            u32(0x0403_4B50, &out); u16(20, &out); u16(0, &out); u16(8, &out); u16(0, &out); u16(0x21, &out)
            u32(crc, &out); u32(raw.count, &out); u32(data.count, &out); u16(n.count, &out); u16(0, &out)
            out += n + raw
            u32(0x0201_4B50, &central); u16(20, &central); u16(20, &central); u16(0, &central); u16(8, &central)
            u16(0, &central); u16(0x21, &central); u32(crc, &central); u32(raw.count, &central); u32(data.count, &central)
            u16(n.count, &central); u16(0, &central); u16(0, &central); u16(0, &central); u16(0, &central); u32(0, &central); u32(offset, &central)
            central += n
        }
        let at = out.count
        out += central
        u32(0x0605_4B50, &out); u16(0, &out); u16(0, &out); u16(entries.count, &out); u16(entries.count, &out)
        u32(central.count, &out); u32(at, &out); u16(0, &out)
        return out
    }

    static func npy(_ values: [Double], shape: [Int], fortran: Bool = false) -> [UInt8] {
        var bytes = NumpyArchive.npy(shape: shape, bytes: values.withUnsafeBufferPointer { [UInt8](UnsafeRawBufferPointer($0)) }, descr: "<f8")
        if fortran {  // same length, so the header stays padded
            let from = Array("'fortran_order': False".utf8), to = Array("'fortran_order': True ".utf8)
            if let at = (0...(bytes.count - from.count)).first(where: { bytes[$0..<($0 + from.count)].elementsEqual(from) }) {
                bytes.replaceSubrange(at..<(at + from.count), with: to)
            }
        }
        return bytes
    }

    @Test func readsDeflatedArchives() throws {
        let bytes = Self.deflatedArchive([("mu.npy", Self.npy(Self.stats.mean, shape: [3])),
                                          ("sigma.npy", Self.npy(Self.stats.covariance, shape: [3, 3]))])
        let arrays = try NumpyArchive.parse(bytes, name: "compressed.npz")
        #expect(arrays["mu"]?.values == Self.stats.mean)
        #expect(arrays["sigma"]?.values == Self.stats.covariance)
    }

    @Test func refusesStatisticsThatCannotBeThoseAskedFor() throws {
        let cases: [([(String, [UInt8])], Int, String)] = [
            ([("mu.npy", Self.npy([1, 2], shape: [2]))], 2, "no `mu` and `sigma`"),
            ([("mu.npy", Self.npy([1, 2], shape: [2])), ("sigma.npy", Self.npy([1, 0, 0, 1], shape: [2, 2]))], 2048, "2-d statistics"),
            ([("mu.npy", Self.npy([1, 2], shape: [2])), ("sigma.npy", Self.npy([1, 0, 0], shape: [3]))], 2, "must be (d,) and (d, d)"),
            ([("mu.npy", Self.npy([1, .nan], shape: [2])), ("sigma.npy", Self.npy([1, 0, 0, 1], shape: [2, 2]))], 2, "NaN"),
            ([("mu.npy", Self.npy([1, 2], shape: [2])), ("sigma.npy", Self.npy([1, 0, 0, 1], shape: [2, 2], fortran: true))], 2, "Fortran"),
        ]
        for (entries, dimension, message) in cases {
            let path = Self.temp("bad.npz")
            defer { try? FileManager.default.removeItem(atPath: path) }
            try Data(Self.deflatedArchive(entries)).write(to: URL(fileURLWithPath: path))
            do {
                _ = try FrechetStatistics(npzAt: path, expectedDimension: dimension)
                Issue.record("accepted: \(message)")
            } catch {
                #expect("\(error)".contains(message), "\(error)")
                #expect("\(error)".contains(path), "names the file: \(error)")
            }
        }
        // Damaged data: every cut is an error, never a crash.
        let good = Self.deflatedArchive([("mu.npy", Self.npy([1, 2], shape: [2])), ("sigma.npy", Self.npy([1, 0, 0, 1], shape: [2, 2]))])
        for cut in stride(from: 0, to: good.count, by: 7) {
            #expect(throws: DataFileError.self) { try NumpyArchive.parse(Array(good[..<cut]), name: "cut") }
        }
    }

    @Test func manifestTakesAPathUnderTheRoot() throws {
        let m = try manifest("stage: pretrain\ninputs: {dataset: x}\nevaluation: {metrics: [fid_inception_v3], reference_statistics: Inbox/stats/train.npz}\n")
        #expect(m.evaluation.referenceStatistics == "Inbox/stats/train.npz")
        #expect(m.json.compact.contains("\"reference_statistics\":\"Inbox/stats/train.npz\""))
        let plain = try manifest("stage: pretrain\ninputs: {dataset: x}\n")
        #expect(plain.evaluation.referenceStatistics == nil && !plain.json.compact.contains("reference_statistics"))
    }
}

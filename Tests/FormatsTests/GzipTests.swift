import Foundation
import Testing
@testable import Formats

@Suite struct GzipTests {
    /// `gzip.compress(b"hello, idx\n", mtime=0)` from Python: a gzip stream we did not write.
    let pythonGzip: [UInt8] = [31, 139, 8, 0, 0, 0, 0, 0, 2, 3, 203, 72, 205, 201, 201, 215, 81, 200, 76, 169,
                               224, 2, 0, 49, 217, 223, 73, 11, 0, 0, 0]

    @Test func decompressesPythonsGzip() throws {
        #expect(try Gzip.decompress(pythonGzip, name: "py.gz") == Array("hello, idx\n".utf8))
    }

    @Test func roundTripsAnyBytes() throws {
        var state: UInt64 = 3
        let random = (0..<200_000).map { _ in UInt8(truncatingIfNeeded: lcg(&state) >> 56) }
        let repetitive = [UInt8](repeating: 7, count: 300_000)  // compresses to far less than one output chunk
        for input in [[], [42], random, repetitive] {
            let z = Gzip.compress(input)
            #expect(Gzip.isGzip(z))
            #expect(try Gzip.decompress(z, name: "rt.gz") == input)
        }
    }

    @Test func concatenatedMembersAndZeroPaddingReadLikeGzip() throws {
        let a = Gzip.compress(Array("first ".utf8)), b = Gzip.compress(Array("second".utf8))
        #expect(try Gzip.decompress(a + b, name: "cat.gz") == Array("first second".utf8))
        #expect(try Gzip.decompress(a + [0, 0, 0, 0], name: "pad.gz") == Array("first ".utf8))
    }

    @Test func truncatedStreamsAreErrorsAtEveryLength() {
        let z = Gzip.compress((0..<5000).map { UInt8($0 % 251) })
        for n in 2..<z.count {
            #expect {
                try Gzip.decompress(Array(z[0..<n]), name: "cut.gz")
            } throws: { e in
                let s = "\(e)"
                return s.contains("cut.gz") && (s.contains("truncated") || s.contains("corrupt"))
            }
        }
        #expect { try Gzip.decompress(Array(z[0..<(z.count / 2)]), name: "half.gz") } throws: {
            "\($0)".hasPrefix("half.gz: compressed byte ") && "\($0)".contains("truncated")
        }
    }

    @Test func corruptionAndJunkAreErrors() {
        var z = Gzip.compress(Array("some data to checksum".utf8))
        z[z.count - 6] ^= 0xFF  // inside the CRC32 trailer
        #expect { try Gzip.decompress(z, name: "crc.gz") } throws: { "\($0)".contains("crc.gz") && "\($0)".contains("corrupt gzip data") }
        #expect { try Gzip.decompress(Array("plain text".utf8), name: "plain.txt") } throws: { "\($0)".contains("not gzip data: starts with 70 6c") }
        #expect { try Gzip.decompress([], name: "empty.gz") } throws: { "\($0)".contains("empty file") }
        #expect { try Gzip.decompress(pythonGzip + Array("junk".utf8), name: "junk.gz") } throws: {
            "\($0)".contains("junk.gz: compressed byte 31: 4 bytes of data that is not gzip")
        }
    }

    @Test func outputCapStopsDecompressionBombs() {
        let bomb = Gzip.compress([UInt8](repeating: 0, count: 1 << 20))
        #expect { try Gzip.decompress(bomb, name: "bomb.gz", maxOutputBytes: 100_000) } throws: {
            "\($0)".contains("more than 100000 bytes")
        }
    }

    @Test func contentsOfFileGunzipsOnlyWhenCompressed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let plain = dir.appendingPathComponent("a.txt"), packed = dir.appendingPathComponent("a.txt.gz")
        try Data("abc".utf8).write(to: plain)
        try Data(Gzip.compress(Array("abc".utf8))).write(to: packed)
        #expect(try Gzip.contents(ofFile: plain.path) == Array("abc".utf8))
        #expect(try Gzip.contents(ofFile: packed.path) == Array("abc".utf8))
        #expect { try Gzip.contents(ofFile: dir.appendingPathComponent("missing.gz").path) } throws: {
            "\($0)".contains("missing.gz: cannot be opened: No such file or directory")
        }
    }
}

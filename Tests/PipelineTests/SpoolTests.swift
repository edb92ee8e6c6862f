import Foundation
import Tensors
import Testing
@testable import Pipeline

@Suite struct SpoolTests {
    @Test func scanSortsInboxIntoCompleteIncompleteAndUnparsable() {
        let root = TempRoot("scan")
        root.job("ok", "stage: pretrain\ninputs: {dataset: d}\n")
        root.job("half", "stage: pretrain\ninputs: {data")
        root.write("Inbox/jobs/.hidden.yaml", "x")
        root.write("Inbox/jobs/backup.yaml~", "x")
        root.write("Inbox/jobs/readme.txt", "x")
        root.dataset("d")
        let spool = Spool(layout: root.layout)
        // Complete but unparsable files wait for the longer settle time.
        let s = spool.scan { item in if case .unparsable = item { false } else { true } }
        #expect(s.inbox.map(\.fileName).sorted() == ["half.yaml", "ok.yaml"])
        #expect(s.inbox.first { $0.fileName == "half.yaml" }?.parsed == nil)
        #expect(s.datasets == ["d"])
        // Once settled, it is a failure with the syntax problem.
        let later = spool.scan { _ in true }
        guard case let .failure(e)? = later.inbox.first(where: { $0.fileName == "half.yaml" })?.parsed else {
            Issue.record("half.yaml should fail to parse")
            return
        }
        #expect(e.problems.first?.isSyntax == true)
        // Recently modified files are not taken at all.
        #expect(spool.scan { _ in false }.inbox.allSatisfy { $0.parsed == nil })
    }

    @Test func claimMovesTheManifestAndALeftoverFolderWithoutOneIsDebris() throws {
        let root = TempRoot("claim")
        root.job("a", "stage: pretrain\ninputs: {dataset: d}\n")
        root.write(".state/claimed/a/checkpoints/junk", "x")  // debris of an earlier, finished job
        let spool = Spool(layout: root.layout)
        #expect(spool.scan().claimed.isEmpty)
        let lock = try #require(spool.lock("a"))
        let claim = try #require(try spool.claim(file: "a.yaml", job: "a"))
        #expect(claim.manifestPath == root.path + "/.state/claimed/a/a.yaml")
        #expect(!root.exists(".state/claimed/a/checkpoints/junk"))
        #expect(root.list("Inbox/jobs").isEmpty)
        #expect(spool.scan().claimed == ["a"])
        // The lock is exclusive, also within one process.
        #expect(spool.lock("a") == nil)
        lock.unlock()
        #expect(spool.lock("a") != nil)
        // A second claim of the same file finds it gone.
        #expect(try spool.claim(file: "a.yaml", job: "a") == nil)
    }

    @Test func removingAClaimDropsTheManifestFirst() throws {
        let root = TempRoot("remove")
        root.job("a", "stage: pretrain\ninputs: {dataset: d}\n")
        let spool = Spool(layout: root.layout)
        let claim = try #require(try spool.claim(file: "a.yaml", job: "a"))
        spool.removeClaim(claim)
        #expect(!root.exists(".state/claimed/a"))
        #expect(spool.scan().claimed.isEmpty)
    }

    @Test func sweepRemovesOnlyUnlockedTemporaries() throws {
        let root = TempRoot("sweep")
        root.write("Outbox/.tmp-a/x", "1")
        root.write("Outbox/.tmp-b/x", "1")
        root.write("Failed/.tmp-c-0123456789abcdef/x", "1")
        let spool = Spool(layout: root.layout)
        let held = try #require(spool.lock("b"))
        spool.sweepTemporaries()
        #expect(!root.exists("Outbox/.tmp-a"))
        #expect(root.exists("Outbox/.tmp-b/x"))
        #expect(!root.exists("Failed/.tmp-c-0123456789abcdef"))
        held.unlock()
    }

    @Test func heldLocksAreSeenWithoutTakingThem() throws {
        let root = TempRoot("proclocks")
        let spool = Spool(layout: root.layout)
        let lock = try #require(spool.lock("x"))
        let inode = try #require(FileOps.identity(root.layout.lockFile("x"))).1
        #expect(StatusReport.heldLockInodes().contains(inode))
        lock.unlock()
        #expect(!StatusReport.heldLockInodes().contains(inode))
    }

    @Test func numpyArchiveLayout() throws {
        let npy = NumpyArchive.npy(shape: [2, 3, 3, 1], bytes: [UInt8](repeating: 7, count: 18))
        #expect(Array(npy.prefix(8)) == [0x93] + Array("NUMPY".utf8) + [1, 0])
        let headerLength = Int(npy[8]) | Int(npy[9]) << 8
        #expect((10 + headerLength) % 64 == 0)
        #expect(String(decoding: npy[10..<(10 + headerLength)], as: UTF8.self).hasSuffix(" \n"))
        #expect(npy.count == 10 + headerLength + 18)
        let zip = NumpyArchive.archive([.init(name: "arr_0", shape: [2, 3, 3, 1], bytes: [UInt8](repeating: 7, count: 18))])
        #expect(Array(zip.prefix(4)) == [0x50, 0x4B, 0x03, 0x04])
        #expect(Array(zip.suffix(22).prefix(4)) == [0x50, 0x4B, 0x05, 0x06])
        #expect(NumpyArchive.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        // arr_1, the labels: int64 little-endian, as ADM's image_sample.py writes them.
        let labels = NumpyArchive.Array(name: "arr_1", int64: [3, -1, 258])
        #expect(labels.descr == "<i8" && labels.shape == [3])
        #expect(labels.bytes == [3, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 255, count: 8) + [2, 1, 0, 0, 0, 0, 0, 0])
        let npy8 = NumpyArchive.npy(shape: labels.shape, bytes: labels.bytes, descr: labels.descr)
        #expect(String(decoding: npy8.prefix(64), as: UTF8.self).contains("'descr': '<i8', 'fortran_order': False, 'shape': (3,)"))
        // Streamed in chunks (as sampling writes it), the archive has the same bytes.
        let images = (0..<18).map { UInt8($0 * 13 % 256) }
        var writer = try #require(NumpyArchive.Writer(shape: [2, 3, 3, 1]))
        writer.append(Array(images[0..<9]))
        writer.append(Array(images[9...]))
        #expect(writer.finish(appending: [labels]) == NumpyArchive.archive([.init(name: "arr_0", shape: [2, 3, 3, 1], bytes: images), labels]))
        // Over ZIP32's 4 GiB: refused up front, not a precondition after sampling.
        #expect(NumpyArchive.Writer(shape: [70_000, 256, 256, 1]) == nil)
    }

    @Test func sampleImagesConversionAndGrid() {
        let t = Tensor(shape: [2, 1, 2, 2], values: [-1, 0, 1, 2, -2, -0.5, 0.5, 0.999])
        let u8 = SampleImages.uint8NHWC(t)
        #expect(u8 == [0, 128, 255, 255, 0, 64, 191, 255])
        // The class grid: one row per class, each row that class's samples (scale 2, padding 2).
        let x = Tensor(shape: [3, 1, 1, 1], values: [-1, 1, -1])
        let g = ModelOutputs.classGrid(x, labels: [0, 1, 0], numClasses: 2, columns: 5)
        #expect(g.width == 2 * 2 + 3 * 2 && g.height == 2 * 2 + 3 * 2)
        #expect(g.pixels[2 * g.width + 2] == 0 && g.pixels[2 * g.width + 6] == 0)   // row 0: both class-0 samples (black)
        #expect(g.pixels[6 * g.width + 2] == 255 && g.pixels[6 * g.width + 6] == 255)  // row 1: one white sample, then an empty cell
    }
}

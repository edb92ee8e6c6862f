import Foundation

/// Durable, atomic file replacement: write a temporary sibling, fsync it, rename it over the
/// target, fsync the directory. A reader sees the old file or the new one, never half of one,
/// even after a crash (rename(2) is atomic within one filesystem). The temporary name starts
/// with a dot, so folder scanners that skip hidden files never pick up a half-written file.
public enum AtomicFile {
    public struct WriteError: Error, CustomStringConvertible, Sendable, Equatable {
        public var path: String
        public var reason: String
        public var description: String { "cannot write \(path): \(reason)" }
    }

    public static func write(_ bytes: [UInt8], to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let folder = dir.isEmpty ? "." : dir
        let tmp = folder + "/.tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))-" + (path as NSString).lastPathComponent
        // 0666 less the umask, as `touch` would: the umask (the unit's UMask=) decides who
        // may read and write results, not a mode fixed here.
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else {
            throw WriteError(path: path, reason: "cannot create a temporary file in \(folder): \(String(cString: strerror(errno)))")
        }
        // errno of the first failure (0 while all is well), read right where it happens.
        var failure: Int32 = 0
        bytes.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { failure = n < 0 ? errno : EIO; return }
                off += n
            }
        }
        if failure == 0 && fsync(fd) != 0 { failure = errno }
        if close(fd) != 0 && failure == 0 { failure = errno }
        guard failure == 0 else {
            unlink(tmp)
            throw WriteError(path: path, reason: String(cString: strerror(failure)) + (failure == ENOSPC ? " (free some space and retry)" : ""))
        }
        guard rename(tmp, path) == 0 else {
            let e = errno
            unlink(tmp)
            throw WriteError(path: path, reason: "cannot rename the finished temporary file into place: \(String(cString: strerror(e)))")
        }
        syncDirectory(folder)
    }

    /// fsync a directory so a rename inside it is durable.
    public static func syncDirectory(_ dir: String) {
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}

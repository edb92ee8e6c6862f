import Foundation

/// Durable, atomic file replacement: write a temporary sibling, fsync it, rename it over the
/// target, fsync the directory. A reader sees the old file or the new one, never half of one,
/// even after a crash (rename(2) is atomic within one filesystem).
public enum AtomicFile {
    public struct WriteError: Error, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "cannot write \(path): \(reason)" }
    }

    public static func write(_ bytes: [UInt8], to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = (dir.isEmpty ? "." : dir) + "/.tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))-" + (path as NSString).lastPathComponent
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw WriteError(path: path, reason: String(cString: strerror(errno))) }
        var ok = true
        bytes.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 { if errno == EINTR { continue }; ok = false; return }
                off += n
            }
        }
        let err = errno
        if ok && fsync(fd) != 0 { ok = false }
        close(fd)
        guard ok else { unlink(tmp); throw WriteError(path: path, reason: String(cString: strerror(err))) }
        guard rename(tmp, path) == 0 else {
            let e = errno
            unlink(tmp)
            throw WriteError(path: path, reason: String(cString: strerror(e)))
        }
        syncDirectory(dir.isEmpty ? "." : dir)
    }

    /// fsync a directory so a rename inside it is durable.
    public static func syncDirectory(_ dir: String) {
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}

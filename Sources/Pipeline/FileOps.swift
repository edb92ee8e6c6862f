import Formats
import Foundation

/// A failed system call, with the path and the C error text.
public struct FileError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var path: String
    public var code: Int32
    public var description: String { "\(operation) \(path): \(String(cString: strerror(code)))" }
}

/// Thin POSIX helpers: the spool relies on exact semantics (rename, fsync, flock) that
/// FileManager does not promise.
enum FileOps {
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    static func isDirectory(_ path: String, followLinks: Bool = true) -> Bool {
        var st = stat()
        let r = followLinks ? stat(path, &st) : lstat(path, &st)
        return r == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// Modification time in seconds since the epoch.
    static func mtime(_ path: String) -> Double? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) * 1e-9
    }

    static func size(_ path: String) -> Int? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int(st.st_size)
    }

    /// Entry names of a directory (no `.`/`..`), sorted; empty if it cannot be read.
    static func list(_ dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) { ptr in
                ptr.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    static func makeDirectories(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw FileError(operation: "mkdir", path: path, code: (error as NSError).code == 0 ? EIO : Int32(truncatingIfNeeded: (error as NSError).code))
        }
    }

    static func rename(_ from: String, _ to: String) throws {
        guard Foundation.rename(from, to) == 0 else { throw FileError(operation: "rename to \(to)", path: from, code: errno) }
    }

    /// Removes a file or a whole tree; missing is fine.
    static func removeTree(_ path: String) {
        guard exists(path) else { return }
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Reads a regular file, at most `limit` bytes (one more chunk is read to tell a longer
    /// file apart). `followLinks: false` refuses a symbolic link (ELOOP) instead of reading
    /// what it points to (`/proc/self/environ`, say). A FIFO or device is refused before any
    /// read: O_NONBLOCK keeps the open itself from waiting for a writer.
    static func read(_ path: String, limit: Int = Int.max, followLinks: Bool = true) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (followLinks ? 0 : O_NOFOLLOW))
        guard fd >= 0 else { throw FileError(operation: "open", path: path, code: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileError(operation: "fstat", path: path, code: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FileError(operation: "read (not a regular file)", path: path, code: EINVAL) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while out.count <= limit {
            let n = buf.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress, 65536) }
            if n < 0 { if errno == EINTR { continue }; throw FileError(operation: "read", path: path, code: errno) }
            if n == 0 { break }
            out += buf[0..<n]
        }
        return out
    }

    static func readString(_ path: String) -> String? {
        (try? read(path, limit: 64 << 20)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Durable replace: temp file, fsync, rename, fsync the folder.
    static func writeDurably(_ bytes: [UInt8], to path: String) throws {
        try AtomicFile.write(bytes, to: path)
    }

    static func writeDurably(_ text: String, to path: String) throws {
        try AtomicFile.write(Array(text.utf8), to: path)
    }

    /// Atomic but not fsynced (for status files rewritten every few seconds).
    static func writeQuickly(_ text: String, to path: String) {
        let tmp = (path as NSString).deletingLastPathComponent + "/.tmp-\(getpid())-" + (path as NSString).lastPathComponent
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o666)
        guard fd >= 0 else { return }
        let ok = Array(text.utf8).withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                off += n
            }
            return true
        }
        close(fd)
        if !ok || Foundation.rename(tmp, path) != 0 { unlink(tmp) }
    }

    /// Whether `path` itself (not what it points to) is a symbolic link.
    static func isSymlink(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK
    }

    /// Whether `path` itself is a regular file (a link to one is not).
    static func isRegularFileNoFollow(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// The largest file the daemon copies by default (manifests, error records): the manifest
    /// size limit, so a user's huge file is never duplicated (it is moved instead).
    static var copyLimit: Int { ConfigNode.Limits().maxBytes }
    /// Job logs are the daemon's own, appended at every logged step: a larger cap.
    static let logCopyLimit = 1 << 30

    /// Copies a regular file (never through a symbolic link) and fsyncs the copy. Refuses a
    /// file over `limit` bytes with EFBIG. The copy is created 0666 less the umask, as any
    /// new file of the daemon's (the shipped unit's UMask=0002 makes results group-writable).
    static func copyFile(_ from: String, to: String, limit: Int = copyLimit) throws {
        let src = open(from, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW)
        guard src >= 0 else { throw FileError(operation: "open", path: from, code: errno) }
        defer { close(src) }
        var st = stat()
        guard fstat(src, &st) == 0 else { throw FileError(operation: "fstat", path: from, code: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FileError(operation: "copy (not a regular file)", path: from, code: EINVAL) }
        guard Int(st.st_size) <= limit else { throw FileError(operation: "copy (over the \(limit)-byte limit)", path: from, code: EFBIG) }
        let fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o666)
        guard fd >= 0 else { throw FileError(operation: "create", path: to, code: errno) }
        defer { close(fd) }
        // In chunks: memory stays small whatever the file; the count is checked again because
        // the file may grow while it is copied.
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        var total = 0
        while true {
            let n = buf.withUnsafeMutableBytes { Foundation.read(src, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw FileError(operation: "read", path: from, code: errno) }
            if n == 0 { break }
            total += n
            guard total <= limit else { throw FileError(operation: "copy (over the \(limit)-byte limit)", path: from, code: EFBIG) }
            try buf.withUnsafeBytes { raw in
                var off = 0
                while off < n {
                    let w = Foundation.write(fd, raw.baseAddress! + off, n - off)
                    if w < 0 { if errno == EINTR { continue }; throw FileError(operation: "write", path: to, code: errno) }
                    off += w
                }
            }
        }
        guard fsync(fd) == 0 else { throw FileError(operation: "fsync", path: to, code: errno) }
    }

    /// Keeps `from` at `to` without reading through a link: a symbolic link is recreated as
    /// the same link, a regular file within `limit` is copied. False when neither applies
    /// (a larger file, a FIFO): the caller then moves the original by rename.
    static func preserve(_ from: String, to: String, limit: Int = copyLimit) throws -> Bool {
        var st = stat()
        guard lstat(from, &st) == 0 else { throw FileError(operation: "lstat", path: from, code: errno) }
        switch st.st_mode & S_IFMT {
        case S_IFLNK:
            var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(from, &buf, buf.count - 1)
            guard n >= 0 else { throw FileError(operation: "readlink", path: from, code: errno) }
            let target = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard symlink(target, to) == 0 else { throw FileError(operation: "symlink", path: to, code: errno) }
            return true
        case S_IFREG where Int(st.st_size) <= limit:
            do { try copyFile(from, to: to, limit: limit) } catch let e as FileError where e.code == EFBIG { return false }
            return true
        default:
            return false
        }
    }

    /// The target of a symbolic link, for messages.
    static func linkTarget(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buf, buf.count - 1)
        guard n >= 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Modification time of the entry itself (a link's own time, not its target's).
    static func lmtime(_ path: String) -> Double? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) * 1e-9
    }

    static func fsyncPath(_ path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
    }

    static func syncDirectory(_ dir: String) { AtomicFile.syncDirectory(dir) }

    /// fsyncs every file and folder under `dir` (before publishing it by rename).
    static func syncTree(_ dir: String) {
        for name in list(dir) {
            let p = dir + "/" + name
            if isDirectory(p, followLinks: false) { syncTree(p) } else { fsyncPath(p) }
        }
        syncDirectory(dir)
    }

    /// Device and inode, to tell whether two paths are the same file.
    static func identity(_ path: String) -> (UInt64, UInt64)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    static var hostName: String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func randomHex(_ bytes: Int = 8) -> String {
        (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }
}

/// An exclusive advisory lock (`flock`) on a lock file, held until `unlock()` or process exit.
/// The kernel drops it when the process dies (even by SIGKILL), which is what makes a claimed
/// job's owner detectable: a claim whose lock can be taken has no live daemon.
public final class FileLock: @unchecked Sendable {
    let fd: Int32
    public let path: String

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    /// Takes the lock without waiting; nil if another process (or another open of the file in
    /// this process) holds it.
    public static func tryLock(_ path: String) -> FileLock? {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o666)
        guard fd >= 0 else { return nil }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            return nil
        }
        return FileLock(fd: fd, path: path)
    }

    /// Whether someone holds the lock right now (takes and drops it if free).
    public static func isHeld(_ path: String) -> Bool {
        guard FileOps.exists(path) else { return false }
        guard let l = tryLock(path) else { return true }
        l.unlock()
        return false
    }

    private var released = false
    public func unlock() {
        guard !released else { return }
        released = true
        flock(fd, LOCK_UN)
        close(fd)
    }

    deinit { unlock() }
}

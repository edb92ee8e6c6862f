/// A data file (gzip, IDX, CSV) that could not be read, or a dataset folder that could not be
/// written, with the place in it and a way out.
///
/// Every reader in this module throws this one type, so callers (the `import` command, the
/// daemon's job runner) can print `description` as is: it says which file, where in it
/// (`line 12`, `byte 16`, `item 345`), what was wrong, and what to do about it.
public struct DataFileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file's path, or the name the caller gave its bytes.
    public var file: String
    /// Where in the file, e.g. `line 3, column 785` or `byte 16`; nil when it is the whole file.
    public var location: String?
    /// What was wrong.
    public var reason: String
    /// What to do about it; nil when there is nothing better than "check the file".
    public var hint: String?

    public init(file: String, location: String? = nil, reason: String, hint: String? = nil) {
        self.file = file
        self.location = location
        self.reason = reason
        self.hint = hint
    }

    public var description: String {
        var s = file
        if let location { s += ": " + location }
        s += ": " + reason
        if let hint { s += " (" + hint + ")" }
        return s
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole-file reads with errors that say why (errno's words, not Foundation's "nil").
public enum DataFile {
    /// Reads a regular file's bytes; refuses directories and files larger than `maxBytes`.
    public static func bytes(atPath path: String, maxBytes: Int = 1 << 32) throws -> [UInt8] {
        // O_NONBLOCK: opening a FIFO would otherwise wait forever for a writer; fstat below
        // refuses it (regular files ignore the flag).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let e = errno
            throw DataFileError(file: path, reason: "cannot be opened: \(String(cString: strerror(e)))",
                                hint: e == ENOENT ? "check the path" : "check the permissions")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw DataFileError(file: path, reason: "cannot be examined: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw DataFileError(file: path, reason: "is not a regular file", hint: "give the path of the file itself, not of a folder")
        }
        let size = Int(st.st_size)
        guard size <= maxBytes else {
            throw DataFileError(file: path, reason: "is \(size) bytes, more than the \(maxBytes)-byte limit for this kind of file")
        }
        var out = [UInt8](repeating: 0, count: size)
        var filled = 0
        try out.withUnsafeMutableBytes { raw in
            while filled < size {
                let n = read(fd, raw.baseAddress! + filled, size - filled)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw DataFileError(file: path, location: "byte \(filled)", reason: "read failed: \(String(cString: strerror(errno)))")
                }
                if n == 0 { break }  // the file shrank while we read it
                filled += n
            }
        }
        if filled < size { out.removeSubrange(filled...) }
        return out
    }
}

import Datasets
import Foundation

/// Keeps every path a manifest names inside the daemon's root folder: lexically (no `..` that
/// climbs out, no absolute path elsewhere) before touching the disk, then physically (symlinks
/// resolved with realpath) when the input is opened.
public enum RootPaths {
    /// Normalizes `path` (relative to the root, or absolute) to a root-relative path with no
    /// `.`/`..` components, or nil if it leaves the root lexically.
    public static func lexicalRelative(_ path: String, root: String) -> String? {
        var p = path
        if p.hasPrefix("/") {
            let r = normalize(root)
            let abs = normalize(p)
            guard abs == r || abs.hasPrefix(r == "/" ? "/" : r + "/") else { return nil }
            p = String(abs.dropFirst(r.count))
        }
        var parts: [Substring] = []
        for c in p.split(separator: "/", omittingEmptySubsequences: true) {
            if c == "." { continue }
            if c == ".." {
                guard !parts.isEmpty else { return nil }
                parts.removeLast()
                continue
            }
            parts.append(c)
        }
        return parts.joined(separator: "/")
    }

    /// `path` with `.`/`..` resolved lexically (absolute input).
    public static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for c in path.split(separator: "/", omittingEmptySubsequences: true) {
            if c == "." { continue }
            if c == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(c)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// The physical location of `relative` under `root` with symlinks resolved; throws if the
    /// path does not exist or resolves outside the root.
    public static func resolveInside(_ relative: String, root: String, field: String) throws -> String {
        guard let rel = lexicalRelative(relative, root: root) else {
            throw JobError(what: "path `\(relative)` leaves the root folder", where: field,
                           fix: "name a path inside \(root) (datasets go in Inbox/datasets/)")
        }
        let realRoot = realPath(root) ?? root
        let joined = rel.isEmpty ? root : root + "/" + rel
        guard let real = realPath(joined) else {
            throw JobError(what: "`\(rel)` does not exist", where: field, fix: "create it under \(root), or correct the path")
        }
        guard real == realRoot || real.hasPrefix(realRoot == "/" ? "/" : realRoot + "/") else {
            throw JobError(what: "`\(rel)` is a symbolic link to \(real), outside the root folder", where: field,
                           fix: "copy the data into \(root) instead of linking to it (the daemon only reads inside its root)")
        }
        return real
    }

    public static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }
}

extension RootPaths {
    /// The first symbolic link under `dir` (recursively, not following links) that resolves
    /// outside `root`, if any: a dataset may not reach out of the root through a link. The
    /// default depth covers every level `ImageFolder` reads (dataset, class folder, then
    /// `maxFolderDepth` levels), with one to spare.
    public static func firstEscapingLink(in dir: String, root: String,
                                         depthLimit: Int = ImageFolder.maxFolderDepth + 2) -> (link: String, target: String)? {
        let realRoot = realPath(root) ?? root
        func inside(_ p: String) -> Bool { p == realRoot || p.hasPrefix(realRoot == "/" ? "/" : realRoot + "/") }
        func walk(_ d: String, _ depth: Int) -> (String, String)? {
            guard depth <= depthLimit else { return nil }
            for name in FileOps.list(d) {
                let p = d + "/" + name
                var st = stat()
                guard lstat(p, &st) == 0 else { continue }
                if (st.st_mode & S_IFMT) == S_IFLNK {
                    let target = realPath(p) ?? "(dangling)"
                    if !inside(target) { return (p, target) }
                } else if (st.st_mode & S_IFMT) == S_IFDIR {
                    if let found = walk(p, depth + 1) { return found }
                }
            }
            return nil
        }
        return walk(dir, 0)
    }
}

import Foundation

/// Job and dataset names: they become folder names (`Outbox/<job>/`), so they are restricted to
/// a portable, shell-safe alphabet and may not start with a dot (dot-files are the spool's own
/// temporaries and are skipped, as maildir readers do).
public enum JobName {
    public static let maxLength = 64

    /// nil when `name` is a valid job/dataset name, else why not.
    public static func problem(_ name: String) -> String? {
        if name.isEmpty { return "is empty" }
        if name.utf8.count > maxLength { return "is longer than \(maxLength) characters" }
        if name.hasPrefix(".") || name.hasPrefix("-") { return "starts with `\(name.first!)`" }
        if let bad = name.unicodeScalars.first(where: { !allowed($0) }) {
            return "contains `\(bad.escaped(asASCII: true))`; only letters, digits, `.`, `_` and `-` are allowed"
        }
        return nil
    }

    public static func isValid(_ name: String) -> Bool { problem(name) == nil }

    /// A valid name derived from an arbitrary one (used for folders of rejected files).
    public static func sanitized(_ name: String) -> String {
        var s = String(String.UnicodeScalarView(name.unicodeScalars.map { allowed($0) ? $0 : "_" }))
        while s.hasPrefix(".") || s.hasPrefix("-") { s.removeFirst() }
        if s.utf8.count > maxLength { s = String(s.prefix(maxLength)) }
        return s.isEmpty ? "unnamed" : s
    }

    static func allowed(_ u: Unicode.Scalar) -> Bool {
        switch u {
        case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": true
        default: false
        }
    }

    /// The job name a manifest file implies: its name without the extension.
    public static func fromFileName(_ fileName: String) -> String {
        (fileName as NSString).deletingPathExtension
    }
}

/// One thing wrong with a manifest: which field, what is wrong, and how to fix it.
public struct Problem: Sendable, Equatable, CustomStringConvertible {
    /// Dotted field path, e.g. `training.steps` or `inputs.dataset` (empty for the whole file).
    public var field: String
    public var message: String
    public var fix: String
    /// Source line, when the manifest was YAML/JSON text.
    public var line: Int?

    public init(field: String, message: String, fix: String, line: Int? = nil) {
        self.field = field
        self.message = message
        self.fix = fix
        self.line = line
    }

    /// A problem with the file as a whole (syntax, size, encoding) rather than a field.
    public var isSyntax: Bool { field.isEmpty }

    public var description: String {
        let place = field.isEmpty ? "" : "\(field)"
        let at = line.map { " (line \($0))" } ?? ""
        return "\(place)\(at)\(place.isEmpty && at.isEmpty ? "" : ": ")\(message) — fix: \(fix)"
    }

    public var json: JSONValue {
        var pairs: [(String, JSONValue)] = [("field", .string(field)), ("message", .string(message)), ("fix", .string(fix))]
        if let line { pairs.append(("line", .int(line))) }
        return .object(pairs)
    }
}

/// Why a job failed, in the form written to `Failed/<job>/error.json`: what was wrong, where,
/// and how to fix it, plus the individual manifest problems when there are several.
public struct JobError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, one sentence.
    public var what: String
    /// Where: a file, a field, a phase ("manifest field training.steps", "Inbox/datasets/x/cat/3.png").
    public var `where`: String
    /// What the user should do about it.
    public var fix: String
    /// Individual manifest problems (validation failures), if any.
    public var problems: [Problem]

    public init(what: String, where: String, fix: String, problems: [Problem] = []) {
        self.what = what
        self.where = `where`
        self.fix = fix
        self.problems = problems
    }

    /// A job error for a list of manifest problems.
    public static func invalidManifest(_ problems: [Problem], file: String) -> JobError {
        if problems.count == 1, let p = problems.first {
            return JobError(what: "invalid manifest: \(p.message)",
                            where: "\(file)" + (p.field.isEmpty ? "" : ", field \(p.field)") + (p.line.map { " (line \($0))" } ?? ""),
                            fix: p.fix, problems: problems)
        }
        return JobError(what: "invalid manifest: \(problems.count) problems (\(problems.map { $0.field.isEmpty ? $0.message : $0.field }.joined(separator: ", ")))",
                        where: file, fix: "fix each listed problem and drop the manifest into Inbox/jobs again", problems: problems)
    }

    public var description: String {
        var s = "\(what) [\(self.where)] — fix: \(fix)"
        if problems.count > 1 { s += problems.map { "\n  - \($0)" }.joined() }
        return s
    }

    public var json: JSONValue {
        var pairs: [(String, JSONValue)] = [("what", .string(what)), ("where", .string(self.where)), ("fix", .string(fix))]
        if !problems.isEmpty { pairs.append(("problems", .array(problems.map(\.json)))) }
        return .object(pairs)
    }

    /// Reads the fields back from an `error.json` object.
    public init?(json: JSONValue) {
        guard let what = json["what"]?.stringValue else { return nil }
        self.what = what
        self.where = json["where"]?.stringValue ?? ""
        self.fix = json["fix"]?.stringValue ?? ""
        self.problems = (json["problems"]?.arrayValue ?? []).compactMap { p in
            guard let f = p["field"]?.stringValue, let m = p["message"]?.stringValue else { return nil }
            return Problem(field: f, message: m, fix: p["fix"]?.stringValue ?? "", line: p["line"]?.intValue)
        }
    }
}

/// An error for people: what went wrong and what to do about it. The modules that report
/// in these two parts (metrics, the text encoder) share this one type under their own names.
public struct FixableError: Error, CustomStringConvertible, Sendable, Equatable {
    public var what: String
    public var fix: String
    public init(_ what: String, fix: String) {
        self.what = what
        self.fix = fix
    }
    public var description: String { "\(what) (\(fix))" }
}

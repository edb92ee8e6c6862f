import Foundation

/// Where a pretrained network's converted weights are looked for, the same chain for every
/// network: `$<variable>`, `<root>/models/<fileName>`, then `$XDG_DATA_HOME/learngene/`
/// (default `~/.local/share/learngene/`). The first readable candidate wins.
public struct WeightLocator: Sendable {
    public let variable: String
    public let fileName: String

    public init(variable: String, fileName: String) {
        self.variable = variable
        self.fileName = fileName
    }

    /// The places looked at, in order.
    public func candidates(root: String?, environment: [String: String]) -> [String] {
        var out: [String] = []
        if let v = environment[variable], !v.isEmpty { out.append(v) }
        if let root { out.append(root + "/models/" + fileName) }
        if let xdg = environment["XDG_DATA_HOME"], !xdg.isEmpty {
            out.append(xdg + "/learngene/" + fileName)
        } else if let home = environment["HOME"], !home.isEmpty {
            out.append(home + "/.local/share/learngene/" + fileName)
        }
        return out
    }

    /// The first candidate that exists, or nil.
    public func locate(root: String?, environment: [String: String]) -> String? {
        candidates(root: root, environment: environment).first { FileManager.default.isReadableFile(atPath: $0) }
    }

    /// Where an install command should write the converted file: the first default place
    /// (not the variable's), so the next run finds it.
    public func installTarget(root: String?, environment: [String: String]) -> String {
        candidates(root: root, environment: environment).first { !$0.isEmpty && environment[variable] != $0 }
            ?? "~/.local/share/learngene/\(fileName)"
    }
}

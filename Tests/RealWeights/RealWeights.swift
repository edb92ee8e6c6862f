import Foundation
import Testing

/// The real all-MiniLM-L6-v2 and EfficientNet-Lite0 weights are not in the repository. A test
/// that needs them is skipped, visibly (reported as skipped, with the reason), when they
/// are absent; under CI=true (CI installs them) their absence is a failure, so a CI run can
/// never pass these tests without running them.
public enum RealWeights {
    public struct Missing: Error, CustomStringConvertible {
        public var description: String
    }

    /// The value `locate` finds (a path, a folder), or: the test is skipped, or failed
    /// under CI=true, saying what is missing and why.
    public static func require<T>(_ what: String, ifMissing: @autoclosure () -> String = "not found",
                                  environment: [String: String] = ProcessInfo.processInfo.environment,
                                  sourceLocation: SourceLocation = #_sourceLocation,
                                  _ locate: () throws -> T?) throws -> T {
        let reason: String
        do {
            if let found = try locate() { return found }
            reason = ifMissing()
        } catch {
            reason = "\(error)"
        }
        if environment["CI"] == "true" {
            // Thrown, so recorded as the test's failure.
            throw Missing(description: "not installed, and CI=true requires it: \(what): \(reason)")
        }
        try Test.cancel("skipped, not installed: \(what): \(reason)", sourceLocation: sourceLocation)
    }
}

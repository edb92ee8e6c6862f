import Foundation

/// Picks the right OpenBLAS kernel at start-up.
///
/// Debian 12's OpenBLAS 0.3.21 does not know recent Xeons and falls back to its SSE3
/// "Prescott" kernel, 5–10× slower than "SkylakeX", which gives the same results here.
/// The kernel is chosen when the library loads, so the only fix is to re-execute the
/// process once with OPENBLAS_CORETYPE=SkylakeX in its environment. We never override a
/// value that is already set, and LEARNGENE_NO_BLAS_REEXEC=1 turns the re-exec off.
public enum BlasKernel {
    public static let optOutVariable = "LEARNGENE_NO_BLAS_REEXEC"

    /// What `decide` concluded, for the start-up log line.
    public enum Decision: Equatable, Sendable {
        case keep(reason: String)
        case reexec(coreType: String)
    }

    /// Pure decision, testable without touching the process.
    public static func decide(environment: [String: String], coreName: String, cpuFlags: Set<String>) -> Decision {
        if let set = environment["OPENBLAS_CORETYPE"] {
            return .keep(reason: "OPENBLAS_CORETYPE=\(set) was set by the caller")
        }
        if let v = environment[optOutVariable], v != "" && v != "0" {
            return .keep(reason: "\(optOutVariable) is set")
        }
        if coreName.lowercased() != "prescott" { return .keep(reason: "kernel \(coreName) is fine") }
        if !cpuFlags.contains("avx512f") { return .keep(reason: "CPU has no AVX-512F") }
        return .reexec(coreType: "SkylakeX")
    }

    /// CPU feature flags from /proc/cpuinfo (empty where unreadable).
    public static func cpuFlags() -> Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [] }
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            if let colon = line.firstIndex(of: ":") {
                return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
            }
        }
        return []
    }

    /// Re-executes this program with OPENBLAS_CORETYPE set when `decide` says so; returns the
    /// decision otherwise (or when exec fails). Call first thing in `main`.
    @discardableResult
    public static func reexecIfNeeded(arguments: [String] = CommandLine.arguments) -> Decision {
        let decision = decide(environment: ProcessInfo.processInfo.environment, coreName: Blas.coreName, cpuFlags: cpuFlags())
        guard case .reexec(let core) = decision else { return decision }
        setenv("OPENBLAS_CORETYPE", core, 1)
        var cargs: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        cargs.append(nil)
        execv("/proc/self/exe", cargs)
        // exec failed: carry on with the slow kernel, and say so.
        unsetenv("OPENBLAS_CORETYPE")
        return .keep(reason: "re-exec failed (errno \(errno)); running on \(Blas.coreName)")
    }
}

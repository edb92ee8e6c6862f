import Foundation

/// Makes sure OpenBLAS runs a kernel that fits the CPU.
///
/// Debian 12's OpenBLAS 0.3.21 is built with DYNAMIC_ARCH: when it loads, it reads the CPU's
/// model and picks a kernel set. For CPU models newer than the library (Intel Xeon family 6
/// model 207, the project's machine kind), it does not find the model and falls back to its
/// SSE3 "Prescott" kernels: 5–10× slower than "SkylakeX", with the same results
/// (docs/swift-ground.md §1, §3).
///
/// The choice is made by a load-time constructor, before `main` runs, from the variable
/// OPENBLAS_CORETYPE; `setenv` in `main` is too late. So the fix is to re-execute the process
/// once, the same binary with the same arguments, with OPENBLAS_CORETYPE in its environment.
///
/// Rules (`decide` is the whole table, and is pure, so tests can cover the Intel case on any
/// machine):
/// - a value of OPENBLAS_CORETYPE that is already set is never overridden;
/// - LEARNGENE_NO_BLAS_REEXEC=1 turns the re-exec off (the documented switch);
/// - the re-exec happens at most once: the child carries LEARNGENE_BLAS_REEXEC in its
///   environment, and a process that sees it never re-executes again, whatever OpenBLAS says;
/// - only "Prescott" is replaced: a kernel that OpenBLAS picked for a CPU it knows
///   ("Haswell", "SkylakeX", "Zen", …) is kept. With AVX-512F the replacement is "SkylakeX"
///   (every CPU shipping AVX-512F since Skylake-SP also has the BW, DQ and VL parts that
///   kernel uses); with AVX2 and FMA but no AVX-512 it is "Haswell" (3× Prescott here).
public enum BlasKernel {
    /// Set to anything but "", "0", "false", "no" or "off" to keep whatever OpenBLAS picked.
    public static let optOutVariable = "LEARNGENE_NO_BLAS_REEXEC"
    /// Loop guard: present in the environment of a process started by the re-exec (its value
    /// is the core type requested). Inherited by children, which then do not re-exec either.
    public static let markerVariable = "LEARNGENE_BLAS_REEXEC"
    /// OpenBLAS's own variable, read when the library loads.
    public static let coreTypeVariable = "OPENBLAS_CORETYPE"

    /// What `decide` concluded, for the start-up log line.
    public enum Decision: Equatable, Sendable, CustomStringConvertible {
        /// Run on as we are; `reason` says why, for the log.
        case keep(reason: String)
        /// Re-execute with OPENBLAS_CORETYPE=`coreType`.
        case reexec(coreType: String)

        public var description: String {
            switch self {
            case .keep(let reason): return reason
            case .reexec(let core): return "re-executing with \(BlasKernel.coreTypeVariable)=\(core)"
            }
        }
    }

    /// The decision table, a pure function of its inputs.
    /// - Parameters:
    ///   - environment: the process environment (only the variables above matter).
    ///   - coreName: what `openblas_get_corename()` reports.
    ///   - cpuFlags: the CPU's feature flags as spelled in /proc/cpuinfo ("avx512f", "avx2", "fma").
    public static func decide(environment: [String: String], coreName: String, cpuFlags: Set<String>) -> Decision {
        if let requested = environment[markerVariable] {
            let now = environment[coreTypeVariable].map { "\(coreTypeVariable)=\($0)" } ?? "\(coreTypeVariable) unset"
            let warning = isPrescott(coreName) ? " (still the slow SSE3 kernel; not re-executing again)" : ""
            return .keep(reason: "OpenBLAS kernel \(coreName): re-executed once for \(requested), \(now)\(warning)")
        }
        if let set = environment[coreTypeVariable] {
            return .keep(reason: "OpenBLAS kernel \(coreName): \(coreTypeVariable)=\(set) was set by the caller")
        }
        if let v = environment[optOutVariable], isOn(v) {
            let warning = isPrescott(coreName) ? " (the slow SSE3 kernel)" : ""
            return .keep(reason: "OpenBLAS kernel \(coreName)\(warning): re-exec turned off by \(optOutVariable)=\(v)")
        }
        if !isPrescott(coreName) {
            return .keep(reason: "OpenBLAS kernel \(coreName): chosen by OpenBLAS for this CPU")
        }
        if cpuFlags.contains("avx512f") { return .reexec(coreType: "SkylakeX") }
        if cpuFlags.contains("avx2") && cpuFlags.contains("fma") { return .reexec(coreType: "Haswell") }
        return .keep(reason: "OpenBLAS kernel \(coreName): the CPU has neither AVX-512F nor AVX2+FMA, nothing faster to pick")
    }

    static func isPrescott(_ coreName: String) -> Bool {
        coreName.trimmingCharacters(in: .whitespaces).lowercased() == "prescott"
    }

    static func isOn(_ value: String) -> Bool {
        !["", "0", "false", "no", "off"].contains(value.trimmingCharacters(in: .whitespaces).lowercased())
    }

    /// CPU feature flags from the first "flags" line of /proc/cpuinfo (empty where unreadable).
    /// The kernel lists AVX-512 there only when the OS also saves the AVX-512 registers.
    public static func cpuFlags(cpuinfo path: String = "/proc/cpuinfo") -> Set<String> {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return flags(fromCpuinfo: text)
    }

    /// The flags of the first "flags" line of a /proc/cpuinfo text.
    public static func flags(fromCpuinfo text: String) -> Set<String> {
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            if let colon = line.firstIndex(of: ":") {
                return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
            }
        }
        return []
    }

    /// Decides, logs one line to standard error (unless `quiet`) and, when the decision says
    /// so, re-executes this program; returns only when it keeps running as it is. Call it
    /// first thing in `main`, before any thread or file is opened that exec would drop.
    ///
    /// - Parameter arguments: the argument vector for the new process, argv[0] included.
    ///   By default the original argv is passed on unchanged, byte for byte (argv[0] too).
    @discardableResult
    /// The release build targets AVX2 and FMA (`-target-cpu haswell` in Package.swift: every
    /// x86 server since 2013, and twice the width of the default SSE2 in the elementwise
    /// kernels). On a CPU without them the first vector instruction would kill the process
    /// with SIGILL and no word; this says why, and what to do, and exits with status 2.
    public static func requireAVX2(cpuinfo path: String = "/proc/cpuinfo") {
        let flags = cpuFlags(cpuinfo: path)
        guard !flags.isEmpty, !(flags.contains("avx2") && flags.contains("fma")) else { return }
        let message = "learngene: this CPU lacks AVX2/FMA (flags in \(path)), which this build targets. "
            + "Rebuild without the CPU target: remove \"-target-cpu\", \"haswell\" from swiftSettings in Package.swift.\n"
        FileHandle.standardError.write(Data(message.utf8))
        exit(2)
    }

    public static func reexecIfNeeded(arguments: [String]? = nil, quiet: Bool = false) -> Decision {
        let decision = decide(environment: ProcessInfo.processInfo.environment, coreName: Blas.coreName,
                              cpuFlags: cpuFlags())
        guard case .reexec(let core) = decision else {
            if !quiet { log(decision.description) }
            return decision
        }
        if !quiet {
            log("OpenBLAS kernel \(Blas.coreName) on a CPU it does not know; re-executing with "
                + "\(coreTypeVariable)=\(core) (\(optOutVariable)=1 turns this off)")
        }
        let failed = reexec(coreType: core, arguments: arguments)
        if !quiet { log(failed.description) }
        return failed
    }

    /// Replaces this process by the same executable (/proc/self/exe) with the same arguments,
    /// adding OPENBLAS_CORETYPE=`coreType` and the loop-guard marker to the environment.
    /// Returns only if exec failed (then the environment is restored and the reason returned).
    public static func reexec(coreType: String, arguments: [String]? = nil) -> Decision {
        #if os(Linux)
        setenv(coreTypeVariable, coreType, 1)
        setenv(markerVariable, coreType, 1)
        fflush(nil)  // exec drops whatever stdio still buffers
        let err: Int32
        if let arguments {
            var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
            execv("/proc/self/exe", &argv)
            err = errno
            for p in argv { free(p) }
        } else {
            // The original argv, NUL-terminated: no round trip through Swift strings, so
            // arguments that are not valid UTF-8 survive too.
            execv("/proc/self/exe", CommandLine.unsafeArgv)
            err = errno
        }
        unsetenv(coreTypeVariable)
        unsetenv(markerVariable)
        return .keep(reason: "OpenBLAS kernel \(Blas.coreName): re-exec with \(coreTypeVariable)=\(coreType) failed: "
                     + String(cString: strerror(err)))
        #else
        return .keep(reason: "OpenBLAS kernel \(Blas.coreName): re-exec is implemented for Linux only")
        #endif
    }

    static func log(_ line: String) {
        FileHandle.standardError.write(Data("learngene: \(line)\n".utf8))
    }
}

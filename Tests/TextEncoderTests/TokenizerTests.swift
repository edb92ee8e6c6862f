import Foundation
import Testing
@testable import TextEncoder

/// The tokenizer against HF tokenizers' ids (Tools/make_minilm_fixtures.py) on tricky strings.
@Suite struct TokenizerTests {
    struct Case: Decodable {
        var text: String
        var tiny_ids: [Int]
        var real_ids: [Int]
    }
    struct Cases: Decodable {
        var max_length: Int
        var added_tokens: [String: [String: Int]]
        var cases: [Case]
    }

    static let cases: Cases = try! JSONDecoder().decode(
        Cases.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.folder + "/tokenizer_cases.json")))

    static func check(_ tokenizer: WordPieceTokenizer, _ want: (Case) -> [Int], _ name: String) {
        for c in cases.cases {
            let got = tokenizer.encode(c.text)
            #expect(got == want(c), "\(name) tokenizer on \(c.text.debugDescription): \(tokenizer.tokens(c.text))")
        }
    }

    @Test func tinyVocabularyMatchesHF() throws {
        let tok = try WordPieceTokenizer(vocabularyFile: Fixtures.tiny + "/vocab.txt",
                                         addedTokens: Self.cases.added_tokens["tiny"]!, maxLength: Self.cases.max_length)
        #expect(tok.vocabulary.count == 297 || tok.vocabulary.count > 100)
        #expect(tok.unknownID == 2 && tok.classifierID == 3 && tok.separatorID == 4 && tok.paddingID == 0)
        Self.check(tok, \.tiny_ids, "tiny")
    }

    @Test func realVocabularyMatchesHFWhenInstalled() throws {
        let folder = try Fixtures.realFolder()
        let tok = try WordPieceTokenizer(vocabularyFile: folder + "/vocab.txt",
                                         addedTokens: Self.cases.added_tokens["real"]!, maxLength: Self.cases.max_length)
        #expect(tok.vocabulary.count == 30522)
        #expect(tok.unknownID == 100 && tok.classifierID == 101 && tok.separatorID == 102 && tok.paddingID == 0)
        Self.check(tok, \.real_ids, "real")
    }

    @Test func addedTokenLandsWhereItStands() throws {
        let tok = try WordPieceTokenizer(vocabularyFile: Fixtures.tiny + "/vocab.txt", addedTokens: ["<CreTok>": 1])
        let ids = tok.encode("a photo of a <CreTok> mixture")
        #expect(ids.filter { $0 == 1 }.count == 1)
        #expect(ids[5] == 1, "\(tok.tokens("a photo of a <CreTok> mixture"))")
        #expect(!tok.encode("a photo of a <cretok> mixture").contains(1), "matched verbatim, not after lowercasing")
    }

    @Test func truncatesToMaxLength() throws {
        let tok = try WordPieceTokenizer(vocabularyFile: Fixtures.tiny + "/vocab.txt", maxLength: 8)
        let ids = tok.encode(String(repeating: "word ", count: 50))
        #expect(ids.count == 8 && ids.first == tok.classifierID && ids.last == tok.separatorID)
        #expect(tok.encode("") == [tok.classifierID, tok.separatorID])
    }
}

import Foundation

/// BERT's uncased WordPiece tokenizer, as HF `tokenizers` runs it from a BERT tokenizer.json
/// (all-MiniLM-L6-v2's included; its padding and truncation to 128 are not copied: sentences
/// keep their own length and are cut at `maxLength`, sentence-transformers' max_seq_length).
///
/// 1. Added tokens (`addedTokens`, e.g. `["<CreTok>": 1]`, and the specials `[PAD] [UNK] [CLS]
///    [SEP] [MASK]`) are found verbatim in the raw text, leftmost and then longest first, before
///    any normalization (HF's `AddedToken(normalized=False)`); the text between them goes
///    through steps 2–4 on its own.
/// 2. BertNormalizer: drop NUL, U+FFFD and control characters (categories Cc Cf Cn Co Cs, but
///    not \t \n \r); whitespace (White_Space) becomes a space; spaces around CJK ideographs;
///    NFD, then drop nonspacing marks (Mn); lowercase, character by character.
/// 3. BertPreTokenizer: split on whitespace, and make every punctuation character a word of
///    its own (ASCII 33–47, 58–64, 91–96, 123–126, and Unicode categories P*).
/// 4. WordPiece: greedy longest-match-first from the start of each word, continuation pieces
///    prefixed `##`; a word longer than 100 characters, or one that cannot be covered, is [UNK].
/// 5. `[CLS] pieces [SEP]`, the pieces cut so that the whole is at most `maxLength` ids.
///
/// Strings are compared as their UTF-8 bytes, never with Swift's canonical equivalence, as
/// the reference does (so a precomposed vocabulary entry never matches a decomposed word).
public struct WordPieceTokenizer: Sendable {
    /// The vocabulary, one piece per id.
    public let vocabulary: [String]
    /// Tokens matched verbatim in the raw text, and their ids (the specials found in the
    /// vocabulary are always included).
    public let addedTokens: [String: Int]
    /// The most ids `encode` returns, [CLS] and [SEP] included.
    public let maxLength: Int
    public let unknownID: Int, classifierID: Int, separatorID: Int, paddingID: Int

    /// Words longer than this (in Unicode scalars) become [UNK], as in HF's WordPiece.
    public static let maxCharactersPerWord = 100
    /// all-MiniLM-L6-v2's max_seq_length (sentence_bert_config.json).
    public static let defaultMaxLength = 256
    public static let specialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

    /// Piece (UTF-8 bytes) → id; a later duplicate line wins, as in HF's vocabulary reader.
    let ids: [[UInt8]: Int]
    /// Added tokens as scalars, grouped by their first scalar, longest first.
    let addedByFirst: [Unicode.Scalar: [(scalars: [Unicode.Scalar], id: Int)]]

    /// - Parameters:
    ///   - vocabulary: the pieces, in id order (vocab.txt's lines).
    ///   - addedTokens: extra tokens matched verbatim (their ids may lie past the vocabulary:
    ///     the encoder then needs an override for them).
    ///   - maxLength: the most ids per sentence, at least 2.
    public init(vocabulary: [String], addedTokens: [String: Int] = [:], maxLength: Int = defaultMaxLength) throws {
        guard maxLength >= 2 else {
            throw TextEncoderError("maxLength \(maxLength) leaves no room for [CLS] and [SEP]", fix: "use at least 2")
        }
        var ids: [[UInt8]: Int] = [:]
        for (i, piece) in vocabulary.enumerated() { ids[Array(piece.utf8)] = i }
        func special(_ s: String) throws -> Int {
            guard let id = ids[Array(s.utf8)] else {
                throw TextEncoderError("the vocabulary has no \(s) token", fix: "use a BERT vocab.txt (it lists [PAD] [UNK] [CLS] [SEP] [MASK])")
            }
            return id
        }
        unknownID = try special("[UNK]")
        classifierID = try special("[CLS]")
        separatorID = try special("[SEP]")
        paddingID = try special("[PAD]")
        var added = addedTokens
        for s in Self.specialTokens where added[s] == nil {
            if let id = ids[Array(s.utf8)] { added[s] = id }
        }
        var byFirst: [Unicode.Scalar: [(scalars: [Unicode.Scalar], id: Int)]] = [:]
        for (token, id) in added {
            let scalars = Array(token.unicodeScalars)
            guard let first = scalars.first else {
                throw TextEncoderError("an added token is empty", fix: "give every added token at least one character")
            }
            byFirst[first, default: []].append((scalars, id))
        }
        for k in byFirst.keys { byFirst[k]!.sort { $0.scalars.count > $1.scalars.count } }
        self.vocabulary = vocabulary
        self.ids = ids
        self.addedTokens = added
        self.addedByFirst = byFirst
        self.maxLength = maxLength
    }

    /// Reads vocab.txt (one piece per line, trailing whitespace trimmed, as HF reads it).
    public init(vocabularyFile path: String, addedTokens: [String: Int] = [:], maxLength: Int = defaultMaxLength) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TextEncoderError("cannot read the vocabulary \(path)", fix: "point at a BERT vocab.txt")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw TextEncoderError("the vocabulary \(path) is not UTF-8", fix: "point at a BERT vocab.txt")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            var s = Substring(line)
            while let last = s.unicodeScalars.last, last.properties.isWhitespace { s = Substring(s.unicodeScalars.dropLast()) }
            return String(s)
        }
        if lines.last == "" { lines.removeLast() }
        try self.init(vocabulary: lines, addedTokens: addedTokens, maxLength: maxLength)
    }

    /// The id of a vocabulary piece (bytes compared exactly), or nil.
    public func id(of piece: String) -> Int? { ids[Array(piece.utf8)] }

    /// `[CLS] pieces [SEP]` as ids, at most `maxLength` of them.
    public func encode(_ text: String) -> [Int] {
        var out = [classifierID]
        for segment in split(text) {
            switch segment {
            case .added(let id): out.append(id)
            case .text(let scalars):
                for word in Self.preTokenize(Self.normalize(scalars)) { wordPiece(word, into: &out) }
            }
            if out.count >= maxLength - 1 { break }
        }
        if out.count > maxLength - 1 { out.removeLast(out.count - (maxLength - 1)) }
        out.append(separatorID)
        return out
    }

    /// The pieces of `text` as strings, without [CLS]/[SEP] and without truncation (for
    /// reading and debugging); an added token appears as itself.
    public func tokens(_ text: String) -> [String] {
        var ids: [Int] = []
        var added: [Int: String] = [:]
        for (token, id) in addedTokens { added[id] = token }
        for segment in split(text) {
            switch segment {
            case .added(let id): ids.append(id)
            case .text(let scalars): for word in Self.preTokenize(Self.normalize(scalars)) { wordPiece(word, into: &ids) }
            }
        }
        return ids.map { added[$0] ?? (vocabulary.indices.contains($0) ? vocabulary[$0] : "<\($0)>") }
    }

    // MARK: - Added tokens

    enum Segment {
        case text([Unicode.Scalar])
        case added(Int)
    }

    /// Cuts the raw text at the added tokens (leftmost match, then the longest there).
    func split(_ text: String) -> [Segment] {
        let s = Array(text.unicodeScalars)
        var out: [Segment] = []
        var start = 0, i = 0
        while i < s.count {
            if let candidates = addedByFirst[s[i]],
               let hit = candidates.first(where: { c in
                   i + c.scalars.count <= s.count && s[i..<(i + c.scalars.count)].elementsEqual(c.scalars)
               }) {
                if start < i { out.append(.text(Array(s[start..<i]))) }
                out.append(.added(hit.id))
                i += hit.scalars.count
                start = i
            } else {
                i += 1
            }
        }
        if start < s.count { out.append(.text(Array(s[start...]))) }
        return out
    }

    // MARK: - BertNormalizer

    /// clean_text, handle_chinese_chars, strip_accents (NFD, drop Mn), lowercase — in that order.
    static func normalize(_ input: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var cleaned = String.UnicodeScalarView()
        for c in input {
            if c.value == 0 || c.value == 0xFFFD || isControl(c) { continue }
            if isWhitespace(c) {
                cleaned.append(" ")
            } else if isChineseCharacter(c) {
                cleaned.append(" "); cleaned.append(c); cleaned.append(" ")
            } else {
                cleaned.append(c)
            }
        }
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(cleaned.count)
        for c in String(cleaned).decomposedStringWithCanonicalMapping.unicodeScalars
        where c.properties.generalCategory != .nonspacingMark {
            if c.isASCII {
                out.append(c.value >= 65 && c.value <= 90 ? Unicode.Scalar(c.value + 32)! : c)
            } else {
                out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return out
    }

    /// Control characters as BERT defines them: categories C*, except \t \n \r.
    static func isControl(_ c: Unicode.Scalar) -> Bool {
        if c == "\t" || c == "\n" || c == "\r" { return false }
        switch c.properties.generalCategory {
        case .control, .format, .unassigned, .privateUse, .surrogate: return true
        default: return false
        }
    }

    /// \t \n \r and the White_Space property (Rust's `char::is_whitespace`).
    static func isWhitespace(_ c: Unicode.Scalar) -> Bool {
        c == "\t" || c == "\n" || c == "\r" || c.properties.isWhitespace
    }

    /// The CJK Unified Ideographs blocks BERT puts spaces around.
    static func isChineseCharacter(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F: return true
        default: return false
        }
    }

    // MARK: - BertPreTokenizer

    /// BERT's punctuation: the ASCII punctuation ranges and every Unicode P* category.
    static func isPunctuation(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 33...47, 58...64, 91...96, 123...126: return true
        default: break
        }
        switch c.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    /// Words: runs between whitespace, each punctuation character a word of its own.
    static func preTokenize(_ s: [Unicode.Scalar]) -> [ArraySlice<Unicode.Scalar>] {
        var words: [ArraySlice<Unicode.Scalar>] = []
        var start = 0
        for (i, c) in s.enumerated() {
            let space = isWhitespace(c), punct = !space && isPunctuation(c)
            guard space || punct else { continue }
            if start < i { words.append(s[start..<i]) }
            if punct { words.append(s[i...i]) }
            start = i + 1
        }
        if start < s.count { words.append(s[start...]) }
        return words
    }

    // MARK: - WordPiece

    /// Appends the word's pieces (greedy longest match first), or [UNK] for the whole word.
    func wordPiece(_ word: ArraySlice<Unicode.Scalar>, into out: inout [Int]) {
        let chars = Array(word)
        if chars.count > Self.maxCharactersPerWord { out.append(unknownID); return }
        // UTF-8 byte offset of every scalar boundary, so substrings are byte slices.
        var bytes: [UInt8] = []
        var offsets = [0]
        for c in chars {
            bytes.append(contentsOf: String(c).utf8)
            offsets.append(bytes.count)
        }
        let mark = out.count
        var start = 0
        while start < chars.count {
            var end = chars.count
            var found: Int?
            while end > start {
                var key = start > 0 ? [UInt8]("##".utf8) : []
                key.append(contentsOf: bytes[offsets[start]..<offsets[end]])
                if let id = ids[key] { found = id; break }
                end -= 1
            }
            guard let id = found else {
                out.removeLast(out.count - mark)
                out.append(unknownID)
                return
            }
            out.append(id)
            start = end
        }
    }
}

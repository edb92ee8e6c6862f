import Foundation

/// The fields of HF's BERT config.json the encoder uses. Anything the encoder does not
/// implement (another activation, relative positions) is refused by name, not ignored.
public struct BertConfig: Sendable, Equatable {
    public var vocabularySize: Int
    public var hidden: Int
    public var layers: Int
    public var heads: Int
    public var intermediate: Int
    public var maxPositions: Int
    public var typeVocabularySize: Int
    public var layerNormEps: Float

    /// all-MiniLM-L6-v2's config.
    public static let miniLM = BertConfig(vocabularySize: 30522, hidden: 384, layers: 6, heads: 12, intermediate: 1536,
                                          maxPositions: 512, typeVocabularySize: 2, layerNormEps: 1e-12)

    public init(vocabularySize: Int, hidden: Int, layers: Int, heads: Int, intermediate: Int,
                maxPositions: Int, typeVocabularySize: Int = 2, layerNormEps: Float = 1e-12) {
        self.vocabularySize = vocabularySize
        self.hidden = hidden
        self.layers = layers
        self.heads = heads
        self.intermediate = intermediate
        self.maxPositions = maxPositions
        self.typeVocabularySize = typeVocabularySize
        self.layerNormEps = layerNormEps
    }

    /// Size of one attention head.
    public var headSize: Int { hidden / heads }

    /// Reads a HF config.json.
    public init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TextEncoderError("cannot read the BERT config \(path)", fix: "point at the model folder's config.json")
        }
        try self.init(json: data, source: path)
    }

    public init(json data: Data, source: String = "config.json") throws {
        guard let object = try? JSONSerialization.jsonObject(with: data), let dict = object as? [String: Any] else {
            throw TextEncoderError("\(source) is not a JSON object", fix: "point at the model folder's config.json")
        }
        func int(_ key: String) throws -> Int {
            guard let v = dict[key] as? NSNumber, v.doubleValue == v.doubleValue.rounded(), v.intValue > 0 else {
                throw TextEncoderError("\(source): `\(key)` is missing or not a positive integer", fix: "use a HF BertModel config.json")
            }
            return v.intValue
        }
        if let act = dict["hidden_act"] as? String, act != "gelu" {
            throw TextEncoderError("\(source): hidden_act \"\(act)\" is not supported", fix: "only BERT's exact erf GELU (\"gelu\") is implemented")
        }
        if let pos = dict["position_embedding_type"] as? String, pos != "absolute" {
            throw TextEncoderError("\(source): position_embedding_type \"\(pos)\" is not supported", fix: "only absolute positions are implemented")
        }
        self.init(vocabularySize: try int("vocab_size"), hidden: try int("hidden_size"), layers: try int("num_hidden_layers"),
                  heads: try int("num_attention_heads"), intermediate: try int("intermediate_size"),
                  maxPositions: try int("max_position_embeddings"),
                  typeVocabularySize: (dict["type_vocab_size"] as? NSNumber)?.intValue ?? 2,
                  layerNormEps: (dict["layer_norm_eps"] as? NSNumber)?.floatValue ?? 1e-12)
        guard hidden % heads == 0 else {
            throw TextEncoderError("\(source): hidden_size \(hidden) is not a multiple of num_attention_heads \(heads)", fix: "use a HF BertModel config.json")
        }
    }
}

import DiT
import Foundation
import Formats
import Tensors

/// Lays out named tensors one after another in a flat buffer.
struct FactorLayoutBuilder {
    private(set) var tensors: [FactorTensor] = []
    private(set) var count = 0

    /// Appends a tensor and returns its offset.
    @discardableResult
    mutating func add(_ name: String, _ shape: [Int]) -> Int {
        let offset = count
        tensors.append(FactorTensor(name: name, offset: offset, shape: shape))
        count += shape.reduce(1, *)
        return offset
    }
}

/// The metadata and checks shared by the FINE and KIND factor files.
enum FactorFile {
    static func json<T: Encodable>(_ value: T) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = .sortedKeys  // same bytes in every process
        return String(decoding: try! enc.encode(value), as: UTF8.self)
    }

    /// The metadata of a factor file: format, method, the host config and the method's settings.
    static func metadata<S: Encodable>(method: LearngeneMethod, config: DiTConfig, settings: S, ranks: [BlockMatrix: Int]) -> [String: String] {
        [
            "format": "pt",
            "learngene.method": method.rawValue,
            "learngene.config": json(config),
            "learngene.settings": json(settings),
            "learngene.rank": BlockMatrix.allCases.map { "\($0.shortName):\(ranks[$0]!)" }.joined(separator: ","),
        ]
    }

    /// The differences between two configs, by field (for refusal messages).
    static func differences(_ a: DiTConfig, _ b: DiTConfig) -> [String] {
        var out: [String] = []
        func check<T: Equatable>(_ name: String, _ x: T, _ y: T) { if x != y { out.append("\(name) \(x) vs \(y)") } }
        check("input_size", a.inputSize, b.inputSize); check("patch_size", a.patchSize, b.patchSize)
        check("in_channels", a.inChannels, b.inChannels); check("hidden_size", a.hiddenSize, b.hiddenSize)
        check("depth", a.depth, b.depth); check("num_heads", a.numHeads, b.numHeads)
        check("num_classes", a.numClasses, b.numClasses); check("mlp_ratio", a.mlpRatio, b.mlpRatio)
        check("class_dropout_prob", a.classDropoutProb, b.classDropoutProb)
        check("frequency_embedding_size", a.frequencyEmbeddingSize, b.frequencyEmbeddingSize)
        return out
    }

    /// Checks a file's method and config (against `expected`, when given) and decodes its
    /// config and settings.
    static func header<S: Decodable>(_ file: SafeTensors.File, method: LearngeneMethod, expected: DiTConfig?,
                                     settings: S.Type) throws -> (DiTConfig, S) {
        let found = file.metadata["learngene.method"]
        guard found == method.rawValue else {
            let what = found.map { "a \($0.uppercased()) learngene" } ?? "no learngene (metadata learngene.method missing)"
            let how = found.flatMap(LearngeneMethod.init(rawValue:)).map { "load it as \($0.rawValue.uppercased())" } ?? "pass a file written by a learngene condense stage"
            throw LearngeneError("the file holds \(what), not a \(method.rawValue.uppercased()) one; \(how)")
        }
        let dec = JSONDecoder()
        guard let cj = file.metadata["learngene.config"], let config = try? dec.decode(DiTConfig.self, from: Data(cj.utf8)) else {
            throw LearngeneError("the \(method.rawValue.uppercased()) file has no readable learngene.config metadata; re-export it")
        }
        let configProblems = config.problems()
        if !configProblems.isEmpty {
            throw LearngeneError("the \(method.rawValue.uppercased()) file's learngene.config is unusable: \(configProblems.joined(separator: "; ")); re-export it")
        }
        if let expected, expected != config {
            throw LearngeneError("the \(method.rawValue.uppercased()) file was made for another model (\(differences(config, expected).joined(separator: ", ")), file vs asked); use the learngene condensed for this model, or ask for the file's config")
        }
        guard let sj = file.metadata["learngene.settings"], let s = try? dec.decode(S.self, from: Data(sj.utf8)) else {
            throw LearngeneError("the \(method.rawValue.uppercased()) file has no readable learngene.settings metadata; re-export it")
        }
        return (config, s)
    }

    /// Copies every tensor of `tensors` from the file into `params` (any float dtype,
    /// converted to F32), refusing missing, misshapen or unexpected tensors.
    static func read(_ file: SafeTensors.File, tensors: [FactorTensor], into params: Tensor, method: LearngeneMethod) throws {
        let name = method.rawValue.uppercased()
        for t in tensors {
            guard let e = file[t.name] else {
                throw LearngeneError("the \(name) file lacks tensor \(t.name) (its settings promise it); the file is truncated or from another version")
            }
            guard e.shape == t.shape else {
                throw LearngeneError("\(name) tensor \(t.name) has shape \(e.shape), its settings say \(t.shape); the file is inconsistent, re-export it")
            }
            let v = e.floats()
            v.withUnsafeBufferPointer { (params.data + t.offset).update(from: $0.baseAddress!, count: t.count) }
        }
        let known = Set(tensors.map(\.name))
        if let extra = file.tensors.keys.sorted().first(where: { !known.contains($0) }) {
            throw LearngeneError("the \(name) file has an unexpected tensor \(extra); it was written with other settings or by another tool")
        }
    }
}

extension BlockMatrix {
    /// Index of (matrix, layer) in per-(matrix, layer) tables.
    func key(layer l: Int) -> Int { l * BlockMatrix.allCases.count + rawValue }
}

import Foundation
import Formats
@testable import DiT

/// Loads one of the DiT reference fixtures copied from ../shared/fixtures/dit-reference.
func loadFixture(_ name: String) throws -> SafeTensors.File {
    guard let path = Bundle.module.path(forResource: name, ofType: "safetensors", inDirectory: "Fixtures") else {
        struct MissingFixture: Error { var name: String }
        throw MissingFixture(name: name)
    }
    return try SafeTensors.read(contentsOf: path)
}

/// Largest absolute difference and largest relative difference (|Δ| / max(|ref|, 1e-6)).
struct Difference: CustomStringConvertible {
    var name: String
    var maxAbs: Double
    var maxRel: Double
    var refScale: Double
    var description: String {
        "\(name.padding(toLength: 48, withPad: " ", startingAt: 0)) max|Δ|=\(String(format: "%.3e", maxAbs))  max rel=\(String(format: "%.3e", maxRel))  max|ref|=\(String(format: "%.3e", refScale))"
    }
}

func difference(_ name: String, _ ours: UnsafeBufferPointer<Float>, _ ref: [Float]) -> Difference {
    precondition(ours.count == ref.count, "\(name): \(ours.count) values vs \(ref.count)")
    var maxAbs = 0.0, maxRel = 0.0, scale = 0.0
    for i in 0..<ref.count {
        let d = abs(Double(ours[i]) - Double(ref[i]))
        maxAbs = max(maxAbs, d)
        maxRel = max(maxRel, d / max(abs(Double(ref[i])), 1e-6))
        scale = max(scale, abs(Double(ref[i])))
    }
    return Difference(name: name, maxAbs: maxAbs, maxRel: maxRel, refScale: scale)
}

func difference(_ name: String, _ ours: [Float], _ ref: [Float]) -> Difference {
    ours.withUnsafeBufferPointer { difference(name, $0, ref) }
}

/// The model config stored in a fixture's `config` metadata.
func fixtureConfig(_ f: SafeTensors.File) throws -> DiTConfig {
    struct Raw: Decodable {
        var input_size, patch_size, in_channels, hidden_size, depth, num_heads, num_classes: Int
        var class_dropout_prob: Float
    }
    let raw = try JSONDecoder().decode(Raw.self, from: Data(f.metadata["config"]!.utf8))
    return DiTConfig(inputSize: raw.input_size, patchSize: raw.patch_size, inChannels: raw.in_channels,
                     hiddenSize: raw.hidden_size, depth: raw.depth, numHeads: raw.num_heads,
                     numClasses: raw.num_classes, classDropoutProb: raw.class_dropout_prob)
}

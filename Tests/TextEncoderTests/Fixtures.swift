import Testing
import RealWeights
import Foundation
import Formats
@testable import TextEncoder

/// Where the committed fixtures are (Tools/make_minilm_fixtures.py writes them), and the real
/// model's folder when it is installed.
enum Fixtures {
    static let folder: String = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.path
    static let tiny = folder + "/tiny"
    static let real = folder + "/real"
    /// The package root (three levels above this file), where `models/` may hold the weights.
    static let repositoryRoot: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// The installed all-MiniLM-L6-v2 folder; without it the calling test is skipped (and
    /// fails under CI=true), see `RealWeights`.
    static func realFolder(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        try RealWeights.require("the all-MiniLM-L6-v2 model", sourceLocation: sourceLocation) { try MiniLM.locate(root: repositoryRoot) }
    }

    /// reference.json of a model fixture.
    struct Reference: Decodable {
        var sentences: [String]
        var ids: [[Int]]
        var override_row: Int
        var override_sentences: [String]
        var override_ids: [[Int]]
    }

    static func reference(_ folder: String) throws -> (Reference, SafeTensors.File) {
        let json = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/reference.json")))
        return (json, try SafeTensors.read(contentsOf: folder + "/reference.safetensors"))
    }

    /// Rows of a [rows, cols] entry.
    static func rows(_ file: SafeTensors.File, _ name: String) -> [[Float]] {
        guard let e = file[name] else { return [] }
        let v = e.floats(), cols = e.shape.last ?? 1
        return stride(from: 0, to: v.count, by: cols).map { Array(v[$0..<($0 + cols)]) }
    }

    static func maxAbsDifference(_ a: [[Float]], _ b: [[Float]]) -> Float {
        precondition(a.count == b.count)
        return zip(a, b).map { x, y in
            precondition(x.count == y.count)
            return zip(x, y).map { abs($0 - $1) }.max() ?? 0
        }.max() ?? 0
    }

    static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        var ab = 0.0, aa = 0.0, bb = 0.0
        for (x, y) in zip(a, b) { ab += Double(x) * Double(y); aa += Double(x) * Double(x); bb += Double(y) * Double(y) }
        return ab / (aa * bb).squareRoot()
    }
}

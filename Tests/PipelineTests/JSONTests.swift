import Testing
@testable import Pipeline

@Suite struct JSONTests {
    @Test func parsesAndWritesRoundTrip() throws {
        let text = #"{"b": [1, 2.5, "x\n\u00e9", true, null], "a": {"z": -3, "y": 1e-8}}"#
        let v = try JSONValue.parse(text)
        #expect(v["b"]?.arrayValue?.count == 5)
        #expect(v["a"]?["z"]?.intValue == -3)
        #expect(v["a"]?["y"]?.doubleValue == 1e-8)
        #expect(try JSONValue.parse(v.compact) == v)
        #expect(try JSONValue.parse(v.pretty) == v)
        // Key order is kept.
        if case let .object(pairs) = v { #expect(pairs.map(\.0) == ["b", "a"]) }
    }

    @Test func refusesDuplicatesAndJunk() {
        #expect(throws: ConfigNode.ParseError.self) { try JSONValue.parse(#"{"a": 1, "a": 2}"#) }
        #expect(throws: ConfigNode.ParseError.self) { try JSONValue.parse(#"{"a": 1,}"#) }
        #expect(throws: ConfigNode.ParseError.self) { try JSONValue.parse(#"{"a": 1} x"#) }
        #expect(throws: ConfigNode.ParseError.self) { try JSONValue.parse(#"{"a": "unterminated}"#) }
    }

    @Test func yamlWriterQuotesWhatYAMLWouldMisread() {
        #expect(YAMLWriter.scalar(.string("yes")) == "\"yes\"")
        #expect(YAMLWriter.scalar(.string("123")) == "\"123\"")
        #expect(YAMLWriter.scalar(.string("fashion-mnist")) == "fashion-mnist")
        #expect(YAMLWriter.scalar(.string("DiT-S/2")) == "DiT-S/2")
        #expect(YAMLWriter.scalar(.double(1e-4)) == "0.0001")
        #expect(YAMLWriter.scalar(.double(2)) == "2.0")
    }
}

import Testing
@testable import Formats

@Suite struct CSVTests {
    private func parse(_ text: String) throws -> NumericTable { try CSV.parseNumeric(Array(text.utf8), name: "t.csv") }

    @Test func readsNumbersInTheirUsualSpellings() throws {
        let t = try parse("0,255,-3\r\n1.5, 2e3 ,\"7\"\n\n  \n0.000000000000000000e+00,+4,-0.25\n")
        #expect(t.columns == 3 && t.rows == 3)
        #expect(t.values == [0, 255, -3, 1.5, 2000, 7, 0, 4, -0.25])
        #expect(t.lines == [1, 2, 5])  // blank lines skipped but counted
        #expect(t.header == nil)
        #expect(Array(t.row(1)) == [1.5, 2000, 7])
    }

    @Test func takesANamedFirstLineAsHeaderAndSkipsABOM() throws {
        let t = try parse("\u{FEFF}pixel0,pixel1,label\n1,2,3\n")
        #expect(t.header == ["pixel0", "pixel1", "label"])
        #expect(t.values == [1, 2, 3] && t.lines == [2])
        #expect(try parse("").rows == 0)
    }

    @Test func wrongWidthNamesFileAndLine() {
        #expect { try parse("1,2,3\n4,5,6\n7,8\n") } throws: { "\($0)".hasPrefix("t.csv: line 3: 2 fields, but line 1 has 3") }
        #expect { try parse("a,b\n1,2\n3,4,5\n") } throws: { "\($0)".hasPrefix("t.csv: line 3: 3 fields, but line 1 has 2") }
    }

    @Test func badFieldsNameLineAndColumn() {
        #expect { try parse("1,2\n3,x\n") } throws: { "\($0)".hasPrefix("t.csv: line 2, column 2: \"x\" is not a finite number") }
        #expect { try parse("1,2\n3,\n") } throws: { "\($0)".hasPrefix("t.csv: line 2, column 2: empty field") }
        #expect { try parse("1,2\nnan,1\n") } throws: { "\($0)".contains("line 2, column 1") }
        #expect { try parse("1,2\n1e999,1\n") } throws: { "\($0)".contains("not a finite number") }
        #expect { try parse("1,2\n1-2,1\n") } throws: { "\($0)".contains("line 2, column 1") }
    }
}

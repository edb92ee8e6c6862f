import Foundation
import Formats
import Images

/// Gray images with class labels, decoded from a dataset file (IDX, CSV), ready to be
/// written out as an ImageFolder by `DatasetImport.write`.
public struct ImportSource: Sendable {
    /// What this is and where it came from, for the README written beside the images.
    public var description: String
    /// Folder name of each class, index = label. They must sort (by code point, as
    /// `ImageFolder` sorts them) in label order, so the labels survive the round trip.
    public var classNames: [String]
    public var width: Int
    public var height: Int
    /// Label of item i.
    public var labels: [Int]
    /// Item i's pixels (`height × width` bytes, 0 black ... 255 white) start at i·width·height.
    public var pixels: [UInt8]
    /// File name stem of item i (e.g. `train-00042`): names the source row, so any image can
    /// be traced back to the file it came from.
    public var itemNames: @Sendable (Int) -> String
    /// How `itemNames` relate to the source file, for the README.
    public var itemNaming: String
    /// License or attribution text the data's terms require to travel with copies.
    public var license: String

    public init(description: String, classNames: [String], width: Int, height: Int, labels: [Int], pixels: [UInt8],
                license: String, itemNaming: String, itemNames: @escaping @Sendable (Int) -> String) {
        self.description = description
        self.classNames = classNames
        self.width = width
        self.height = height
        self.labels = labels
        self.pixels = pixels
        self.license = license
        self.itemNaming = itemNaming
        self.itemNames = itemNames
    }

    public var count: Int { labels.count }

    public func image(_ i: Int) -> Image {
        let n = width * height
        return Image(width: width, height: height, channels: 1, pixels: Array(pixels[(i * n)..<((i + 1) * n)]))
    }
}

/// Which images to take and where to put them.
public struct ImportOptions: Sendable {
    /// The ImageFolder to create (`<output>/<class>/<item>.png`).
    public var output: String
    /// Images per class; nil takes every one.
    public var perClass: Int?
    /// Picks which images are taken when `perClass` is less than a class has.
    public var seed: UInt64
    /// Replace `output` if it exists (otherwise that is an error).
    public var replace: Bool
    /// The command that made the folder, recorded in its README.
    public var commandLine: String?

    public init(output: String, perClass: Int? = nil, seed: UInt64 = 0, replace: Bool = false, commandLine: String? = nil) {
        self.output = output
        self.perClass = perClass
        self.seed = seed
        self.replace = replace
        self.commandLine = commandLine
    }
}

/// What an import wrote.
public struct ImportReport: Sendable, Equatable, CustomStringConvertible {
    public var output: String
    public var classNames: [String]
    /// Images written per class (index = label).
    public var written: [Int]
    /// Images the source has per class.
    public var available: [Int]

    public var total: Int { written.reduce(0, +) }

    public var description: String {
        var lines = ["wrote \(total) images in \(classNames.count) classes to \(output)"]
        for (c, name) in classNames.enumerated() {
            lines.append("  \(name): \(written[c]) of \(available[c])")
        }
        return lines.joined(separator: "\n")
    }
}

/// Turns decoded datasets into ImageFolders of PNGs.
///
/// The folder appears all at once: images are written into a hidden sibling folder
/// (`.<name>.import-<pid>`, which `ImageFolder` and the inbox scanner skip as hidden) and
/// renamed into place at the end, so a daemon watching `Inbox/datasets/` never sees half a
/// dataset, and a failed import leaves nothing behind.
public enum DatasetImport {
    /// Writes `source` as an ImageFolder under `options.output`, with a README.md recording
    /// the source, the options and the license.
    ///
    /// `writeImage` is the PNG writer (swappable so tests can look at the exact pixels).
    @discardableResult
    public static func write(_ source: ImportSource, options: ImportOptions,
                             writeImage: (Image, String) throws -> Void = { try ImageCodec.writePNG($0, to: $1) }) throws -> ImportReport {
        let fm = FileManager.default
        let output = options.output.hasSuffix("/") && options.output.count > 1 ? String(options.output.dropLast()) : options.output
        if let n = options.perClass, n < 1 {
            throw DataFileError(file: output, reason: "--per-class must be at least 1, not \(n)", hint: "leave it out to take every image")
        }
        try checkClassNames(source.classNames, output: output)
        guard source.width > 0, source.height > 0, source.pixels.count == source.count * source.width * source.height,
              source.labels.allSatisfy({ (0..<source.classNames.count).contains($0) }) else {
            throw DataFileError(file: output, reason: "inconsistent source: \(source.count) labels in 0..<\(source.classNames.count) expected, \(source.pixels.count) pixel bytes for \(source.width)×\(source.height) images")
        }
        let exists = fm.fileExists(atPath: output)
        if exists && !options.replace {
            throw DataFileError(file: output, reason: "already exists", hint: "pass --force to replace it, or choose another --output")
        }
        let url = URL(fileURLWithPath: output)
        let parent = url.deletingLastPathComponent().path, name = url.lastPathComponent
        do { try fm.createDirectory(atPath: parent, withIntermediateDirectories: true) } catch {
            throw DataFileError(file: parent, reason: "cannot create the folder: \(error.localizedDescription)", hint: "check the path and permissions")
        }
        let staging = parent + "/.\(name).import-\(getpid())"
        try? fm.removeItem(atPath: staging)  // left by an earlier run with our pid that was killed
        var done = false
        defer { if !done { try? fm.removeItem(atPath: staging) } }

        let chosen = select(labels: source.labels, classes: source.classNames.count, perClass: options.perClass, seed: options.seed)
        var report = ImportReport(output: output, classNames: source.classNames,
                                  written: Array(repeating: 0, count: source.classNames.count),
                                  available: Array(repeating: 0, count: source.classNames.count))
        for l in source.labels { report.available[l] += 1 }
        for (c, className) in source.classNames.enumerated() {
            let dir = staging + "/" + className
            do { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                throw DataFileError(file: dir, reason: "cannot create the folder: \(error.localizedDescription)", hint: "check the path and permissions")
            }
            for i in chosen[c] {
                let path = dir + "/" + source.itemNames(i) + ".png"
                do { try writeImage(source.image(i), path) } catch {
                    throw DataFileError(file: path, reason: "cannot write the image: \(error)")
                }
                report.written[c] += 1
            }
        }
        let readme = readmeText(source, options: options, report: report)
        do { try Data(readme.utf8).write(to: URL(fileURLWithPath: staging + "/README.md")) } catch {
            throw DataFileError(file: staging + "/README.md", reason: "cannot write: \(error.localizedDescription)")
        }

        // Swap into place: the old folder (if replacing) moves aside first, and is deleted
        // only once the new one is in.
        let aside = parent + "/.\(name).replaced-\(getpid())"
        if exists {
            guard rename(output, aside) == 0 else {
                throw DataFileError(file: output, reason: "cannot move the existing folder aside: \(String(cString: strerror(errno)))")
            }
        }
        guard rename(staging, output) == 0 else {
            let why = String(cString: strerror(errno))
            if exists { _ = rename(aside, output) }
            throw DataFileError(file: output, reason: "cannot rename the finished import into place: \(why)")
        }
        done = true
        if exists { try? fm.removeItem(atPath: aside) }
        AtomicFile.syncDirectory(parent)
        return report
    }

    /// The items taken for each class, in source order: all of them, or `perClass` drawn
    /// without replacement by a seeded shuffle of that class's items.
    ///
    /// Each class uses its own generator (SplitMix64 seeded from `seed` and the label), so a
    /// class's choice depends only on the seed and that class's items; the generator is
    /// spelled out here rather than borrowed from Tensors so that a seed keeps selecting the
    /// same images whatever happens to the training RNG.
    public static func select(labels: [Int], classes: Int, perClass: Int?, seed: UInt64) -> [[Int]] {
        var members = [[Int]](repeating: [], count: classes)
        for (i, l) in labels.enumerated() { members[l].append(i) }
        guard let perClass else { return members }
        return members.enumerated().map { c, items in
            guard items.count > perClass else { return items }
            var state = seed ^ (UInt64(c) &+ 1) &* 0x9E37_79B9_7F4A_7C15
            var pool = items
            // Partial Fisher–Yates: the first perClass slots end up a uniform sample.
            for k in 0..<perClass {
                let j = k + Int(splitMix64(&state) % UInt64(pool.count - k))
                pool.swapAt(k, j)
            }
            return pool[0..<perClass].sorted()
        }
    }

    /// SplitMix64 (Steele, Lea, Flood 2014; the seeder of xoshiro).
    static func splitMix64(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Class folder names must be usable as folder names and sort in label order.
    static func checkClassNames(_ names: [String], output: String) throws {
        for n in names where n.isEmpty || n.hasPrefix(".") || n.contains("/") {
            throw DataFileError(file: output, reason: "class name \"\(n)\" cannot be a folder name")
        }
        let sorted = names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        guard sorted == names else {
            throw DataFileError(file: output, reason: "class names \(names) do not sort in label order, so the labels would change when read back")
        }
    }

    static func readmeText(_ source: ImportSource, options: ImportOptions, report: ImportReport) -> String {
        var s = "# \(URL(fileURLWithPath: report.output).lastPathComponent)\n\n"
        s += "An ImageFolder (`<class>/<image>.png`, \(source.width)×\(source.height) gray) made by `learngene import`.\n\n"
        s += "- Source: \(source.description)\n"
        if let cmd = options.commandLine { s += "- Command: `\(cmd)`\n" }
        s += "- Images per class: \(options.perClass.map(String.init) ?? "all"), seed \(options.seed)"
        s += " (each class shuffled by SplitMix64 from the seed and its label; see `DatasetImport.select`)\n"
        s += "- Classes in label order (folder names sort in this order; label = position):\n"
        for (c, name) in source.classNames.enumerated() {
            s += "  \(c). `\(name)`: \(report.written[c]) of \(report.available[c]) images\n"
        }
        s += "- File names: \(source.itemNaming)\n"
        s += "\n## License\n\n\(source.license)\n"
        return s
    }
}

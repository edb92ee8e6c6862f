import Foundation
import Images
import Tensors

/// A labelled image dataset in the ImageFolder layout, `<root>/<class>/<image>`, decoded
/// and prepared once, kept in memory.
///
/// - **Classes** are the non-hidden subfolders of `root` (a symlink to a folder counts),
///   sorted by Unicode code point (byte order of UTF-8, Python's `sorted()` order, so labels
///   agree with torchvision's `ImageFolder`). Label = index in `classes`. A class whose
///   files all fail keeps its label, so one bad file never renumbers the others.
/// - **Images** are the files under a class folder (its subfolders too, as torchvision
///   walks them) whose extension is `.png`, `.jpg` or `.jpeg` in any case, sorted the same
///   way; the decoder then goes by content, not by name. Hidden files (`.DS_Store`) are
///   skipped silently; other files (and files directly in `root`) are listed in `ignored`.
/// - Each image is decoded with `ImageCodec` under `limits` and prepared by
///   `ImagePreparation` (channels, center crop, area/bilinear resize: the exact rule is
///   documented there).
/// - A file that fails lands in `failures` with its typed error: whether one bad file
///   skips or fails the dataset is the caller's decision (`requireNoFailures()` for the
///   strict one). Only a folder that cannot be a dataset at all throws.
public struct ImageFolder: Sendable {
    /// Folder levels walked below a class folder. The root's link check
    /// (`RootPaths.firstEscapingLink`) walks at least as deep, or a link below its limit
    /// would be read without being checked.
    public static let maxFolderDepth = 32

    public struct Sample: Sendable, Equatable {
        public var path: String
        public var label: Int
    }

    public struct Failure: Sendable, Equatable, CustomStringConvertible {
        public var path: String
        public var error: ImageError
        /// The reason in a few words (the error's description adds the path and a hint).
        public var reason: String { error.summary }
        public var description: String { error.description }
    }

    public let root: String
    public let preparation: ImagePreparation
    public let classes: [String]
    /// The images that were read, in class order then file order; `images` holds their pixels.
    public let samples: [Sample]
    public let failures: [Failure]
    /// Non-image files found (not hidden), relative to `root`.
    public let ignored: [String]
    /// The prepared pixels of `samples`, same order.
    public let images: ImageSet

    public var channels: Int { preparation.channels }
    public var resolution: Int { preparation.resolution }

    /// Reads `root`. Decoding runs on `Parallel.workers` threads; the result does not
    /// depend on how many.
    public init(root: String, channels: Int, resolution: Int, limits: ImageLimits = .init(),
                alpha: AlphaRule = .compositeOverWhite) throws(ImageFolderError) {
        guard channels == 1 || channels == 3 else { throw ImageFolderError(path: root, problem: .badSettings("channels must be 1 or 3, not \(channels)")) }
        guard resolution >= 1 && resolution <= 4096 else { throw ImageFolderError(path: root, problem: .badSettings("resolution must be in 1...4096, not \(resolution)")) }
        let preparation = ImagePreparation(channels: channels, resolution: resolution, alpha: alpha)
        self.root = root
        self.preparation = preparation

        let listing = try FolderListing(root: root)
        classes = listing.classes
        ignored = listing.ignored
        let files = listing.files
        if files.isEmpty { throw ImageFolderError(path: root, problem: .noImages(classes: listing.classes)) }

        // Decode and prepare every file once, in parallel; slot i belongs to file i only.
        let bytesPer = preparation.byteCount
        var pixels = [UInt8](repeating: 0, count: files.count * bytesPer)
        var errors = [ImageError?](repeating: nil, count: files.count)
        pixels.withUnsafeMutableBufferPointer { px in
            errors.withUnsafeMutableBufferPointer { errs in
                let out = UncheckedBox((px.baseAddress!, errs.baseAddress!))
                Parallel.forEach(files.count, costPerItem: Parallel.grain) { i in
                    do throws(ImageError) {
                        let image = try ImageCodec.decode(contentsOf: files[i].path, limits: limits)
                        preparation.prepare(image, into: out.value.0 + i * bytesPer)
                    } catch {
                        (out.value.1 + i).pointee = error
                    }
                }
            }
        }

        // Keep the images that decoded, compacting their pixels in place (no second copy
        // of what can be the largest array of the process).
        var samples = [Sample](), failures = [Failure]()
        pixels.withUnsafeMutableBufferPointer { px in
            for (i, file) in files.enumerated() {
                if let error = errors[i] {
                    failures.append(Failure(path: file.path, error: error))
                } else {
                    if samples.count != i {
                        (px.baseAddress! + samples.count * bytesPer).update(from: px.baseAddress! + i * bytesPer, count: bytesPer)
                    }
                    samples.append(file)
                }
            }
        }
        pixels.removeLast(pixels.count - samples.count * bytesPer)
        self.samples = samples
        self.failures = failures
        images = ImageSet(channels: channels, resolution: resolution, classes: listing.classes,
                          labels: samples.map(\.label), pixels: pixels)
    }

    /// Number of images read per class (index = label).
    public var countsPerClass: [Int] {
        var counts = [Int](repeating: 0, count: classes.count)
        for s in samples { counts[s.label] += 1 }
        return counts
    }

    /// Throws the first failure (with the total count) when any file failed: the policy
    /// for callers that want one bad file to fail the whole dataset.
    public func requireNoFailures() throws(ImageFolderError) {
        if let first = failures.first {
            throw ImageFolderError(path: root, problem: .badFiles(count: failures.count, first: first.error))
        }
    }
}

/// Why a folder could not be read as a dataset at all (per-file problems are
/// `ImageFolder.failures` instead).
public struct ImageFolderError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Problem: Sendable, Equatable {
        case notAFolder
        case unreadable(String)
        case noClasses
        case noImages(classes: [String])
        case badFiles(count: Int, first: ImageError)
        case badSettings(String)
        case incompatibleState(String)
    }

    public var path: String
    public var problem: Problem

    public var description: String {
        switch problem {
        case .notAFolder:
            "\(path): not a folder. Hint: a dataset is a folder with one subfolder per class (<root>/<class>/<image>.png|jpg)."
        case .unreadable(let why):
            "\(path): cannot be listed (\(why)). Hint: check the permissions."
        case .noClasses:
            "\(path): no class subfolders. Hint: put the images in <root>/<class>/ folders, one per class (a single class folder is fine)."
        case .noImages(let classes):
            "\(path): no .png/.jpg/.jpeg files in the class folders \(classes). Hint: images go in <root>/<class>/."
        case .badFiles(let count, let first):
            "\(path): \(count) image file\(count == 1 ? "" : "s") could not be read; the first: \(first)"
        case .badSettings(let why):
            "\(path): \(why)."
        case .incompatibleState(let why):
            "\(path): the saved data position does not fit this dataset (\(why)). Hint: resume with the dataset the checkpoint was made with, or start a new job."
        }
    }
}

/// The class folders and image files under a root, in label order.
struct FolderListing {
    var classes: [String] = []
    var files: [ImageFolder.Sample] = []
    var ignored: [String] = []

    static let imageExtensions: Set<String> = ["png", "jpg", "jpeg"]

    /// Python's `sorted()` order on names: by Unicode code point, i.e. UTF-8 byte order
    /// (Swift's `<` on String uses canonical equivalence instead).
    static func codePointOrder(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    init(root: String) throws(ImageFolderError) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
            throw ImageFolderError(path: root, problem: .notAFolder)
        }
        let top = try Self.entries(of: root)
        for name in top {
            let path = root + "/" + name
            if Self.isFolder(path) { classes.append(name) } else { ignored.append(name) }
        }
        if classes.isEmpty { throw ImageFolderError(path: root, problem: .noClasses) }
        for (label, name) in classes.enumerated() {
            try walk(root + "/" + name, relative: name, label: label, depth: 0)
        }
    }

    /// Non-hidden entries, sorted by code point.
    static func entries(of path: String) throws(ImageFolderError) -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: path)
                .filter { !$0.hasPrefix(".") }
                .sorted(by: codePointOrder)
        } catch {
            throw ImageFolderError(path: path, problem: .unreadable(error.localizedDescription))
        }
    }

    /// True for a folder, or a symlink to one.
    static func isFolder(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
    }

    static func isSymlink(_ path: String) -> Bool {
        (try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType) == .typeSymbolicLink
    }

    /// Collects image files under one class folder, depth first, in code-point order.
    /// Symlinked subfolders are not followed (a link cycle would never end).
    mutating func walk(_ folder: String, relative: String, label: Int, depth: Int) throws(ImageFolderError) {
        for name in try Self.entries(of: folder) {
            let path = folder + "/" + name
            if Self.isFolder(path) {
                if depth < ImageFolder.maxFolderDepth && !Self.isSymlink(path) {
                    try walk(path, relative: relative + "/" + name, label: label, depth: depth + 1)
                } else {
                    ignored.append(relative + "/" + name)
                }
            } else if Self.imageExtensions.contains((name as NSString).pathExtension.lowercased()) {
                files.append(ImageFolder.Sample(path: path, label: label))
            } else {
                ignored.append(relative + "/" + name)
            }
        }
    }
}

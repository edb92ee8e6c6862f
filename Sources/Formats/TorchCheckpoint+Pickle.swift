/// A restricted pickle machine for PyTorch state dicts.
///
/// A checkpoint is untrusted input, and Python's unpickler runs any code a pickle names
/// (`GLOBAL os system` + `REDUCE` is a shell command). This machine knows only the opcodes
/// `torch.save` emits for a state dict (protocol 2, plus the few protocol-4 ones a newer
/// writer may use) and only these callables:
///   - `collections.OrderedDict` (a state dict is one; also torch's empty backward-hooks),
///   - `torch._utils._rebuild_tensor`, `_rebuild_tensor_v2`, `_rebuild_parameter` (tensors),
///   - `torch.<Type>Storage` classes, only as the type inside a storage's persistent id,
///   - `torch.jit._pickle.build_intlist` (and the other `build_*list`s), which return their
///     list argument,
///   - TorchScript's `__torch__.<module> <Class>` classes, only as NEWOBJ with no arguments
///     followed by a BUILD with a dict: that is how `torch.jit.save` writes a module's
///     attributes (its code is a separate file, never read). Such an object is data, a dict.
/// Everything else is refused at the opcode that names it, with its byte offset: a GLOBAL
/// of another module (`os system`, `builtins eval`, `argparse Namespace`), any opcode not in
/// the list (INST, OBJ, NEWOBJ, EXT*, ...). Nothing is executed; calls are interpreted.
///
/// Every length is checked against the bytes that remain, every memo/stack index against
/// what exists, and the stack, memo and nesting have caps, so a malformed or hostile file
/// ends in an error that says where, never a crash or an unbounded allocation.
enum Pickle {
    /// A pickled value, as far as a state dict needs.
    indirect enum Value {
        case none
        case bool(Bool)
        case int(Int)
        /// A LONG1/LONG4 integer that does not fit Int: its little-endian two's-complement bytes.
        case bigInt([UInt8])
        case float(Double)
        case string(String)
        case bytes([UInt8])
        case tuple([Value])
        case list(ListBox)
        case dict(DictBox)
        /// A module.name reference that passed the allow-list; only callable through REDUCE.
        case global(module: String, name: String)
        case storage(StorageRef)
        case tensor(TensorRef)
        /// A TorchScript module object (`__torch__.<path> <Class>` built by NEWOBJ with no
        /// arguments); BUILD fills its attributes. Read as a dict: its submodules, tensors and
        /// plain attributes (a conv's stride) become dotted names like a state dict's.
        case module(type: String, DictBox)

        var kind: String {
            switch self {
            case .none: "None"
            case .bool: "bool"
            case .int, .bigInt: "int"
            case .float: "float"
            case .string: "str"
            case .bytes: "bytes"
            case .tuple(let t): "tuple of \(t.count)"
            case .list: "list"
            case .dict: "dict"
            case .global(let m, let n): "\(m).\(n)"
            case .storage: "storage"
            case .tensor: "tensor"
            case .module(let t, _): "TorchScript object \(t)"
            }
        }
    }

    /// Lists and dicts are mutable and shared through the memo (APPENDS after BINGET), so
    /// they are reference types, as in Python.
    final class ListBox { var items: [Value] = [] }
    final class DictBox { var items: [(key: Value, value: Value)] = [] }

    /// A storage named by a persistent id: `('storage', torch.XStorage, key, location, numel[, view])`.
    struct StorageRef {
        var dtype: SafeTensors.DType
        var typeName: String
        var key: String
        /// Elements the id declares.
        var numel: Int
        /// For a legacy storage view `(root_key, offset, size)`: the element offset into `key`.
        var viewOffset: Int = 0
    }

    /// A strided view of a storage.
    struct TensorRef {
        var storage: StorageRef
        var offset: Int
        var shape: [Int]
        var stride: [Int]
    }

    /// The storage classes torch pickles, by element type. torch writes the legacy typed
    /// name (`FloatStorage`) even for current untyped storages, so this is the whole list.
    static let storageTypes: [String: SafeTensors.DType] = [
        "FloatStorage": .f32, "DoubleStorage": .f64, "HalfStorage": .f16, "BFloat16Storage": .bf16,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8,
        "ByteStorage": .u8, "BoolStorage": .bool,
        "Float8_e5m2Storage": .f8e5m2, "Float8_e4m3fnStorage": .f8e4m3,
        "UInt16Storage": .u16, "UInt32Storage": .u32, "UInt64Storage": .u64,
    ]

    static let tensorRebuilders: Set<String> = ["_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter"]

    /// Caps that no state dict comes near (DiT-XL/2's has ~700 entries) but that keep a
    /// hostile file from making us allocate without bound.
    static let maxStack = 1 << 20
    static let maxMemo = 1 << 22

    /// Why a pickle was refused: the byte offset (in the whole file) and what was wrong.
    struct Failure: Error {
        var offset: Int
        var reason: String
        var hint: String?
    }

    /// Runs one pickle starting at `start` in `bytes`; returns its value and the offset just
    /// after its STOP. `base` is added to offsets in errors (the pickle's place in the file,
    /// when `bytes` is one zip entry). `persistentLoad` turns a persistent id into a value.
    static func load(_ bytes: UnsafeRawBufferPointer, from start: Int, base: Int = 0,
                     persistentLoad: ((Value, Int) throws(Failure) -> Value)? = nil) throws(Failure) -> (Value, Int) {
        var m = Machine(bytes: bytes, pos: start, base: base, persistentLoad: persistentLoad)
        let v: Value
        do throws(Failure) { v = try m.run() } catch {
            dismantle(m.stack + Array(m.memo.values))
            throw error
        }
        guard let reachable = boxes(of: v, maxDepth: maxDepth) else {
            dismantle([v] + m.stack + Array(m.memo.values))
            throw Failure(offset: m.pos, reason: "the pickle nests containers deeper than \(maxDepth) levels; a state dict is a few levels deep",
                          hint: "only state dicts of tensors are read")
        }
        dismantle(Array(m.memo.values), keeping: reachable)
        return (v, m.pos)
    }

    /// How deep lists, dicts and tuples may nest. Values are freed recursively (one stack
    /// frame per level), so a pickle of lists nested 100 000 deep, which loads fine with the
    /// machine's own stack, overflowed the thread's stack when it was released (found by
    /// fuzzing).
    static let maxDepth = 100

    /// Identity of a tuple's storage, so values shared through DUP or the memo are walked once.
    private static func identity(_ t: [Value]) -> UnsafeRawPointer? {
        t.withUnsafeBufferPointer { $0.baseAddress.map { UnsafeRawPointer($0) } }
    }

    /// The lists and dicts reachable from `root`, or nil if containers nest deeper than
    /// `maxDepth`. Iterative, and each shared container is walked once.
    static func boxes(of root: Value, maxDepth: Int) -> Set<ObjectIdentifier>? {
        var seen = Set<ObjectIdentifier>(), seenTuples = Set<UnsafeRawPointer>()
        var work: [(Value, Int)] = [(root, 0)]
        while let (v, d) = work.popLast() {
            switch v {
            case .tuple(let t):
                guard let id = identity(t), seenTuples.insert(id).inserted else { continue }
                if d >= maxDepth { return nil }
                for x in t { work.append((x, d + 1)) }
            case .list(let l):
                guard seen.insert(ObjectIdentifier(l)).inserted else { continue }
                if d >= maxDepth { return nil }
                for x in l.items { work.append((x, d + 1)) }
            case .dict(let dd):
                guard seen.insert(ObjectIdentifier(dd)).inserted else { continue }
                if d >= maxDepth { return nil }
                for (k, x) in dd.items { work.append((k, d + 1)); work.append((x, d + 1)) }
            default: break
            }
        }
        return seen
    }

    /// Empties lists and dicts (except `keeping`) without recursion, so releasing what a
    /// pickle built never recurses deeply (and reference cycles through the memo are broken).
    static func dismantle(_ roots: [Value], keeping: Set<ObjectIdentifier> = []) {
        var work = roots
        var seenTuples = Set<UnsafeRawPointer>()
        while let v = work.popLast() {
            switch v {
            case .tuple(let t):
                guard let id = identity(t), seenTuples.insert(id).inserted else { continue }
                work += t
            case .list(let l) where !keeping.contains(ObjectIdentifier(l)):
                work += l.items
                l.items = []
            case .dict(let d) where !keeping.contains(ObjectIdentifier(d)):
                for (k, x) in d.items { work.append(k); work.append(x) }
                d.items = []
            default: break
            }
        }
    }

    private struct Machine {
        let bytes: UnsafeRawBufferPointer
        var pos: Int
        let base: Int
        let persistentLoad: ((Value, Int) throws(Failure) -> Value)?
        var stack: [Value] = []
        var marks: [Int] = []
        var memo: [Int: Value] = [:]
        /// Offset of the opcode being run, for messages.
        var at = 0

        init(bytes: UnsafeRawBufferPointer, pos: Int, base: Int, persistentLoad: ((Value, Int) throws(Failure) -> Value)?) {
            self.bytes = bytes
            self.pos = pos
            self.base = base
            self.persistentLoad = persistentLoad
        }

        func fail(_ reason: String, hint: String? = nil) -> Failure {
            Failure(offset: base + at, reason: reason, hint: hint)
        }

        mutating func take(_ n: Int) throws(Failure) -> UnsafeRawBufferPointer {
            guard n >= 0, n <= bytes.count - pos else {
                throw fail("the pickle needs \(n) more bytes but the data ends after \(bytes.count - pos) (truncated file)",
                           hint: "copy the checkpoint again; it is cut short")
            }
            let r = UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + n)])
            pos += n
            return r
        }

        mutating func u8() throws(Failure) -> Int { Int(try take(1)[0]) }
        mutating func le(_ n: Int) throws(Failure) -> UInt64 {
            let b = try take(n)
            var v: UInt64 = 0
            for i in 0..<n { v |= UInt64(b[i]) << (8 * UInt64(i)) }
            return v
        }
        /// A length field that must fit in what remains of the data.
        mutating func length(_ n: Int) throws(Failure) -> Int {
            let v = try le(n)
            guard v <= UInt64(bytes.count - pos) else {
                throw fail("a length of \(v) bytes runs past the end of the data (\(bytes.count - pos) bytes left; truncated or damaged file)")
            }
            return Int(v)
        }
        mutating func utf8(_ n: Int) throws(Failure) -> String {
            let b = try take(n)
            guard let s = String(validating: b, as: UTF8.self) else { throw fail("a string is not valid UTF-8") }
            return s
        }
        /// A text line (GLOBAL's module and name), at most 256 bytes.
        mutating func line() throws(Failure) -> String {
            var end = pos
            while end < bytes.count, bytes[end] != 0x0A {
                end += 1
                if end - pos > 256 { throw fail("a GLOBAL name is longer than 256 bytes") }
            }
            guard end < bytes.count else { throw fail("a GLOBAL name has no line end (truncated file)") }
            let b = UnsafeRawBufferPointer(rebasing: bytes[pos..<end])
            pos = end + 1
            guard let s = String(validating: b, as: UTF8.self) else { throw fail("a GLOBAL name is not valid UTF-8") }
            return s
        }

        mutating func push(_ v: Value) throws(Failure) {
            guard stack.count < maxStack else { throw fail("the pickle stack grows past \(maxStack) entries") }
            stack.append(v)
        }
        mutating func pop() throws(Failure) -> Value {
            guard let v = stack.popLast(), stack.count >= (marks.last ?? 0) else {
                throw fail("an opcode pops from an empty stack (malformed pickle)")
            }
            return v
        }
        mutating func top() throws(Failure) -> Value {
            guard let v = stack.last, stack.count > (marks.last ?? 0) else { throw fail("an opcode needs a value on an empty stack (malformed pickle)") }
            return v
        }
        /// The values pushed since the last MARK, which is removed.
        mutating func popMark() throws(Failure) -> [Value] {
            guard let m = marks.popLast() else { throw fail("an opcode needs a MARK but there is none (malformed pickle)") }
            let items = Array(stack[m...])
            stack.removeSubrange(m...)
            return items
        }
        mutating func memoize(_ index: Int) throws(Failure) {
            guard index >= 0, index < maxMemo else { throw fail("memo index \(index) is beyond the \(maxMemo)-entry limit") }
            guard memo[index] != nil || memo.count < maxMemo else { throw fail("the memo grows past \(maxMemo) entries") }
            memo[index] = try top()
        }
        mutating func recall(_ index: Int) throws(Failure) {
            guard let v = memo[index] else { throw fail("memo entry \(index) is read before it is written (malformed pickle)") }
            try push(v)
        }

        mutating func run() throws(Failure) -> Value {
            while true {
                at = pos
                let op = try u8()
                switch op {
                case 0x80:  // PROTO
                    let p = try u8()
                    guard p <= 5 else { throw fail("pickle protocol \(p) is newer than any known (5)") }
                case 0x95:  // FRAME (protocol 4): a length prefix we need not act on
                    _ = try le(8)
                case 0x2E:  // STOP
                    let v = try pop()
                    guard stack.isEmpty, marks.isEmpty else { throw fail("the pickle stops with values left on the stack (malformed pickle)") }
                    return v
                case 0x28: // MARK
                    guard marks.count < 4096 else { throw fail("MARKs nest deeper than 4096") }
                    marks.append(stack.count)
                case 0x4E: try push(.none)  // NONE
                case 0x88: try push(.bool(true))  // NEWTRUE
                case 0x89: try push(.bool(false))  // NEWFALSE
                case 0x4B: try push(.int(try u8()))  // BININT1
                case 0x4D: try push(.int(Int(try le(2))))  // BININT2
                case 0x4A: try push(.int(Int(Int32(bitPattern: UInt32(try le(4))))))  // BININT
                case 0x8A, 0x8B:  // LONG1, LONG4
                    let n = op == 0x8A ? try u8() : try length(4)
                    guard n <= 64 else { throw fail("an integer of \(n) bytes is larger than any state dict holds") }
                    let b = [UInt8](try take(n))
                    try push(Machine.integer(b))
                case 0x47:  // BINFLOAT (big-endian)
                    let b = try take(8)
                    var v: UInt64 = 0
                    for i in 0..<8 { v = v << 8 | UInt64(b[i]) }
                    try push(.float(Double(bitPattern: v)))
                case 0x58: try push(.string(try utf8(try length(4))))  // BINUNICODE
                case 0x8C: try push(.string(try utf8(try u8())))  // SHORT_BINUNICODE
                case 0x8D: try push(.string(try utf8(try length(8))))  // BINUNICODE8
                case 0x54: try push(.string(try latin1(try length(4))))  // BINSTRING (Python 2 str)
                case 0x55: try push(.string(try latin1(try u8())))  // SHORT_BINSTRING
                case 0x42: try push(.bytes([UInt8](try take(try length(4)))))  // BINBYTES
                case 0x43: try push(.bytes([UInt8](try take(try u8()))))  // SHORT_BINBYTES
                case 0x8E: try push(.bytes([UInt8](try take(try length(8)))))  // BINBYTES8
                case 0x29: try push(.tuple([]))  // EMPTY_TUPLE
                case 0x74: try push(.tuple(try popMark()))  // TUPLE
                case 0x85: let a = try pop(); try push(.tuple([a]))  // TUPLE1
                case 0x86: let b = try pop(), a = try pop(); try push(.tuple([a, b]))  // TUPLE2
                case 0x87: let c = try pop(), b = try pop(), a = try pop(); try push(.tuple([a, b, c]))  // TUPLE3
                case 0x5D: try push(.list(ListBox()))  // EMPTY_LIST
                case 0x7D: try push(.dict(DictBox()))  // EMPTY_DICT
                case 0x6C:  // LIST
                    let l = ListBox(); l.items = try popMark(); try push(.list(l))
                case 0x61:  // APPEND
                    let v = try pop()
                    guard case .list(let l) = try top() else { throw fail("APPEND to a \(try top().kind), not a list") }
                    l.items.append(v)
                case 0x65:  // APPENDS
                    let items = try popMark()
                    guard case .list(let l) = try top() else { throw fail("APPENDS to a \(try top().kind), not a list") }
                    l.items += items
                case 0x73:  // SETITEM
                    let v = try pop(), k = try pop()
                    guard case .dict(let d) = try top() else { throw fail("SETITEM on a \(try top().kind), not a dict") }
                    d.items.append((k, v))
                case 0x75:  // SETITEMS
                    let items = try popMark()
                    guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of values (malformed pickle)") }
                    guard case .dict(let d) = try top() else { throw fail("SETITEMS on a \(try top().kind), not a dict") }
                    for i in stride(from: 0, to: items.count, by: 2) { d.items.append((items[i], items[i + 1])) }
                case 0x71: try memoize(try u8())  // BINPUT
                case 0x72: try memoize(Int(try le(4)))  // LONG_BINPUT
                case 0x94: try memoize(memo.count)  // MEMOIZE
                case 0x68: try recall(try u8())  // BINGET
                case 0x6A: try recall(Int(try le(4)))  // LONG_BINGET
                case 0x30: _ = try pop()  // POP
                case 0x31: _ = try popMark()  // POP_MARK
                case 0x32: try push(try top())  // DUP
                case 0x63:  // GLOBAL
                    let module = try line(), name = try line()
                    try push(try global(module, name))
                case 0x93:  // STACK_GLOBAL
                    guard case .string(let name) = try pop(), case .string(let module) = try pop() else {
                        throw fail("STACK_GLOBAL needs two strings")
                    }
                    try push(try global(module, name))
                case 0x51:  // BINPERSID
                    let pid = try pop()
                    guard let persistentLoad else {
                        throw fail("a persistent id (external storage) appears in a pickle that may not have one")
                    }
                    try push(try persistentLoad(pid, base + at))
                case 0x52:  // REDUCE
                    let args = try pop(), callable = try pop()
                    try push(try reduce(callable, args))
                case 0x81:  // NEWOBJ: only a TorchScript class with no arguments
                    let args = try pop(), cls = try pop()
                    guard case .global(let module, let name) = cls, Machine.isTorchScriptClass(module) else {
                        throw fail("NEWOBJ of a \(cls.kind); only TorchScript module classes (__torch__.*) may be instantiated",
                                   hint: "only state dicts and TorchScript archives of tensors can be imported")
                    }
                    guard case .tuple(let a) = args, a.isEmpty else {
                        throw fail("NEWOBJ of \(module).\(name) with arguments (\(args.kind)); TorchScript writes them without")
                    }
                    try push(.module(type: module + "." + name, DictBox()))
                case 0x62:  // BUILD: set an object's state
                    let state = try pop()
                    switch try top() {
                    case .module(let type, let attributes):
                        // A TorchScript module's attributes: a dict of name → value, set once.
                        guard case .dict(let d) = state else { throw fail("BUILD sets the state of \(type) with a \(state.kind), not a dict") }
                        guard attributes.items.isEmpty else { throw fail("BUILD sets the state of \(type) twice") }
                        attributes.items = d.items
                    case .dict:
                        // An OrderedDict's instance attributes: state_dict's `_metadata` (module
                        // versions). Not tensors, so dropped.
                        break
                    case .tensor:
                        // A tensor subclass's attributes (`_rebuild_parameter_with_state`);
                        // the data is what matters.
                        break
                    default:
                        throw fail("BUILD sets the state of a \(try top().kind) (with a \(state.kind)); only dicts and tensors take one in a state dict")
                    }
                default:
                    throw fail(String(format: "pickle opcode 0x%02X", op) + " (\(Machine.opcodeName(op))) is not one a state dict needs; refused",
                               hint: "only plain state dicts (tensors in dicts and lists) can be imported; save `model.state_dict()` rather than the model object")
                }
            }
        }

        mutating func latin1(_ n: Int) throws(Failure) -> String {
            // Python 2 `str` was bytes; torch's old files use it for ASCII keys only.
            let b = try take(n)
            var s = String.UnicodeScalarView()
            for x in b { s.append(Unicode.Scalar(x)) }
            return String(s)
        }

        static func integer(_ b: [UInt8]) -> Value {
            if b.isEmpty { return .int(0) }
            if b.count <= 8 {
                var v: UInt64 = 0
                for (i, x) in b.enumerated() { v |= UInt64(x) << (8 * UInt64(i)) }
                if b.count < 8, b.last! & 0x80 != 0 { v |= ~0 << (8 * UInt64(b.count)) }  // sign-extend
                return .int(Int(Int64(bitPattern: v)))
            }
            return .bigInt(b)
        }

        func global(_ module: String, _ name: String) throws(Failure) -> Value {
            let ok: Bool
            switch module {
            case "collections": ok = name == "OrderedDict"
            case "torch._utils": ok = tensorRebuilders.contains(name)
            case "torch": ok = storageTypes[name] != nil
            case "torch.jit._pickle": ok = Machine.listBuilders.contains(name)
            default: ok = Machine.isTorchScriptClass(module) && Machine.isIdentifier(name)
            }
            guard ok else {
                let hint: String
                if module == "torch", name.hasSuffix("Storage") {
                    hint = "storages of type \(name) are not supported (supported: \(storageTypes.keys.sorted().joined(separator: ", ")))"
                } else {
                    hint = "a checkpoint is untrusted input: only state dicts of tensors are read, never code; save `model.state_dict()` (or the `ema` dict) alone"
                }
                throw fail("the pickle references \(module).\(name), which a state dict does not need; refused", hint: hint)
            }
            return .global(module: module, name: name)
        }

        func reduce(_ callable: Value, _ args: Value) throws(Failure) -> Value {
            guard case .global(let module, let name) = callable else {
                throw fail("REDUCE calls a \(callable.kind), not a known function")
            }
            guard case .tuple(let a) = args else { throw fail("REDUCE of \(module).\(name) with a \(args.kind) instead of an argument tuple") }
            switch (module, name) {
            case ("collections", "OrderedDict"):
                guard a.isEmpty else { throw fail("OrderedDict(...) with arguments; torch pickles it empty") }
                return .dict(DictBox())
            case ("torch.jit._pickle", _):
                // build_intlist([1, 2]) and friends: TorchScript's typed lists, returned as is.
                guard a.count == 1, case .list = a[0] else { throw fail("\(name) needs one list argument, got \(a.count) arguments") }
                return a[0]
            case ("torch._utils", "_rebuild_parameter"):
                guard a.count >= 1, case .tensor = a[0] else { throw fail("_rebuild_parameter without a tensor") }
                return a[0]
            case ("torch._utils", _):
                // _rebuild_tensor(storage, offset, size, stride) and _v2(..., requires_grad, hooks[, metadata]).
                guard a.count >= 4, case .storage(let s) = a[0] else {
                    throw fail("\(name) needs (storage, offset, size, stride), got \(a.count) arguments")
                }
                guard case .int(let offset) = a[1], offset >= 0 else { throw fail("\(name): storage offset is not a non-negative integer") }
                let shape = try ints(a[2], "size"), stride = try ints(a[3], "stride")
                guard shape.count == stride.count, shape.count <= 32 else {
                    throw fail("\(name): size has \(shape.count) dimensions but stride has \(stride.count) (at most 32)")
                }
                guard shape.allSatisfy({ $0 >= 0 }), stride.allSatisfy({ $0 >= 0 }) else {
                    throw fail("\(name): negative size \(shape) or stride \(stride)")
                }
                return .tensor(TensorRef(storage: s, offset: offset, shape: shape, stride: stride))
            default:
                throw fail(Machine.isTorchScriptClass(module)
                    ? "REDUCE of the TorchScript class \(module).\(name); such classes are only instantiated empty (NEWOBJ)"
                    : "REDUCE of \(module).\(name), which only serves as a storage type")
            }
        }

        /// TorchScript's typed-list builders (`torch.jit._pickle`), which return their argument.
        static let listBuilders: Set<String> = ["build_intlist", "build_doublelist", "build_boollist", "build_tensorlist"]

        /// `__torch__` or `__torch__.a.b_2`: the namespace TorchScript gives a scripted
        /// module's classes (dotted identifiers only, so nothing else can hide behind it).
        static func isTorchScriptClass(_ module: String) -> Bool {
            let parts = module.split(separator: ".", omittingEmptySubsequences: false)
            return parts.first == "__torch__" && parts.allSatisfy { isIdentifier(String($0)) }
        }

        static func isIdentifier(_ s: String) -> Bool {
            func letter(_ c: Unicode.Scalar) -> Bool { c == "_" || ("a"..."z").contains(c) || ("A"..."Z").contains(c) }
            guard let f = s.unicodeScalars.first, letter(f) else { return false }
            return s.unicodeScalars.allSatisfy { letter($0) || ("0"..."9").contains($0) }
        }

        func ints(_ v: Value, _ what: String) throws(Failure) -> [Int] {
            guard case .tuple(let t) = v else { throw fail("tensor \(what) is a \(v.kind), not a tuple") }
            var out: [Int] = []
            for x in t {
                guard case .int(let i) = x else { throw fail("tensor \(what) holds a \(x.kind), not an integer") }
                out.append(i)
            }
            return out
        }

        static func opcodeName(_ op: Int) -> String {
            switch op {
            case 0x69: "INST"
            case 0x6F: "OBJ"
            case 0x81: "NEWOBJ"
            case 0x92: "NEWOBJ_EX"
            case 0x82, 0x83, 0x84: "EXT"
            case 0x50: "PERSID"
            case 0x49: "INT"
            case 0x4C: "LONG"
            case 0x53: "STRING"
            case 0x56: "UNICODE"
            case 0x46: "FLOAT"
            case 0x64: "DICT"
            case 0x70: "PUT"
            case 0x67: "GET"
            case 0x8F: "EMPTY_SET"
            case 0x90: "ADDITEMS"
            case 0x91: "FROZENSET"
            case 0x96: "BYTEARRAY8"
            case 0x97: "NEXT_BUFFER"
            case 0x98: "READONLY_BUFFER"
            default: "unknown"
            }
        }
    }
}

#!/usr/bin/env python3
"""Writes Tests/MetricsTests/Fixtures/torch/: small PyTorch checkpoints in both layouts, the
values they hold, and hostile or damaged ones that the Swift reader must refuse.

Run by hand from the repository root with torch installed (2.15 CPU was used), never in CI:
    python3 Tools/make_torch_fixtures.py

Files:
  state-zip.pt      torch.save(sd) (zip layout, the default)
  state-legacy.pt   torch.save(sd, _use_new_zipfile_serialization=False) (legacy layout)
  nested-zip.pt     {"model": {...}, "ema": {...}, "step": 7, "lr": 1e-4} like a DiT training checkpoint
  expected.json     every tensor of sd: dtype, shape and values (read back with torch.load)
  hostile-global-legacy.pt  legacy layout whose state pickle calls os.system
  hostile-global-zip.pt     zip layout whose data.pkl calls builtins.eval
  hostile-bounds-legacy.pt  a tensor of 3x3 elements over a 6-element storage
  deflated-zip.pt           state-zip.pt re-zipped with compression (torch never does that)
Truncated files are made by the Swift tests themselves by cutting the good files.
"""
import collections
import io
import json
import os
import pickle
import struct
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "MetricsTests", "Fixtures", "torch")


def state_dict():
    """A few tensors of every common dtype, including views that are not contiguous."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 5, generator=g)
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(2, 3, generator=g)
    sd["f64"] = torch.randn(3, dtype=torch.float64, generator=g)
    sd["f16"] = torch.tensor([0.5, -2.0, 65504.0, 6.1e-5], dtype=torch.float16)
    sd["bf16"] = torch.tensor([1.0, -1.5, 3.140625, 256.0], dtype=torch.bfloat16)
    sd["i64"] = torch.tensor([-3, 0, 7, 2**40], dtype=torch.int64)
    sd["i32"] = torch.tensor([[-(2**31), 5], [6, 2**31 - 1]], dtype=torch.int32)
    sd["i16"] = torch.tensor([-300, 300], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 127, 0], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 128, 255], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    sd["scalar"] = torch.tensor(42.5)
    sd["empty"] = torch.zeros(0, 3)
    # Views of one storage: transposed, offset slice, strided slice. torch.save keeps the
    # shared storage and writes each view's offset and strides.
    sd["view.transposed"] = base.t()
    sd["view.offset"] = base[1:, 2:]
    sd["view.strided"] = base[::2, ::3]
    sd["view.base"] = base
    sd["conv.weight"] = torch.randn(4, 3, 3, 3, generator=g).permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    return sd


def expected(sd):
    out = {}
    for k, v in sd.items():
        vals = v.detach().to(torch.float64).flatten().tolist() if v.dtype.is_floating_point else v.flatten().to(torch.int64).tolist()
        out[k] = {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape), "values": vals}
    return out


def legacy_file(state, storages, path):
    """A legacy-layout file around `state` (built with the fake markers below)."""
    f = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
    pickle.dump(1001, f, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}, f, protocol=2)
    Pickler(f).dump(state)
    pickle.dump([k for k, _, _ in storages], f, protocol=2)
    for _, numel, data in storages:
        f.write(struct.pack("<q", numel))
        f.write(data)
    open(path, "wb").write(f.getvalue())


class StorageMarker:
    def __init__(self, type_, key, numel):
        self.type, self.key, self.numel = type_, key, numel


class Call:
    """Pickles as REDUCE of `fn` with `args`, whatever fn is (the hostile files need that)."""
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


class Pickler(pickle.Pickler):
    def __init__(self, f):
        super().__init__(f, protocol=2)

    def persistent_id(self, obj):
        if isinstance(obj, StorageMarker):
            return ("storage", obj.type, obj.key, "cpu", obj.numel, None)
        return None


def main():
    os.makedirs(OUT, exist_ok=True)
    sd = state_dict()
    torch.save(sd, os.path.join(OUT, "state-zip.pt"))
    torch.save(sd, os.path.join(OUT, "state-legacy.pt"), _use_new_zipfile_serialization=False)
    small = collections.OrderedDict(w=torch.arange(6, dtype=torch.float32).reshape(2, 3), b=torch.ones(2))
    ema = collections.OrderedDict(w=torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5, b=torch.zeros(2))
    torch.save({"model": small, "ema": ema, "step": 7, "lr": 1e-4, "name": "DiT-tiny"}, os.path.join(OUT, "nested-zip.pt"))
    loaded = torch.load(os.path.join(OUT, "state-legacy.pt"), weights_only=True)
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected(sd), f, indent=0)

    # os.system through REDUCE, in the legacy layout: refused at the GLOBAL.
    legacy_file(collections.OrderedDict(x=Call(os.system, ("echo pwned",))), [], os.path.join(OUT, "hostile-global-legacy.pt"))

    # builtins.eval in a zip layout's data.pkl (the rest of the archive is a good one).
    good = zipfile.ZipFile(os.path.join(OUT, "state-zip.pt"))
    evil = io.BytesIO()
    pickle.Pickler(evil, protocol=2).dump(Call(eval, ("__import__('os').system('echo pwned')",)))
    with zipfile.ZipFile(os.path.join(OUT, "hostile-global-zip.pt"), "w", zipfile.ZIP_STORED) as z:
        for info in good.infolist():
            data = evil.getvalue() if info.filename.endswith("/data.pkl") else good.read(info.filename)
            z.writestr(info.filename, data)

    # A 3x3 tensor over a 6-element storage: reading it would run past the storage.
    st = StorageMarker(torch.FloatStorage, "0", 6)
    bad = collections.OrderedDict(x=Call(torch._utils._rebuild_tensor_v2, (st, 0, (3, 3), (3, 1), False, collections.OrderedDict())))
    legacy_file(bad, [("0", 6, struct.pack("<6f", *range(6)))], os.path.join(OUT, "hostile-bounds-legacy.pt"))

    with zipfile.ZipFile(os.path.join(OUT, "deflated-zip.pt"), "w", zipfile.ZIP_DEFLATED) as z:
        for info in good.infolist():
            z.writestr(info.filename, good.read(info.filename))
    for name in sorted(os.listdir(OUT)):
        print(name, os.path.getsize(os.path.join(OUT, name)))


if __name__ == "__main__":
    main()

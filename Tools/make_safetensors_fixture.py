#!/usr/bin/env python3
"""Writes Tests/FormatsTests/Fixtures/python-written.safetensors with the Python
`safetensors` package (0.8.0 was used) and numpy, so the Swift reader is checked against
files the reference implementation writes (the Swift tests hold the same expected values).

Run by hand from the repository root, never in CI:
    python3 Tools/make_safetensors_fixture.py [--out PATH] [--check]

bfloat16 has no numpy dtype, so every tensor goes through `safetensors.serialize` with a
`TensorSpec` (the call `safetensors.numpy.save` makes), the BF16 one as raw uint16 bits.
`--check` reloads the file with `safetensors.deserialize` and compares every tensor.
"""
import argparse
import os

import numpy as np
from safetensors import TensorSpec, deserialize, serialize

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "Tests", "FormatsTests", "Fixtures", "python-written.safetensors")

BF16_VALUES = [1.0, -1.5, 3.140625, 256.0, -0.0078125, 0.0]


def tensors():
    """name -> (safetensors dtype name for TensorSpec, shape, little-endian numpy array)."""
    bf16_bits = (np.array(BF16_VALUES, dtype="<f4").view("<u4") >> 16).astype("<u2")
    return {
        "f32": ("float32", [3, 4], (np.arange(12, dtype="<f4") * 0.25 - 1.0)),
        "f16": ("float16", [8], np.array([0, 1, -2, 0.5, 65504, 2.0**-14, 2.0**-24, np.inf], dtype="<f2")),
        "bf16": ("bfloat16", [2, 3], bf16_bits),
        "f64": ("float64", [2, 2], np.array([0.1, -2.5, 1e-300, 12345.678901234567], dtype="<f8")),
        "i64": ("int64", [4], np.array([-3, 0, 7, 2**40], dtype="<i8")),
        "i32": ("int32", [2], np.array([-(2**31), 5], dtype="<i4")),
        "u8": ("uint8", [3], np.array([0, 128, 255], dtype="u1")),
        "bool": ("bool", [3], np.array([True, False, True], dtype="bool")),
        "scalar": ("float32", [], np.array(42.5, dtype="<f4")),
        "empty": ("float32", [0, 3], np.zeros((0, 3), dtype="<f4")),
    }


METADATA = {
    "format": "pt",
    "made_by": "Tools/make_safetensors_fixture.py",
    "unicode": "na\u00efve \u2713",
    "json_like": '{"a": [1, 2]}',
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="only reload OUT and compare")
    args = ap.parse_args()
    want = tensors()
    if not args.check:
        keep = {k: np.ascontiguousarray(a) for k, (_, _, a) in want.items()}
        specs = {k: TensorSpec(dtype=d, shape=s, data_ptr=keep[k].ctypes.data, data_len=keep[k].nbytes)
                 for k, (d, s, _) in want.items()}
        data = bytes(serialize(specs, metadata=METADATA))
        with open(args.out, "wb") as f:
            f.write(data)
        print(f"wrote {args.out} ({len(data)} bytes)")
    with open(args.out, "rb") as f:
        got = dict(deserialize(f.read()))
    assert set(got) == set(want), (sorted(got), sorted(want))
    for k, (_, shape, a) in want.items():
        assert list(got[k]["shape"]) == shape, (k, got[k]["shape"], shape)
        assert bytes(got[k]["data"]) == a.tobytes(), k
    print("check ok:", ", ".join(f"{k} {got[k]['dtype']} {got[k]['shape']}" for k in sorted(got)))


if __name__ == "__main__":
    main()

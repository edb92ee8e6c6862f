#!/usr/bin/env python3
"""Opens learngene's TensorBoard event files with the `tensorboard` package's own reader and
prints what it finds: every scalar tag with its steps and values, images, text.

  pip install --no-deps tensorboard protobuf absl-py numpy   # all its reader needs
  python3 Tools/read_tfevents.py Outbox/fashion-pretrain/events/

Exits 1 when a file does not parse or holds no scalar: the check `.ci/run` may run.
"""
import glob
import os
import sys

from tensorboard.backend.event_processing import event_file_loader
from tensorboard.compat.proto import event_pb2  # noqa: F401  (the loader yields these)


def main(paths):
    files = []
    for p in paths:
        files += sorted(glob.glob(os.path.join(p, "events.out.tfevents.*"))) if os.path.isdir(p) else [p]
    if not files:
        sys.exit("no event files under " + " ".join(paths))
    ok = True
    for f in files:
        scalars, images, texts, version = {}, 0, 0, None
        for event in event_file_loader.LegacyEventFileLoader(f).Load():
            if event.file_version:
                version = event.file_version
            for v in event.summary.value:
                if v.HasField("simple_value"):
                    scalars.setdefault(v.tag, []).append((event.step, v.simple_value))
                elif v.HasField("image"):
                    images += 1
                elif v.metadata.plugin_data.plugin_name == "text":
                    texts += 1
        print(f"{f}: {version}, {len(scalars)} scalar tags, {images} images, {texts} texts")
        for tag, points in sorted(scalars.items()):
            print(f"  {tag}: {len(points)} points, step {points[0][0]}..{points[-1][0]}, last {points[-1][1]:.6g}")
        ok = ok and version == "brain.Event:2" and bool(scalars)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main(sys.argv[1:] or ["."])

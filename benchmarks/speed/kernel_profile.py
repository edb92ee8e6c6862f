#!/usr/bin/env python3
"""Where a learngene-bench run spends its time, split by kernel.

Records the run with Linux `perf` (DWARF call graphs: OpenBLAS has no frame pointers), then charges every sample to the innermost
learngene kernel on its stack (linearForward, attentionBackward, AdamW.update, ...), and
within it to what ran: OpenBLAS's compute kernel, its packing copies, or the kernel's own
loops. Samples of threads waiting for work (the worker pool's spin, the scheduler) are "idle".

  python3 benchmarks/speed/kernel_profile.py -- .build/release/learngene-bench train --config tiny \
      --rounds 1 --steps 12 --sample-steps 1 --no-torch
  python3 benchmarks/speed/kernel_profile.py --data perf.data     # re-read a recording

Needs `perf` (Debian: linux-perf) with permission to record (root, or
kernel.perf_event_paranoid <= 1).
"""
import argparse
import collections
import re
import subprocess
import sys

# Swift mangles `DiT.linearForward(...)` as `$s3DiT13linearForward...`; methods as
# `$s3DiT5AdamWC6update...`. Pull out the readable name.
SWIFT = re.compile(r"^\$s(\d+)([A-Za-z_]\w*?)(?:(\d+)([A-Za-z_]\w*?))(?:C?(\d+)([A-Za-z_]\w*))?")

def swift_name(sym):
    if not sym.startswith("$s"):
        return None
    m = re.match(r"^\$s(\d+)", sym)
    if not m:
        return None
    n = int(m.group(1)); rest = sym[len(m.group(0)):]
    module = rest[:n]; rest = rest[n:]
    if module not in ("DiT", "Tensors", "Learngene", "Metrics", "TextEncoder"):
        return None
    parts = []
    while True:
        m = re.match(r"^(\d+)", rest)
        if not m:
            break
        k = int(m.group(1)); word = rest[len(m.group(0)):len(m.group(0)) + k]
        parts.append(word); rest = rest[len(m.group(0)) + k:]
        if rest[:1] in ("C", "V", "O"):   # class/struct/enum: a method name follows
            rest = rest[1:]
            continue
        break
    if not parts:
        return None
    name = ".".join(parts[:2]) if len(parts) > 1 and parts[0][:1].isupper() else parts[0]
    # A kernel is a layer's forward/backward or one of the optimizer passes; helpers inlined
    # into them (fastExp, rowSum, Blas.sgemm, ...) are charged to the kernel that called them.
    short = name.split(".")[-1]
    if not (short.endswith("Forward") or short.endswith("Backward") or short.endswith("BackwardInPlace")
            or name in KERNELS):
        return None
    return module + "." + name

KERNELS = {"AdamW.update", "emaUpdate", "columnSumAccumulate", "clipGradientNorm", "patchify", "unpatchify",
           "unpatchifyBackward", "timestepFrequencies", "GaussianDiffusion.trainingLosses", "diffusionLoss",
           "DiTModel.zeroGrad", "Ops.sumOfSquares", "Ops.scale", "RandomStream.fillNormal", "Activations.config",
           "BlockActivations.N", "sgemmGFLOPs"}

def leaf_kind(sym):
    if sym.startswith("sgemm_kernel") or sym.startswith("sgemm_small_kernel"):
        return "blas compute"
    if re.match(r"sgemm_(it|in|ot|on)copy", sym) or sym.startswith("sgemm_beta"):
        return "blas packing"
    if sym.startswith("__memset") or sym.startswith("__memmove") or sym.startswith("__memcpy"):
        return "memset/memcpy"
    if sym in ("__schedule", "do_sched_yield", "__sched_yield", "finish_task_switch.isra.0", "schedule",
               "do_syscall_64", "_raw_spin_unlock_irqrestore", "__x64_sys_sched_yield", "x64_sys_call",
               "entry_SYSCALL_64", "syscall_exit_to_user_mode") or "WorkerPool" in sym:
        return "idle/scheduler"
    if "page_fault" in sym or sym.startswith("clear_page"):
        return "page faults"
    return "own loops"

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="read this perf.data instead of recording")
    ap.add_argument("--out", default="/tmp/learngene-profile.data", help="where to record")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    data = a.data
    if not data:
        cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
        if not cmd:
            sys.exit("give the command to profile after --, or --data FILE")
        subprocess.run(["perf", "record", "--call-graph", "dwarf,16384", "-F", "500", "-q", "-o", a.out, "--"] + cmd, check=True,
                       stdout=subprocess.DEVNULL)
        data = a.out
    script = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym"], capture_output=True, text=True,
                            check=True).stdout
    by_kernel = collections.Counter(); by_kind = collections.Counter(); cells = collections.Counter()
    total = 0
    for sample in script.split("\n\n"):
        frames = [l.split(None, 1)[1].strip() if len(l.split(None, 1)) > 1 else "?" for l in sample.strip().split("\n") if l.strip()]
        if not frames:
            continue
        total += 1
        leaf = frames[0].split("+")[0]
        kind = leaf_kind(leaf)
        kernel = None
        for f in frames:
            n = swift_name(f.split("+")[0])
            if n:
                kernel = n
                break
        if kind == "idle/scheduler":
            kernel = "(idle: waiting for work)"
        kernel = kernel or "(other)"
        by_kernel[kernel] += 1; by_kind[kind] += 1; cells[(kernel, kind)] += 1
    kinds = ["blas compute", "blas packing", "own loops", "memset/memcpy", "page faults", "idle/scheduler"]
    print(f"{total} samples from {data}\n")
    print("| kernel | share | " + " | ".join(kinds) + " |")
    print("|---|---:|" + "---:|" * len(kinds))
    for k, n in by_kernel.most_common(a.top):
        print(f"| {k} | {100 * n / total:.1f}% | " + " | ".join(
            f"{100 * cells[(k, kind)] / total:.1f}" if cells[(k, kind)] else "" for kind in kinds) + " |")
    print("| **all** | 100% | " + " | ".join(f"{100 * by_kind[kind] / total:.1f}" for kind in kinds) + " |")

if __name__ == "__main__":
    main()

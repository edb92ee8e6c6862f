#!/usr/bin/env python3
"""The recipe table: candidates trained on the bundled Fashion-MNIST (1000 images) for the same
compute, each scored by class accuracy (pixel and EfficientNet-Lite0 probes) and FD.

    python3 benchmarks/recipe/recipe.py ROOT [--budget-steps 1500] [--only NAME,...]

writes one manifest per candidate into ROOT/Inbox/jobs/, runs `learngene serve --once --root ROOT`
(the release build at .build/release/learngene), then prints the markdown table from
ROOT/Outbox/*/metrics.json. "Same compute" is the same analytic training FLOPs as
`cpu-28-small` × batch 32 × --budget-steps (a step is 3× the forward's matrix FLOPs): a
candidate with a larger model or batch gets proportionally fewer steps. Measured train seconds
are printed beside it. Run it on a quiet machine: the wall times are only comparable then.
"""
import argparse, json, os, shutil, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

BASE = {"preset": "cpu-28-small", "patch": 4, "hidden": 128, "depth": 4, "batch": 32}

# name -> (model overrides, training overrides, description)
CANDIDATES = {
    "dit":        ({}, {"recipe": "dit"}, "DiT's recipe: lr 1e-4 constant, EMA 0.9999, uniform loss, no clipping"),
    "v1-example": ({}, {"recipe": "dit", "learning_rate": 0.001, "ema_decay": 0.99}, "last round's example: lr 1e-3 constant, EMA 0.99"),
    "cpu":        ({}, {}, "cpu recipe: lr 2e-3, warmup 100, cosine to 10%, EMA warmup to 0.999, Min-SNR-5, clip 1"),
    "cpu-uniform": ({}, {"loss_weighting": "uniform"}, "cpu, uniform ε-MSE (no Min-SNR)"),
    "cpu-ema-power": ({}, {"ema_schedule": "power"}, "cpu, power-function EMA (γ 6.94)"),
    "cpu-const-lr": ({}, {"lr_schedule": "constant"}, "cpu, constant lr after warmup"),
    "cpu-lr1e-3": ({}, {"learning_rate": 0.001}, "cpu, lr 1e-3"),
    "cpu-batch64": ({}, {"batch_size": 64}, "cpu, batch 64 (half the steps)"),
    "cpu-patch2": ({"patch_size": 2}, {}, "cpu, patch 2 (196 tokens; fewer steps)"),
    "cpu-wide": ({"hidden_size": 192, "num_heads": 6}, {}, "cpu, width 192 (fewer steps)"),
    "cpu-deep": ({"depth": 8}, {}, "cpu, depth 8 (fewer steps)"),
}


def flops_per_image(patch, hidden, depth, size=28, channels=1, mlp=4):
    """Analytic forward matrix FLOPs (2 per multiply-add) of a DiT on one image."""
    t = (size // patch) ** 2
    per_block = 2 * t * hidden * (3 * hidden + hidden + 2 * mlp * hidden) + 2 * 2 * t * t * hidden + 2 * hidden * 6 * hidden
    embed = 2 * t * channels * patch * patch * hidden + 2 * t * hidden * patch * patch * 2 * channels
    return depth * per_block + embed


def manifest(name, model, training, steps):
    m = {"stage": "pretrain", "seed": 0, "inputs": {"dataset": "fashion-mnist"},
         "model": dict({"preset": "cpu-28-small"}, **model),
         "training": dict({"steps": steps, "batch_size": 32, "log_every": 50}, **training),
         "checkpoint": {"every": 100000},
         "sampling": {"sampler": "ddim", "steps": 25, "cfg_scale": 2.0, "count": 100, "grid_columns": 10},
         "evaluation": {"samples": 200, "metrics": ["fd_effnet_lite0", "class_accuracy_effnet_lite0", "class_accuracy_pixels"]}}
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--budget-steps", type=int, default=1500)
    ap.add_argument("--only", default="")
    ap.add_argument("--table-only", action="store_true")
    a = ap.parse_args()
    names = [n for n in CANDIDATES if not a.only or n in a.only.split(",")]
    base_cost = flops_per_image(BASE["patch"], BASE["hidden"], BASE["depth"]) * BASE["batch"]
    jobs = os.path.join(a.root, "Inbox", "jobs")
    plan = {}
    for n in names:
        model, training, _ = CANDIDATES[n]
        cost = flops_per_image(model.get("patch_size", 4), model.get("hidden_size", 128), model.get("depth", 4)) \
            * training.get("batch_size", 32)
        plan[n] = max(1, round(a.budget_steps * base_cost / cost))
    if not a.table_only:
        os.makedirs(jobs, exist_ok=True)
        ds = os.path.join(a.root, "Inbox", "datasets", "fashion-mnist")
        if not os.path.exists(ds):
            shutil.copytree(os.path.join(REPO, "Inbox", "datasets", "fashion-mnist"), ds)
        for n in names:
            model, training, _ = CANDIDATES[n]
            with open(os.path.join(jobs, f"recipe-{n}.json"), "w") as f:
                json.dump(manifest(n, model, training, plan[n]), f, indent=1)
        subprocess.run([os.path.join(REPO, ".build", "release", "learngene"), "serve", "--once", "--root", a.root], check=False)
    print(f"| candidate | steps × batch | train s | final loss (weighted for Min-SNR) | class acc. pixels (real) | class acc. Lite0 (real) | FD Lite0 | what |")
    print("|---|---|---|---|---|---|---|---|")
    for n in names:
        p = os.path.join(a.root, "Outbox", f"recipe-{n}", "metrics.json")
        if not os.path.exists(p):
            print(f"| {n} | {plan[n]} | — | — | — | — | — | not run |")
            continue
        m = json.load(open(p))
        mm = m["metrics"]["metrics"]
        def acc(k):
            e = mm.get(k)
            return f"{100 * e['value']:.1f}% ({100 * e['details']['real_accuracy']:.0f}%)" if e else "—"
        fd = f"{mm['fd_effnet_lite0']['value']:.1f}" if "fd_effnet_lite0" in mm else "—"
        print(f"| {n} | {m['steps']} × {m['batch_size']} | {m['train_seconds']:.0f} | {m['loss']['final_10_percent_mean']:.4f} | "
              f"{acc('class_accuracy_pixels')} | {acc('class_accuracy_effnet_lite0')} | {fd} | {CANDIDATES[n][2]} |")


if __name__ == "__main__":
    main()

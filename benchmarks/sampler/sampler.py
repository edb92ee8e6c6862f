#!/usr/bin/env python3
"""The sampler table: one trained model sampled by DDPM-250, DDIM 25 and 50, DPM-Solver++(2M) 10
and 20 (classifier-free guidance 2 on every row), each scored by class accuracy (pixel and
EfficientNet-Lite0 probes) and FD against the training data.

    python3 benchmarks/sampler/sampler.py ROOT MODEL_JOB [--samples 200] [--guidance 2]

ROOT is a learngene root whose Outbox/ holds MODEL_JOB (for example the `recipe-cpu` job of
benchmarks/recipe/recipe.py, or the example's `fashion-pretrain`). It writes one `evaluate`
manifest per row, runs `learngene serve --once --root ROOT`, and prints the markdown table.
Model evaluations count the guided batch as one (each is one forward of 2N rows).
"""
import argparse, json, os, subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ROWS = [("ddpm", 250), ("ddim", 25), ("ddim", 50), ("dpm++2m", 10), ("dpm++2m", 20)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("model_job")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--table-only", action="store_true")
    a = ap.parse_args()
    jobs = os.path.join(a.root, "Inbox", "jobs")
    names = []
    for sampler, steps in ROWS:
        name = f"sampler-{a.model_job}-{sampler.replace('+', 'p')}-{steps}"
        names.append((name, sampler, steps))
        if a.table_only:
            continue
        m = {"stage": "evaluate", "seed": 0, "inputs": {"model": {"job": a.model_job}, "dataset": a.dataset},
             "sampling": {"sampler": sampler, "steps": steps, "cfg_scale": a.guidance, "count": 0},
             "evaluation": {"samples": a.samples, "metrics": ["fd_effnet_lite0", "class_accuracy_effnet_lite0", "class_accuracy_pixels"]}}
        os.makedirs(jobs, exist_ok=True)
        with open(os.path.join(jobs, name + ".json"), "w") as f:
            json.dump(m, f, indent=1)
    if not a.table_only:
        subprocess.run([os.path.join(REPO, ".build", "release", "learngene"), "serve", "--once", "--root", a.root], check=False)
    print(f"Model `{a.model_job}`, {a.samples} samples, guidance {a.guidance}.\n")
    print("| sampler | steps | model evaluations | sampling s | class acc. pixels (real) | class acc. Lite0 (real) | FD Lite0 |")
    print("|---|---|---|---|---|---|---|")
    for name, sampler, steps in names:
        p = os.path.join(a.root, "Outbox", name, "metrics.json")
        if not os.path.exists(p):
            print(f"| {sampler} | {steps} | {steps} | — | — | — | — |")
            continue
        m = json.load(open(p))
        mm = m["metrics"]["metrics"]
        secs = m["metrics"].get("seconds", {}).get("sampling")
        def acc(k):
            e = mm.get(k)
            return f"{100 * e['value']:.1f}% ({100 * e['details']['real_accuracy']:.0f}%)" if e else "—"
        fd = f"{mm['fd_effnet_lite0']['value']:.1f}" if "fd_effnet_lite0" in mm else "—"
        print(f"| {sampler} | {steps} | {steps} | {secs:.1f} | {acc('class_accuracy_pixels')} | {acc('class_accuracy_effnet_lite0')} | {fd} |"
              if secs is not None else f"| {sampler} | {steps} | {steps} | — | {acc('class_accuracy_pixels')} | {acc('class_accuracy_effnet_lite0')} | {fd} |")


if __name__ == "__main__":
    main()

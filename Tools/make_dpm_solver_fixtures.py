#!/usr/bin/env python3
"""Reference trajectories of DPM-Solver++(2M) from diffusers, for learngene's sampler test.

Run by hand (needs torch and diffusers: `python3 -m pip install torch diffusers`), from the
repository root:

    python3 Tools/make_dpm_solver_fixtures.py

It drives diffusers' `DPMSolverMultistepScheduler` (algorithm_type "dpmsolver++", solver_order
2, midpoint, final_sigmas_type "zero", no thresholding) with DiT's linear betas
(np.linspace(1e-4, 0.02, 1000), as DiT's `get_named_beta_schedule`) on a fixed analytic
"model" eps(x, t) that needs no weights, so the test compares the two samplers on the same
model outputs, step by step:

    eps(x, t) = tanh(0.5 x + 0.3 sin(i)) * (0.5 + t / 2000) + 0.1 cos(x * t / 500)

where i is the element's index inside its sample. It writes
Tests/DiTTests/Fixtures/dpm_solver.json: for each case the timesteps, the initial noise and
the final sample.
"""
import json
import math
import os

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler


def space_timesteps(num_timesteps, count):
    """DiT's respace.py space_timesteps with one section (the timesteps DiT samples on)."""
    frac_stride = (num_timesteps - 1) / (count - 1)
    cur, taken = 0.0, []
    for _ in range(count):
        taken.append(round(cur))
        cur += frac_stride
    return sorted(set(taken))


def model(x, t, per_sample):
    idx = torch.arange(per_sample, dtype=torch.float32).reshape(1, *x.shape[1:])
    return torch.tanh(0.5 * x + 0.3 * torch.sin(idx)) * (0.5 + t / 2000.0) + 0.1 * torch.cos(x * (t / 500.0))


def run(timesteps, noise):
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    s = DPMSolverMultistepScheduler(num_train_timesteps=1000, trained_betas=betas, solver_order=2,
                                    algorithm_type="dpmsolver++", solver_type="midpoint", lower_order_final=True,
                                    final_sigmas_type="zero", thresholding=False, prediction_type="epsilon")
    s.set_timesteps(timesteps=list(timesteps))
    x = torch.tensor(noise, dtype=torch.float32)
    per = int(np.prod(x.shape[1:]))
    for t in s.timesteps:
        eps = model(x, float(t), per)
        x = s.step(eps, t, x).prev_sample
    return [int(t) for t in s.timesteps], x.numpy()


def main():
    rng = np.random.default_rng(20221102)
    cases = []
    for steps in (5, 10, 20):
        noise = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
        ts = sorted(space_timesteps(1000, steps), reverse=True)
        used, out = run(ts, noise)
        cases.append({"steps": steps, "timesteps": used, "noise": noise.flatten().tolist(),
                      "shape": list(noise.shape), "sample": out.flatten().astype(float).tolist()})
    path = os.path.join("Tests", "DiTTests", "Fixtures", "dpm_solver.json")
    with open(path, "w") as f:
        json.dump({"made_by": "Tools/make_dpm_solver_fixtures.py",
                   "diffusers": __import__("diffusers").__version__, "torch": torch.__version__, "cases": cases}, f, indent=1)
    print("wrote", path, [c["steps"] for c in cases])


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes Tests/MetricsTests/Fixtures/metric-reference.safetensors: small feature sets and
the values numpy/scipy give for every metric learngene computes on them, so the Swift
statistics are checked against the reference implementations without Python in CI.

Run by hand from the repository root (numpy, scipy and safetensors installed; numpy 2.4.6,
scipy 1.17.1, safetensors 0.8.0 were used), never in CI:
    python3 Tools/make_metric_fixtures.py

What each reference value is:
  - mean_a, cov_a: np.mean(a, 0), np.cov(a, rowvar=False) (ddof 1), as the ADM evaluator
    computes statistics.
  - fd_sqrtm: the Fréchet distance as pytorch-fid / the ADM evaluator compute it:
    |mu1-mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 @ S2)) with scipy.linalg.sqrtm.
    learngene uses the symmetric form tr sqrt(sqrt(S1) S2 sqrt(S1)) instead (eigh only),
    which is the same number for positive semi-definite S1, S2.
  - precision, recall: the ADM evaluator's ManifoldEstimator with nhood_sizes=(3,):
    radii = 4th smallest squared distance of each point to its own set (itself included,
    at 0), a sample is inside the other set's manifold if its squared distance to some
    point of it is <= that point's radius. Computed here in float64.
  - is_score_<s>: the ADM evaluator's compute_inception_score with split_size s on
    softmax(logits).
"""
import os

import numpy as np
import scipy.linalg
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "MetricsTests", "Fixtures", "metric-reference.safetensors")


def frechet_sqrtm(mu1, s1, mu2, s2):
    covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
    covmean = covmean.real
    diff = mu1 - mu2
    return diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def sq_dists(u, v):
    nu = np.sum(u * u, 1)[:, None]
    nv = np.sum(v * v, 1)[None, :]
    return np.maximum(nu - 2 * u @ v.T + nv, 0.0)


def radii(x, k=3):
    d = sq_dists(x, x)
    return np.partition(d, k, axis=1)[:, k]


def precision_recall(real, fake, k=3):
    r_real, r_fake = radii(real, k), radii(fake, k)
    d = sq_dists(real, fake)  # real x fake
    fake_in_real = np.any(d <= r_real[:, None], axis=0)   # per fake sample
    real_in_fake = np.any(d <= r_fake[None, :], axis=1)   # per real sample
    return float(np.mean(fake_in_real)), float(np.mean(real_in_fake))


def inception_score(logits, split_size):
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    scores = []
    for i in range(0, len(p), split_size):
        part = p[i:i + split_size]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return float(np.mean(scores))


def main():
    rng = np.random.default_rng(1234)
    d = 24
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    a = (rng.normal(size=(300, d)) @ mix + 0.3).astype(np.float32)
    b = (rng.normal(size=(260, d)) @ (mix * 1.3) + rng.normal(size=d) * 0.2).astype(np.float32)
    logits = (rng.normal(size=(120, 10)) * 2.5).astype(np.float32)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    mu_a, cov_a = a64.mean(0), np.cov(a64, rowvar=False)
    mu_b, cov_b = b64.mean(0), np.cov(b64, rowvar=False)
    p, r = precision_recall(a64, b64)
    out = {
        "a": a, "b": b, "logits": logits,
        "mean_a": mu_a, "cov_a": cov_a,
        "fd_sqrtm": np.array([frechet_sqrtm(mu_a, cov_a, mu_b, cov_b)]),
        "fd_self": np.array([frechet_sqrtm(mu_a, cov_a, mu_a, cov_a)]),
        "precision": np.array([p]), "recall": np.array([r]),
        "is_score_120": np.array([inception_score(logits.astype(np.float64), 120)]),
        "is_score_50": np.array([inception_score(logits.astype(np.float64), 50)]),
    }
    save_file(out, OUT, metadata={"made_by": "Tools/make_metric_fixtures.py"})
    for k in ("fd_sqrtm", "fd_self", "precision", "recall", "is_score_120", "is_score_50"):
        print(k, out[k][0])


if __name__ == "__main__":
    main()

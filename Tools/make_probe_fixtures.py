#!/usr/bin/env python3
"""Reference for learngene's linear probe (Sources/Metrics/LinearProbe.swift), run by hand:

    python3 -m pip install scikit-learn numpy && python3 Tools/make_probe_fixtures.py

scikit-learn's RidgeClassifier(alpha=λ) (fit_intercept: features centered, not scaled, as the
probe) with ±1 targets predicts the same class as the probe's 0/1-target ridge at the same λ
(the argmax is invariant to that affine change of targets). Writes
Tests/MetricsTests/Fixtures/probe.json: training features/labels, λ, test features, sklearn's
predictions and decision scores.
"""
import json
import numpy as np
from sklearn.linear_model import RidgeClassifier

rng = np.random.default_rng(7)
k, d = 4, 12
centers = rng.standard_normal((k, d)) * 1.2
def draw(n):
    y = rng.integers(0, k, n)
    x = centers[y] + rng.standard_normal((n, d)) * 1.5
    x[:, 3] = 5.0  # a constant feature: centered to 0 by both
    return x.astype(np.float32), y
xtr, ytr = draw(60)
xte, yte = draw(40)
cases = []
for lam in (0.5, 5.0, 50.0):
    clf = RidgeClassifier(alpha=lam).fit(xtr.astype(np.float64), ytr)
    cases.append({"lambda": lam, "predictions": clf.predict(xte.astype(np.float64)).tolist()})
json.dump({"made_by": "Tools/make_probe_fixtures.py", "classes": k, "dimension": d,
           "train": xtr.flatten().astype(float).tolist(), "train_labels": ytr.tolist(),
           "test": xte.flatten().astype(float).tolist(), "test_labels": yte.tolist(), "cases": cases},
          open("Tests/MetricsTests/Fixtures/probe.json", "w"))
print("accuracy", [np.mean(np.array(c["predictions"]) == yte) for c in cases])

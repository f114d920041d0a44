#!/usr/bin/env python3
"""Reference solution for segmix's keyword decoder, from scikit-learn's Lasso.

Writes tests/fixtures/lasso_reference.json: a seeded X (80 x 6) and a 0/1 Y (80 x 4) whose
columns depend on a few X columns, and scikit-learn's Lasso(alpha, fit_intercept=False) coef_
for the element-wise L1 objective 1/(2n) ||Y - XW||^2 + alpha ||W||_1 that segmix solves.

Run:  python3 scripts/make_lasso_fixture.py     (numpy, scikit-learn)
"""

import json
import os

import numpy as np
import sklearn
from sklearn.linear_model import Lasso

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rng = np.random.default_rng(7)
x = rng.standard_normal((80, 6)).round(10)
logits = np.stack([2 * x[:, 0], -1.5 * x[:, 1] + x[:, 2], 0.3 * x[:, 3], x[:, 0] - x[:, 5]], axis=1)
y = (rng.random((80, 4)) < 1 / (1 + np.exp(-logits))).astype(float)
out = {"sklearn": sklearn.__version__, "x": x.tolist(), "y": y.tolist(), "fits": []}
for alpha in [0.01, 0.05, 0.2]:
    m = Lasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=1_000_000).fit(x, y)
    out["fits"].append({"alpha": alpha, "coef": m.coef_.T.tolist()})  # d x V
with open(os.path.join(ROOT, "tests", "fixtures", "lasso_reference.json"), "w") as f:
    json.dump(out, f)
print("wrote tests/fixtures/lasso_reference.json", [np.count_nonzero(np.array(f["coef"])) for f in out["fits"]])

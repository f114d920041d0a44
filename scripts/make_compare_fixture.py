#!/usr/bin/env python3
"""Reference values for `segmix compare`'s scores and k-means, from scikit-learn, on fixed data.

Writes tests/fixtures/compare_reference.json: a seeded 4-D table of three blobs (150 rows), two
labelings of it (the blobs, and a perturbed copy with a fourth cluster), and scikit-learn's
silhouette_score, davies_bouldin_score, calinski_harabasz_score for both, adjusted_rand_score and
normalized_mutual_info_score between them, and KMeans(3, n_init=10) inertia.

Run:  python3 scripts/make_compare_fixture.py     (numpy, scikit-learn)
"""

import json
import os

import numpy as np
import sklearn
from sklearn.cluster import KMeans
from sklearn.metrics import (adjusted_rand_score, calinski_harabasz_score, davies_bouldin_score,
                             normalized_mutual_info_score, silhouette_score)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

rng = np.random.default_rng(20261124)
centers = np.array([[0, 0, 0, 0], [6, 0, 1, 0], [0, 7, 0, 2]], dtype=float)
a = np.repeat(np.arange(3), 50)
x = centers[a] + rng.standard_normal((150, 4))
b = a.copy()
flip = rng.choice(150, 20, replace=False)
b[flip] = (b[flip] + 1) % 3
b[:10] = 3

km = KMeans(3, n_init=10, random_state=0).fit(x)
out = {
    "sklearn": sklearn.__version__,
    "x": x.round(12).tolist(),
    "labels_a": a.tolist(),
    "labels_b": b.tolist(),
    "silhouette": [silhouette_score(x, a), silhouette_score(x, b)],
    "davies_bouldin": [davies_bouldin_score(x, a), davies_bouldin_score(x, b)],
    "calinski_harabasz": [calinski_harabasz_score(x, a), calinski_harabasz_score(x, b)],
    "ari_ab": adjusted_rand_score(a, b),
    "nmi_ab": normalized_mutual_info_score(a, b),
    "kmeans3_inertia": km.inertia_,
}
# The scores are recomputed from the rounded x the fixture stores.
xr = np.array(out["x"])
out["silhouette"] = [silhouette_score(xr, a), silhouette_score(xr, b)]
out["davies_bouldin"] = [davies_bouldin_score(xr, a), davies_bouldin_score(xr, b)]
out["calinski_harabasz"] = [calinski_harabasz_score(xr, a), calinski_harabasz_score(xr, b)]
out["kmeans3_inertia"] = KMeans(3, n_init=10, random_state=0).fit(xr).inertia_
with open(os.path.join(ROOT, "tests", "fixtures", "compare_reference.json"), "w") as f:
    json.dump(out, f, indent=1)
print(json.dumps({k: v for k, v in out.items() if k not in ("x", "labels_a", "labels_b")}, indent=1))

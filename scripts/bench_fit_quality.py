#!/usr/bin/env python3
"""Fit quality of segmix against StepMix, scikit-learn and mclust, in one run on the same data.

For every table and every K it prints each tool's log-likelihood on the data's own scale (the
best of the same number of restarts), then each tool's selected K (by BIC), the ARI of its
selected partition against the known truth, and the seconds the whole K sweep took.

Tables
  (a) generated mixed tables (>= 20,000 rows, the truth known), where some classes share their
      Gaussian block and differ only in their categoricals:
        five_classes   20,000 rows, 4 categorical x 4 levels, 6 numeric, K = 5
        four_wide      25,000 rows, 3 categorical x 5 levels, 10 numeric, K = 4
        six_classes    24,000 rows, 5 categorical x 3 levels, 4 numeric, K = 6
      and ratings_counts (30,000 rows, K = 4): 3 numeric columns, a 1-5 integer rating and a
      zero-heavy count among the numerics, to check that no degenerate class is selected;
  (b) the classic numeric data sets iris, faithful, banknote and diabetes (from R: datasets
      and mclust), full covariance, K = 2..9, against mclust (Mclust(..., modelNames = "VVV")),
      scikit-learn's GaussianMixture and StepMix.

Sign convention: BIC here is -2 loglik + n_params ln n (lower is better), as segmix and
scikit-learn print it; mclust reports 2 loglik - n_params ln n (higher is better), which is the
same number with the other sign.

Needs: a release build (cargo build --release), numpy, scikit-learn, stepmix (pip), R with
mclust (Debian: r-cran-mclust).

Run:  cargo build --release && python3 scripts/bench_fit_quality.py [--only NAME,..] [--n-init 5]
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEGMIX = os.path.join(ROOT, "target", "release", "segmix")


# ---------------------------------------------------------------- data


def mixed_table(name, n, k, p, n_cat, levels, twins, seed, purity=0.6, sep=2.5):
    """K classes; class `c` in `twins` shares the Gaussian of class twins[c] and differs from it
    only in its categoricals. Returns (numeric n x p, codes n x n_cat, truth)."""
    rng = np.random.default_rng(seed)
    base = sep * rng.standard_normal((k, p))
    chols = []
    for _ in range(k):
        g = rng.standard_normal((p, p))
        chols.append(np.linalg.cholesky(g @ g.T / p + 0.5 * np.eye(p)))
    for c, t in twins.items():
        base[c] = base[t]
        chols[c] = chols[t]
    # Dominant levels: twins get a different dominant level in every column.
    dominant = rng.integers(0, levels, (k, n_cat))
    for c, t in twins.items():
        dominant[c] = (dominant[t] + 1 + rng.integers(0, levels - 1, n_cat)) % levels
    weights = rng.dirichlet(np.full(k, 8.0))
    z = rng.choice(k, n, p=weights)
    x = np.empty((n, p))
    for c in range(k):
        idx = np.flatnonzero(z == c)
        x[idx] = base[c] + rng.standard_normal((idx.size, p)) @ chols[c].T
    # Affine columns, so that the raw scale is not the standardized one.
    x = 10.0 + 3.0 * np.arange(1, p + 1) * x
    codes = np.where(rng.random((n, n_cat)) < purity, dominant[z], rng.integers(0, levels, (n, n_cat)))
    return {"name": name, "num": x, "codes": codes, "truth": z, "k": k}


def ratings_table(seed=7, n=30_000):
    """Four classes (one differs from another only in its categoricals); the numerics are 3
    Gaussian columns, a 1-5 rating and a zero-heavy count."""
    rng = np.random.default_rng(seed)
    k, p, n_cat, levels = 4, 3, 3, 4
    means = 2.5 * rng.standard_normal((k, p))
    means[3] = means[0]
    z = rng.choice(k, n, p=[0.3, 0.3, 0.2, 0.2])
    x = means[z] + rng.standard_normal((n, p))
    # Ratings: class 0 and 3 mostly 5, class 1 spread, class 2 low.
    probs = np.array([[0.02, 0.03, 0.05, 0.2, 0.7], [0.1, 0.2, 0.3, 0.25, 0.15],
                      [0.4, 0.3, 0.15, 0.1, 0.05], [0.02, 0.03, 0.05, 0.2, 0.7]])
    rating = np.array([rng.choice(5, p=probs[c]) + 1 for c in z], dtype=float)
    zero = rng.random(n) < np.array([0.8, 0.5, 0.7, 0.8])[z]
    count = np.where(zero, 0, rng.poisson(np.array([3.0, 8.0, 2.0, 3.0])[z]))
    dominant = np.array([[0, 1, 2], [1, 2, 3], [2, 3, 0], [3, 0, 1]])
    codes = np.where(rng.random((n, n_cat)) < 0.6, dominant[z], rng.integers(0, levels, (n, n_cat)))
    num = np.column_stack([x, rating, count.astype(float)])
    return {"name": "ratings_counts", "num": num, "codes": codes, "truth": z, "k": k,
            "num_names": ["x1", "x2", "x3", "rating", "count"]}


R_EXPORT = r"""
suppressMessages(library(mclust))
args <- commandArgs(trailingOnly = TRUE)
out <- args[1]; kmax <- as.integer(args[2])
data(banknote, package = "mclust"); data(diabetes, package = "mclust")
sets <- list(
  iris = list(x = iris[, 1:4], truth = as.integer(iris$Species)),
  faithful = list(x = faithful, truth = NULL),
  banknote = list(x = banknote[, -1], truth = as.integer(banknote$Status)),
  diabetes = list(x = diabetes[, -1], truth = as.integer(diabetes$class)))
res <- list()
for (nm in names(sets)) {
  s <- sets[[nm]]
  d <- data.frame(s$x)
  if (!is.null(s$truth)) d$truth <- s$truth - 1L
  write.csv(d, file.path(out, paste0(nm, ".csv")), row.names = FALSE)
  x <- as.matrix(s$x)
  t0 <- Sys.time()
  bic <- mclustBIC(x, G = 2:kmax, modelNames = "VVV", verbose = FALSE)
  secs <- as.numeric(Sys.time() - t0, units = "secs")
  best <- Mclust(x, x = bic, verbose = FALSE)
  sd <- apply(x, 2, function(v) sqrt(mean((v - mean(v))^2)))
  fits <- lapply(2:kmax, function(g)
    tryCatch(Mclust(x, G = g, modelNames = "VVV", x = bic, verbose = FALSE), error = function(e) NULL))
  ll <- sapply(fits, function(m) if (is.null(m)) NA else m$loglik)
  # The same degenerate rule as segmix: a class with fewer than p + 1 rows, or a standardized
  # covariance with an eigenvalue at most 1e-5.
  degen <- sapply(fits, function(m) {
    if (is.null(m)) return(NA)
    p <- ncol(x); s <- m$parameters$variance$sigma
    small <- any(m$parameters$pro * nrow(x) < p + 1)
    flat <- any(sapply(seq_len(m$G), function(k) min(eigen(s[, , k] / outer(sd, sd), only.values = TRUE)$values) <= 1e-5))
    small || flat
  })
  res[[nm]] <- list(k = best$G, loglik = as.list(ll), bic = as.list(-as.numeric(bic[, "VVV"])),
                    classes = as.integer(best$classification) - 1L, seconds = secs, degenerate = as.list(degen))
}
sink(file.path(out, "mclust.json"))
cat("{")
first <- TRUE
for (nm in names(res)) {
  r <- res[[nm]]
  if (!first) cat(","); first <- FALSE
  f <- function(v) paste0("[", paste(ifelse(is.na(unlist(v)), "null", format(unlist(v), digits = 17)), collapse = ","), "]")
  b <- function(v) paste0("[", paste(ifelse(is.na(unlist(v)), "null", ifelse(unlist(v), "true", "false")), collapse = ","), "]")
  cat(sprintf('"%s":{"k":%d,"seconds":%.6f,"loglik":%s,"bic":%s,"classes":%s,"degenerate":%s}', nm, r$k, r$seconds,
              f(r$loglik), f(r$bic), f(r$classes), b(r$degenerate)))
}
cat("}")
sink()
"""


# ---------------------------------------------------------------- tools


def degenerate(weights, covs, n, sd):
    """segmix's rule, applied to a peer's fit: a class with fewer than p + 1 rows, or a
    covariance whose smallest eigenvalue on the standardized scale is at most 1e-5."""
    p = len(sd)
    if np.any(np.asarray(weights) * n < p + 1):
        return True
    scale = np.outer(sd, sd)
    return any(np.linalg.eigvalsh(c / scale)[0] <= 1e-5 for c in covs)


def ari(a, b):
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(a, b)


def write_csv(path, table):
    num_names = table.get("num_names") or [f"m{j + 1}" for j in range(table["num"].shape[1])]
    cat_names = [f"c{j + 1}" for j in range(table["codes"].shape[1])]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cat_names + num_names + ["truth"])
        for c, x, t in zip(table["codes"], table["num"], table["truth"]):
            w.writerow([f"L{v}" for v in c] + [repr(float(v)) for v in x] + [int(t)])
    return cat_names, num_names


def run_segmix(csv_path, cats, nums, ks, n_init, out, extra=()):
    args = [SEGMIX, "fit", csv_path, "--k", f"{ks[0]}..{ks[-1]}", "--n-init", str(n_init), "--out", out,
            "--device", "cpu", "--seed", "0", "-q", "--prototypes", "0"]
    if cats:
        args += ["--cat", ",".join(cats)]
    if nums:
        args += ["--num", ",".join(nums)]
    args += list(extra)
    t = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True)
    secs = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"segmix failed:\n{proc.stderr}")
    model = json.load(open(os.path.join(out, "model.json")))
    classes = []
    with open(os.path.join(out, "assignments.csv")) as f:
        for row in csv.DictReader(f):
            classes.append(int(row["class"]))
    per_k = {s["k"]: s for s in model["fit"]["per_k"]}
    ll = [per_k[k]["loglik"] if per_k[k]["loglik"] is not None else float("nan") for k in ks]
    degenerate_selected = any(r for r in csv.DictReader(open(os.path.join(out, "selection.csv")))
                              if int(r["k"]) == model["fit"]["k"] and int(r["restart"]) == model["fit"]["restart"]
                              and r["degenerate"])
    return {"loglik": ll, "k": model["fit"]["k"], "classes": np.array(classes), "seconds": secs,
            "stability": model["fit"]["stability"], "degenerate_selected": degenerate_selected,
            "screened": model["fit"]["screened"]}


def sweep(make, x, ks, degenerate_of):
    """Fits make(k) on x for every K (timed as one sweep) and selects by the estimator's BIC
    (lower is better, as StepMix and scikit-learn both compute it)."""
    lls, bics, fits = [], [], []
    t = time.perf_counter()
    for k in ks:
        m = make(k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(x)
        lls.append(m.score(x) * x.shape[0])
        bics.append(m.bic(x))
        fits.append(m)
    secs = time.perf_counter() - t
    best = int(np.argmin(bics))
    return {"loglik": lls, "k": ks[best], "classes": fits[best].predict(x), "seconds": secs,
            "degenerate": [degenerate_of(m) for m in fits]}


TIMED_RUNS = 3


def median_of(run):
    """The result of run() with its `seconds` the median of TIMED_RUNS runs."""
    results = [run() for _ in range(TIMED_RUNS)]
    out = results[0]
    out["seconds"] = float(np.median([r["seconds"] for r in results]))
    return out


def run_stepmix(num, codes, ks, n_init):
    from stepmix.stepmix import StepMix

    parts, measurement = [], {}
    if codes is not None and codes.shape[1]:
        parts.append(codes)
        measurement["cat"] = {"model": "categorical", "n_columns": codes.shape[1]}
    if num is not None and num.shape[1]:
        parts.append(num)
        measurement["num"] = {"model": "gaussian_full", "n_columns": num.shape[1]}
    x = np.column_stack(parts)

    def degenerate_of(m):
        if num is None or not num.shape[1]:
            return False
        prm = m.get_parameters()
        return degenerate(prm["weights"], prm["measurement"]["num"]["covariances"], x.shape[0], num.std(axis=0))

    return sweep(lambda k: StepMix(n_components=k, measurement=measurement, n_init=n_init, random_state=0,
                                   verbose=0, progress_bar=0, max_iter=300, abs_tol=1e-6),
                 x, ks, degenerate_of)


def run_sklearn(num, ks, n_init):
    from sklearn.mixture import GaussianMixture

    sd = num.std(axis=0)
    return sweep(lambda k: GaussianMixture(k, covariance_type="full", n_init=n_init, random_state=0, max_iter=300,
                                           tol=1e-6),
                 num, ks, lambda g: degenerate(g.weights_, g.covariances_, num.shape[0], sd))


# ---------------------------------------------------------------- report


def report(name, ks, results, truth, true_k, rows):
    tools = list(results)
    print(f"\n## {name} ({rows} rows{', true K = %d' % true_k if true_k else ''})")
    print("| K | " + " | ".join(f"{t} loglik" for t in tools) + " | segmix − best non-degenerate peer |")
    print("|---|" + "---|" * (len(tools) + 1))
    worst_gap = float("inf")
    for i, k in enumerate(ks):
        vals = [results[t]["loglik"][i] for t in tools]
        deg = [bool(results[t].get("degenerate", [False] * len(ks))[i]) for t in tools]
        peers = [v for t, v, dg in zip(tools, vals, deg)
                 if t != "segmix" and not dg and v is not None and np.isfinite(v)]
        seg = results["segmix"]["loglik"][i]
        gap = seg - max(peers) if peers and np.isfinite(seg) else float("nan")
        rel = gap / abs(max(peers)) if peers and np.isfinite(gap) else float("nan")
        if np.isfinite(rel):
            worst_gap = min(worst_gap, rel)
        cells = ["—" if v is None or not np.isfinite(v) else f"{v:.3f}" + (" (degenerate)" if dg else "")
                 for v, dg in zip(vals, deg)]
        print(f"| {k} | " + " | ".join(cells) + f" | {gap:+.3f} ({rel:+.1e}) |")
    print("| | " + " | ".join("selected K / ARI / s" for _ in tools) + " | |")
    cells = []
    for t in tools:
        r = results[t]
        a = f"{ari(truth, r['classes']):.3f}" if truth is not None else "—"
        cells.append(f"K={r['k']} / {a} / {r['seconds']:.2f}")
    print("| sel | " + " | ".join(cells) + " | |")
    s = results["segmix"]
    others = [results[t]["seconds"] for t in tools if t in ("stepmix",)]
    speed = f"; StepMix/segmix time {others[0] / s['seconds']:.1f}x" if others else ""
    print(f"segmix: {s['screened']} starts screened; stability: {s['stability']}; "
          f"selected fit degenerate: {s['degenerate_selected']}{speed}; worst relative loglik gap {worst_gap:+.1e}")
    return {"table": name, "worst_rel_gap": worst_gap, "segmix_k": s["k"], "true_k": true_k,
            "ari": {t: (ari(truth, results[t]["classes"]) if truth is not None else None) for t in tools},
            "k": {t: results[t]["k"] for t in tools},
            "seconds": {t: results[t]["seconds"] for t in tools},
            "degenerate_selected": s["degenerate_selected"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated table names")
    ap.add_argument("--n-init", type=int, default=5)
    ap.add_argument("--json", help="write the summary here")
    a = ap.parse_args()
    only = set(filter(None, a.only.split(",")))
    if not os.path.exists(SEGMIX):
        raise SystemExit("build segmix first: cargo build --release")
    tmp = tempfile.mkdtemp(prefix="segmix-quality-")
    summary = []

    generated = [
        mixed_table("five_classes", 20_000, 5, 6, 4, 4, {3: 0, 4: 1}, seed=1),
        mixed_table("four_wide", 25_000, 4, 10, 3, 5, {3: 2}, seed=2),
        mixed_table("six_classes", 24_000, 6, 4, 5, 3, {4: 0, 5: 2}, seed=3),
        ratings_table(),
    ]
    ks = list(range(2, 9))
    for t in generated:
        if only and t["name"] not in only:
            continue
        path = os.path.join(tmp, t["name"] + ".csv")
        cats, nums = write_csv(path, t)
        res = {"segmix": run_segmix(path, cats, nums, ks, a.n_init, os.path.join(tmp, t["name"]))}
        res["stepmix"] = run_stepmix(t["num"], t["codes"], ks, a.n_init)
        summary.append(report(t["name"], ks, res, t["truth"], t["k"], len(t["truth"])))

    classic = ["iris", "faithful", "banknote", "diabetes"]
    if not only or only & set(classic):
        kmax = 9
        ks9 = list(range(2, kmax + 1))
        subprocess.run(["Rscript", "-e", R_EXPORT, tmp, str(kmax)], check=True)
        mc = json.load(open(os.path.join(tmp, "mclust.json")))
        for name in classic:
            if only and name not in only:
                continue
            path = os.path.join(tmp, name + ".csv")
            with open(path) as f:
                header = next(csv.reader(f))
            data = np.loadtxt(path, delimiter=",", skiprows=1)
            has_truth = header[-1] == "truth"
            nums = [h for h in header if h != "truth"]
            num = data[:, : len(nums)]
            truth = data[:, -1].astype(int) if has_truth else None
            # Sweeps of a few seconds: each Python-side tool is timed TIMED_RUNS times (the fits
            # are seeded, so every run gives the same result) and the median kept.
            res = {"segmix": median_of(lambda: run_segmix(path, [], nums, ks9, a.n_init, os.path.join(tmp, name)))}
            res["mclust"] = {"loglik": [v for v in mc[name]["loglik"]], "k": mc[name]["k"],
                             "classes": np.array(mc[name]["classes"]), "seconds": mc[name]["seconds"],
                             "degenerate": [bool(v) for v in mc[name]["degenerate"]]}
            res["sklearn"] = median_of(lambda: run_sklearn(num, ks9, a.n_init))
            res["stepmix"] = median_of(lambda: run_stepmix(num, None, ks9, a.n_init))
            row = report(name, ks9, res, truth, None, len(num))
            row["mclust_k"] = mc[name]["k"]
            summary.append(row)

    print("\n## summary")
    for s in summary:
        print(json.dumps(s))
    if a.json:
        json.dump(summary, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()

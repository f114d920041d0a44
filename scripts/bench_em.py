#!/usr/bin/env python3
"""EM speed of segmix against scikit-learn and StepMix, measured in the same run on the same data.

What is timed
  * one EM iteration (E-step + M-step, parameters already initialised) at N rows, K classes,
    d continuous dims and 3 categorical columns (4 levels):
      - segmix: `segmix bench` (Cholesky factors, e_step, m_stats, M-step; median of --reps);
      - scikit-learn GaussianMixture(covariance_type="full"): `_e_step` + `_m_step` (continuous
        block only: scikit-learn has no categorical model);
      - StepMix(categorical + gaussian_full): `_e_step` + `_m_step` on the same columns;
  * the machine's matmul rate: numpy (OpenBLAS) float64 4096 x 4096 matmul, as the reference
    for "how close to the GEMM rate is the O(N K d^2) work";
  * a model-selection sweep: K = 2..12, 3 restarts, tol 1e-3 (per-row log-likelihood change),
    max_iter 100, on --sweep-n rows of the continuous block — segmix vs scikit-learn with the
    same settings.

Run:  cargo build --release && python3 scripts/bench_em.py            (N = 1,000,000: ~3 min)
      python3 scripts/bench_em.py --n 200000 --sweep-n 20000 --skip-stepmix   (quick)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def synthetic(n, k, d, n_cat, levels, seed):
    """A K-class mixture: random means (sd 3), random full covariances, categorical columns that
    prefer one level per class with probability 0.7."""
    rng = np.random.default_rng(seed)
    means = 3.0 * rng.standard_normal((k, d))
    chols = []
    for _ in range(k):
        g = rng.standard_normal((d, d))
        chols.append(np.linalg.cholesky(g @ g.T / d + 0.3 * np.eye(d)))
    z = rng.integers(0, k, n)
    x = np.empty((n, d))
    for c in range(k):
        idx = np.flatnonzero(z == c)
        x[idx] = means[c] + rng.standard_normal((idx.size, d)) @ chols[c].T
    dominant = rng.integers(0, levels, (k, n_cat))
    codes = np.where(rng.random((n, n_cat)) < 0.7, dominant[z], rng.integers(0, levels, (n, n_cat)))
    return x, codes.astype(np.int64)


def median_time(fn, reps):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def numpy_gemm_gflops(reps=3):
    a = np.random.default_rng(0).random((4096, 4096))
    b = a.T.copy()
    a @ b
    t = median_time(lambda: a @ b, reps)
    return 2 * 4096**3 / t / 1e9


def sklearn_iteration(x, k, reps):
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(k, covariance_type="full", max_iter=1, init_params="random_from_data", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(x)

    def one():
        _, log_resp = gm._e_step(x)
        gm._m_step(x, log_resp)

    one()
    return median_time(one, reps)


def stepmix_iteration(x, codes, k, reps):
    from stepmix import StepMix

    data = np.hstack([codes.astype(float), x])
    sm = StepMix(
        n_components=k,
        measurement={
            "cat": {"model": "categorical", "n_columns": codes.shape[1]},
            "cont": {"model": "gaussian_full", "n_columns": x.shape[1]},
        },
        max_iter=1,
        n_init=1,
        init_params="random",
        verbose=0,
        progress_bar=0,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm.fit(data)

    def one():
        _, log_resp = sm._e_step(data)
        sm._m_step(data, np.exp(log_resp))

    one()
    return median_time(one, reps)


def sklearn_sweep(x, k_min, k_max, n_init, tol, max_iter):
    from sklearn.mixture import GaussianMixture

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(k_min, k_max + 1):
            GaussianMixture(k, covariance_type="full", n_init=n_init, tol=tol, max_iter=max_iter, random_state=0).fit(x)
    return time.perf_counter() - t


def segmix(binary, args):
    out = subprocess.run([binary, "bench", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--cats", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sweep-n", type=int, default=100_000)
    ap.add_argument("--skip-stepmix", action="store_true")
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "segmix"))
    ap.add_argument("--work", default=os.path.join(ROOT, "bench_data"))
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    if not os.path.exists(a.binary):
        sys.exit(f"{a.binary} not found: run `cargo build --release` first")
    os.makedirs(a.work, exist_ok=True)

    x, codes = synthetic(a.n, a.k, a.d, a.cats, 4, seed=0)
    xp, cp = os.path.join(a.work, "x.npy"), os.path.join(a.work, "codes.npy")
    np.save(xp, x)
    np.save(cp, codes)
    res = {"n": a.n, "k": a.k, "d": a.d, "cats": a.cats, "cores": os.cpu_count()}
    print(f"data: N={a.n:,} K={a.k} d={a.d} categorical={a.cats}x4 levels, {os.cpu_count()} cores", flush=True)

    res["numpy_gemm_gflops"] = numpy_gemm_gflops()
    print(f"numpy (OpenBLAS) float64 matmul: {res['numpy_gemm_gflops']:.1f} GFLOP/s", flush=True)

    seg = segmix(a.binary, ["--x", xp, "--codes", cp, "--k", str(a.k), "--reps", str(a.reps)])["iteration"]
    res["segmix_iteration_s"] = seg["iteration_ms"] / 1e3
    res["segmix_e_step_s"] = seg["e_step_ms"] / 1e3
    res["segmix_m_stats_s"] = seg["m_stats_ms"] / 1e3
    res["segmix_effective_gflops"] = seg["gflops"]
    print(
        f"segmix   one EM iteration: {res['segmix_iteration_s']:.3f} s "
        f"(e_step {seg['e_step_ms']:.0f} ms, m_stats {seg['m_stats_ms']:.0f} ms); "
        f"4NKd^2 work at {seg['gflops']:.1f} GFLOP/s",
        flush=True,
    )
    res["sklearn_iteration_s"] = sklearn_iteration(x, a.k, a.reps)
    print(f"sklearn  one EM iteration: {res['sklearn_iteration_s']:.3f} s (continuous block only)", flush=True)
    if not a.skip_stepmix:
        res["stepmix_iteration_s"] = stepmix_iteration(x, codes, a.k, a.reps)
        print(f"StepMix  one EM iteration: {res['stepmix_iteration_s']:.3f} s", flush=True)

    if not a.skip_sweep:
        xs = x[: a.sweep_n]
        xsp = os.path.join(a.work, "x_sweep.npy")
        np.save(xsp, xs)
        sw = segmix(a.binary, ["--x", xsp, "--k", "2", "--reps", "1", "--sweep", "2..12", "--n-init", "3", "--max-iter", "100", "--tol", "1e-3"])["sweep"]
        res["segmix_sweep_s"] = sw["seconds"]
        print(f"segmix   sweep K=2..12 x 3 restarts on {a.sweep_n:,} rows: {sw['seconds']:.2f} s ({sw['total_iterations']} iterations of the restarts; {sw['screened_starts']} starts screened in {sw['screen_iterations']} iterations)", flush=True)
        res["sklearn_sweep_s"] = sklearn_sweep(xs, 2, 12, 3, 1e-3, 100)
        print(f"sklearn  sweep K=2..12 x 3 restarts on {a.sweep_n:,} rows: {res['sklearn_sweep_s']:.2f} s", flush=True)

    print("\nratios (higher is better for segmix)")
    print(f"  EM iteration vs scikit-learn : {res['sklearn_iteration_s'] / res['segmix_iteration_s']:.1f}x faster (target >= 8x)")
    if "stepmix_iteration_s" in res:
        print(f"  EM iteration vs StepMix      : {res['stepmix_iteration_s'] / res['segmix_iteration_s']:.1f}x faster")
    print(f"  O(NKd^2) rate / numpy GEMM    : {res['segmix_effective_gflops'] / res['numpy_gemm_gflops']:.2f} (target >= 0.5)")
    if "segmix_sweep_s" in res:
        print(f"  sweep vs scikit-learn         : {res['sklearn_sweep_s'] / res['segmix_sweep_s']:.1f}x faster (target >= 5x)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()

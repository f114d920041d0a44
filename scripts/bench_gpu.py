#!/usr/bin/env python3
"""GPU backend speed against the CPU backend (and scikit-learn when installed), same machine,
same run, same synthetic data.

What is timed (medians of --reps, setup and one warm-up excluded)
  * one EM iteration at N = 1,000,000 rows, K = 10, d = 32 continuous dims, 3 categorical
    columns (4 levels): parameters in, parameters out, read-back of the statistics included
    (`segmix bench --device gpu` vs `--device cpu`); the E-step and M-step statistics are also
    timed as separate kernels;
  * PCA of 1,000,000 x 384 unit-length embeddings: the Gram pass (upload included), the host
    eigen-decomposition, and the projection to 32 dims;
  * optionally scikit-learn GaussianMixture `_e_step` + `_m_step` on the continuous block.

Run on the GPU machine:  cargo build --release && python3 scripts/bench_gpu.py [--out results.json]
Criterion kernel grid:   cargo bench --bench em -- gpu/
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEGMIX = os.path.join(ROOT, "target", "release", "segmix")


def bench(device, args):
    cmd = [SEGMIX, "bench", "--device", device, "-q"] + args
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--cats", type=int, default=3)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--pca-rows", type=int, default=1_000_000)
    ap.add_argument("--sklearn", action="store_true", help="also time scikit-learn (slow)")
    ap.add_argument("--out", help="write all results as JSON here")
    a = ap.parse_args()

    devices = subprocess.run([SEGMIX, "devices", "--json"], check=True, capture_output=True, text=True)
    devices = json.loads(devices.stdout)
    if devices["gpu"] is None:
        sys.exit("no GPU adapter: nothing to benchmark (see `segmix devices`)")
    common = ["--n", str(a.n), "--k", str(a.k), "--d", str(a.d), "--cats", str(a.cats), "--reps", str(a.reps),
              "--pca-rows", str(a.pca_rows)]
    gpu = bench("gpu", common)
    cpu = bench("cpu", common)
    results = {"devices": devices, "gpu": gpu, "cpu": cpu}

    gi, ci = gpu["iteration"], cpu["iteration"]
    print(f"GPU: {gi['backend']}")
    print(f"CPU: {ci['backend']}")
    print(f"\nN = {a.n:,}, K = {a.k}, d = {a.d}, {a.cats} categorical   (ms, medians of {a.reps})")
    print(f"{'':28}{'gpu':>10}{'cpu':>10}{'cpu/gpu':>10}")
    for key, label in [("iteration_ms", "one EM iteration"), ("e_step_stats_ms", "fused pass + read-back"),
                       ("e_step_ms", "e_step"), ("m_stats_ms", "m_stats"), ("m_step_ms", "host M-step"),
                       ("kernel_params_ms", "host kernel parameters")]:
        print(f"{label:28}{gi[key]:10.2f}{ci[key]:10.2f}{ci[key] / gi[key]:10.1f}x")
    gp, cp = gpu["pca"], cpu["pca"]
    print(f"\nPCA of {a.pca_rows:,} x {gp['dim']} to {gp['d']} dims (ms)")
    for key, label in [("gram_ms", "Gram pass (upload included)"), ("eigen_ms", "eigen-decomposition"),
                       ("fit_ms", "PCA fit"), ("project_ms", "projection")]:
        print(f"{label:28}{gp[key]:10.2f}{cp[key]:10.2f}{cp[key] / gp[key]:10.1f}x")

    if a.sklearn:
        import numpy as np
        from sklearn.mixture import GaussianMixture
        sys.path.insert(0, os.path.join(ROOT, "scripts"))
        from bench_em import median_time, synthetic
        x, _ = synthetic(a.n, a.k, a.d, a.cats, 4, 0)
        gm = GaussianMixture(a.k, covariance_type="full", max_iter=1, random_state=0).fit(x[: min(a.n, 100_000)])
        def step():
            _, log_resp = gm._e_step(x)
            gm._m_step(x, log_resp)
        t = median_time(step, 3) * 1e3
        results["sklearn_iteration_ms"] = t
        print(f"\nscikit-learn one EM iteration: {t:.1f} ms ({t / gi['iteration_ms']:.0f}x the GPU)")

    if a.out:
        with open(a.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

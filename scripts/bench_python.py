#!/usr/bin/env python3
"""The Python binding's overhead: the same fit from Python and from the command, and StepMix
from Python on the same table, in one run.

A seeded table of numeric rows (default 1,000,000 × 5, four Gaussian segments) is written as
Parquet. Then, each `--runs` times (median reported):

- the command: `segmix fit table.parquet --num ... --device cpu`; its `model.json` says how long
  reading and fitting took (`fit.seconds`, without writing the folder), and the process's wall
  time is reported beside it;
- Python: `SegMix(...).fit(X)` on the same values as a numpy array in memory (conversion to
  Arrow, the fit, the attributes), timed around the call;
- then StepMix once (`gaussian_full`, the same K range and n_init), from Python.

The overhead is Python's median over the command's median `fit.seconds`, minus one. Both fits
must reach the same log-likelihood (checked). Needs: `pip install ./python stepmix`, and the
command built (`cargo build --release`).

    python3 scripts/bench_python.py [--rows 1000000] [--k 3..5] [--n-init 2] [--runs 3] [--no-stepmix]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]


def table(rows: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(4, 5))
    labels = rng.integers(0, 4, size=rows)
    return centres[labels] + rng.normal(size=(rows, 5)) * rng.uniform(0.5, 1.5, size=(4, 5))[labels]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--k", default="3..5")
    ap.add_argument("--n-init", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-stepmix", action="store_true")
    ap.add_argument("--bin", default=str(REPO / "target" / "release" / "segmix"))
    a = ap.parse_args()
    import segmix
    from segmix import SegMix

    lo, hi = (int(v) for v in a.k.split(".."))
    X = table(a.rows)
    names = [f"x{j}" for j in range(X.shape[1])]
    work = Path(tempfile.mkdtemp(prefix="segmix-bench-python-"))
    data = work / "table.parquet"
    pq.write_table(pa.table({n: X[:, j] for j, n in enumerate(names)}), data)
    env = {**os.environ, "SEGMIX_CACHE": str(work / "cache")}
    print(f"{a.rows:,} rows × {X.shape[1]}, K = {lo}..{hi}, n_init {a.n_init}, {a.runs} runs each; "
          f"segmix {segmix.__version__}, {os.cpu_count()} CPUs", flush=True)

    cli_fit, cli_wall, py_wall, lls = [], [], [], set()
    for r in range(a.runs):
        out = work / f"cli{r}"
        t = time.perf_counter()
        subprocess.run([a.bin, "-q", "fit", str(data), "--num", ",".join(names), "--k", a.k,
                        "--n-init", str(a.n_init), "--device", "cpu", "--out", str(out)], check=True, env=env)
        cli_wall.append(time.perf_counter() - t)
        model = json.loads((out / "model.json").read_text())
        cli_fit.append(model["fit"]["seconds"])
        lls.add(round(model["fit"]["loglik"], 6))
        t = time.perf_counter()
        est = SegMix(k=range(lo, hi + 1), n_init=a.n_init, device="cpu").fit(X)
        py_wall.append(time.perf_counter() - t)
        lls.add(round(est.loglik_, 6))
        print(f"  run {r + 1}: command {cli_fit[-1]:.2f} s read+fit ({cli_wall[-1]:.2f} s wall), "
              f"Python {py_wall[-1]:.2f} s", flush=True)
    assert len(lls) == 1, f"the fits differ: {lls}"
    c, w, p = statistics.median(cli_fit), statistics.median(cli_wall), statistics.median(py_wall)
    print(f"median: command {c:.2f} s read+fit ({w:.2f} s wall with the report), Python {p:.2f} s; "
          f"binding overhead {100 * (p / c - 1):+.1f}%  (loglik {lls.pop():.3f})")

    if not a.no_stepmix:
        from stepmix.stepmix import StepMix

        t = time.perf_counter()
        best = None
        for k in range(lo, hi + 1):
            m = StepMix(n_components=k, measurement="gaussian_full", n_init=a.n_init, random_state=0, verbose=0,
                        progress_bar=0, max_iter=300, abs_tol=1e-6).fit(X)
            bic = m.bic(X)
            best = min(best or (bic, k), (bic, k))
        s = time.perf_counter() - t
        print(f"StepMix: {s:.2f} s for the same sweep (selected K = {best[1]}); segmix from Python {s / p:.1f}× faster")


if __name__ == "__main__":
    sys.exit(main())
